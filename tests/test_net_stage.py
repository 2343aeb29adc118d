"""The network cascade stage: it learns a synthetic landmark problem, survives a save, and
its torch-free forward (cv2.dnn + NumPy) is the torch module's."""
import dataclasses

import cv2
import numpy as np
import pytest

from tracker.config import CascadeConfig
from tracker.regressors.cascade import ShapeCascade, standardised
from tracker.regressors.net_stage import CvShapeNet, NetStage, sample_bilinear
from tracker.training.net_stage import fit_net_stage


def blob_problem(n_images: int, starts_per: int, rng):
    """Crops with a bright disc at each of 5 landmarks; starts shifted off the truth."""
    mean_px = np.array([[45, 50], [115, 50], [80, 85], [55, 120], [105, 120]], np.float64)
    crops, truths, starts, image_of = [], [], [], []
    for i in range(n_images):
        truth = mean_px + rng.normal(0, 4, mean_px.shape)
        crop = rng.normal(0, 20, (160, 160)).astype(np.float32) + 100
        for x, y in truth:
            cv2.circle(crop, (int(round(x * 4)), int(round(y * 4))), 14, 255.0, -1, shift=2)
        crops.append(standardised(cv2.GaussianBlur(crop, (0, 0), 1.0)))
        for _ in range(starts_per):
            starts.append(truth + rng.normal(0, 1, 2) * 5 + rng.normal(0, 1.5, truth.shape))
            truths.append(truth)
            image_of.append(i)
    return (np.stack(crops), np.array(image_of), np.stack(starts).astype(np.float32),
            np.stack(truths).astype(np.float32), mean_px.astype(np.float32))


def small_cfg(**kw) -> CascadeConfig:
    settings = dict(net_size=32, net_span=128.0, net_widths=(8, 16), net_hidden=32, net_epochs=6, net_batch=32,
                    net_lr=0.005)
    return dataclasses.replace(CascadeConfig(), **{**settings, **kw})


@pytest.mark.slow
@pytest.mark.parametrize("local", [False, True])
def test_network_stage_reduces_error_on_held_out_faces(local):
    import torch
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    crops, image_of, starts, truths, mean_px = blob_problem(160, 4, rng)
    v_crops, v_image_of, v_starts, v_truths, _ = blob_problem(40, 1, rng)
    stage = fit_net_stage(crops, image_of, starts, truths, mean_px, small_cfg(net_local=local), rng,
                          log=lambda row: None)
    mean_c = mean_px - mean_px.mean(0)
    before = np.linalg.norm(v_starts - v_truths, axis=-1).mean()
    after = np.linalg.norm(stage.update(v_crops, v_image_of, v_starts, mean_c) - v_truths, axis=-1).mean()
    assert after < 0.45 * before, (before, after)


def test_network_stage_round_trips_through_a_cascade_file(tmp_path):
    from tracker.classifier.model import load_regressors, save_regressors
    rng = np.random.default_rng(1)
    crops, image_of, starts, truths, mean_px = blob_problem(20, 2, rng)
    stage = fit_net_stage(crops, image_of, starts, truths, mean_px, small_cfg(net_epochs=1, net_local=True), rng,
                          log=lambda row: None)
    assert stage.local
    canonical = (mean_px - 80) / 100
    cascade = ShapeCascade(canonical.astype(np.float64), 100, 160, np.zeros(3, np.int64), [[stage]])
    model = tmp_path / "m.pt"
    save_regressors(model, cascade, None, "stills")
    again = load_regressors(model, "stills")["cascade"]         # read as the product reads it: without torch.load
    assert isinstance(again.cascades[0][0], NetStage)
    mean_c = cascade.mean_centered
    first = stage.update(crops, image_of, starts, mean_c)
    second = again.cascades[0][0].update(crops, image_of, starts, mean_c)
    np.testing.assert_allclose(first, second, atol=0.05)        # weights stored as fp16


def test_network_stage_shifts_with_the_face():
    """A start shifted with the face gives the same answer, shifted (the input is aligned on the start)."""
    rng = np.random.default_rng(2)
    crops, image_of, starts, truths, mean_px = blob_problem(20, 2, rng)
    stage = fit_net_stage(crops, image_of, starts, truths, mean_px, small_cfg(net_epochs=1), rng, log=lambda row: None)
    shift = np.array([6.0, -4.0], np.float32)
    moved_crops = np.stack([cv2.warpAffine(c, np.float64([[1, 0, shift[0]], [0, 1, shift[1]]]), (160, 160),
                                           borderMode=cv2.BORDER_REPLICATE) for c in crops])
    mean_c = mean_px - mean_px.mean(0)
    plain = stage.update(crops, image_of, starts, mean_c)
    shifted = stage.update(moved_crops, image_of, starts + shift, mean_c)
    np.testing.assert_allclose(shifted - shift, plain, atol=0.05)


@pytest.mark.parametrize("size", [32, 48])
def test_network_input_frame_puts_the_mean_shape_in_the_middle(size):
    stage = NetStage(size, 128.0, (8, 16), 32, {})
    mean_c = np.array([[-40.0, -30], [40, -30], [0, 40]])
    target = stage.input_target(mean_c)
    np.testing.assert_allclose(target.mean(0), [(size - 1) / 2] * 2)
    np.testing.assert_allclose(np.ptp(target, axis=0), np.ptp(mean_c, axis=0) * size / 128)


@pytest.mark.parametrize("local", [False, True])
def test_the_opencv_forward_is_the_torch_modules(local):
    import torch

    from tracker.training.net_stage import ShapeNet
    torch.manual_seed(0)
    net = ShapeNet(32, 5, (8, 16, 24), 32, local=local)
    for module in net.modules():                       # batch norms with statistics of their own
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    torch.nn.init.normal_(net.out.weight)
    if local:
        torch.nn.init.normal_(net.local_weight)
    image = torch.randn(70, 1, 32, 32)                 # more than one cv2.dnn batch
    shape = torch.rand(70, 10) - 0.5                   # some points near and past the edges
    shape[0, :2] = torch.tensor([0.7, -0.6])
    with torch.no_grad():
        want = net.eval()(image, shape).numpy()
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    got = CvShapeNet(state, 32, (8, 16, 24), local)(image.numpy(), shape.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_bilinear_sampling_against_a_slow_reference():
    rng = np.random.default_rng(4)
    maps = rng.normal(0, 1, (2, 3, 5, 6)).astype(np.float32)
    points = rng.uniform(-2, 7, (2, 9, 2)).astype(np.float32)

    def pixel(n, c, y, x):
        return maps[n, c, y, x] if 0 <= y < 5 and 0 <= x < 6 else 0.0
    want = np.zeros((2, 3, 9))
    for n in range(2):
        for p, (x, y) in enumerate(points[n]):
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            fx, fy = x - x0, y - y0
            for c in range(3):
                want[n, c, p] = ((1 - fx) * (1 - fy) * pixel(n, c, y0, x0) + fx * (1 - fy) * pixel(n, c, y0, x0 + 1)
                                 + (1 - fx) * fy * pixel(n, c, y0 + 1, x0) + fx * fy * pixel(n, c, y0 + 1, x0 + 1))
    np.testing.assert_allclose(sample_bilinear(maps, points), want, rtol=1e-5, atol=1e-5)


def test_the_stage_runs_without_torch(tmp_path):
    """Reading and running a network stage imports no torch (predict stays light)."""
    import subprocess
    import sys
    rng = np.random.default_rng(5)
    crops, image_of, starts, truths, mean_px = blob_problem(8, 1, rng)
    stage = fit_net_stage(crops, image_of, starts, truths, mean_px, small_cfg(net_epochs=1, net_local=True), rng,
                          log=lambda row: None)
    cascade = ShapeCascade(((mean_px - 80) / 100).astype(np.float64), 100, 160, np.zeros(3, np.int64), [[stage]])
    from tracker.classifier.model import save_regressors
    save_regressors(tmp_path / "m.pt", cascade, None, "stills")
    np.savez(tmp_path / "problem.npz", crops=crops, image_of=image_of, starts=starts)
    code = f"""
import sys, numpy as np
from tracker.classifier.model import load_regressors
cascade = load_regressors({str(tmp_path / "m.pt")!r}, "stills")["cascade"]
p = np.load({str(tmp_path / "problem.npz")!r})
stage = cascade.cascades[0][0]
out = stage.update(p["crops"], p["image_of"], p["starts"], cascade.mean_centered)
assert np.isfinite(out).all() and "torch" not in sys.modules, sorted(m for m in sys.modules if "torch" in m)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_degradation_changes_only_the_chosen_inputs():
    from tracker.training.net_stage import degraded
    rng = np.random.default_rng(3)
    images = rng.normal(0, 1, (40, 1, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(degraded(images, 0.0, rng), images)
    out = degraded(images, 1.0, rng)
    assert out.shape == images.shape and out.dtype == np.float32
    changed = np.abs(out - images).reshape(40, -1).max(axis=1) > 1e-3
    assert changed.mean() > 0.8                   # nearly every input got at least one degradation
