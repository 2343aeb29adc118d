"""The network cascade stage: it learns a synthetic landmark problem and survives a save."""
import dataclasses

import cv2
import numpy as np
import pytest

from tracker.config import CascadeConfig
from tracker.netstage import NetStage, fit_net_stage
from tracker.refine import ShapeCascade, standardised


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
    from tracker.model import load_refiners, save_refiners
    rng = np.random.default_rng(1)
    crops, image_of, starts, truths, mean_px = blob_problem(20, 2, rng)
    stage = fit_net_stage(crops, image_of, starts, truths, mean_px, small_cfg(net_epochs=1, net_local=True), rng,
                          log=lambda row: None)
    assert stage.local
    canonical = (mean_px - 80) / 100
    cascade = ShapeCascade(canonical.astype(np.float64), 100, 160, np.zeros(3, np.int64), [[stage]])
    model = tmp_path / "m.pt"
    save_refiners(model, cascade, None, "stills")
    again = load_refiners(model, "stills")["cascade"]         # read as the product reads it: without torch.load
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


def test_folding_the_batch_norms_keeps_the_function():
    import torch
    from tracker.netstage import ShapeNet, folded_batchnorm
    torch.manual_seed(0)
    net = ShapeNet(32, 5, (8, 16), 32)
    for module in net.modules():                       # batch norms with statistics of their own
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    torch.nn.init.normal_(net.out.weight)
    image, shape = torch.randn(4, 1, 32, 32), torch.randn(4, 10)
    with torch.no_grad():
        plain = net.eval()(image, shape)
        fused = folded_batchnorm(net)(image, shape)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-4)


def test_degradation_changes_only_the_chosen_inputs():
    from tracker.netstage import degraded
    rng = np.random.default_rng(3)
    images = rng.normal(0, 1, (40, 1, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(degraded(images, 0.0, rng), images)
    out = degraded(images, 1.0, rng)
    assert out.shape == images.shape and out.dtype == np.float32
    changed = np.abs(out - images).reshape(40, -1).max(axis=1) > 1e-3
    assert changed.mean() > 0.8                   # nearly every input got at least one degradation
