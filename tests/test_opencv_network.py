"""The OpenCV (cv2.dnn) path against the torch path: same crops, same scores; torch-free loading."""
import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tracker.classifier.checkpoint import CheckpointError, read_checkpoint
from tracker.classifier.inputs import PIXEL_MEAN_BGR, PIXEL_STD_BGR
from tracker.classifier.model import DEFAULT_MODEL, load_model, regressors_path
from tracker.classifier.network import PoseClassifier
from tracker.classifier.opencv_network import MAX_BATCH, CvClassifier
from tracker.config import ModelConfig
from tracker.distribution.posterior import top_k_posterior

REPO = Path(__file__).resolve().parents[1]


def _randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random batch-norm statistics, so that folding them is tested too."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net.eval()


@pytest.mark.parametrize("backbone,size", [("resnet18", 40), ("resnet50", 32)])
def test_cv2_dnn_gives_the_torch_scores_and_embeddings(backbone, size):
    torch.manual_seed(0)
    net = _randomised(PoseClassifier(ModelConfig(backbone=backbone, crop_size=size, embedding=16), 7))
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    cv = CvClassifier(state, PIXEL_MEAN_BGR, PIXEL_STD_BGR)
    crops = np.random.default_rng(1).integers(0, 256, (MAX_BATCH + 3, size, size, 3), dtype=np.uint8)   # 2 forwards
    with torch.inference_mode():
        embedding, scores = net.embed(torch.from_numpy(crops))
    cv_embedding, cv_scores = cv.embed(crops)
    np.testing.assert_allclose(cv_embedding, embedding.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(cv_scores, scores.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(cv(crops[:1]), scores.numpy()[:1], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_the_packaged_model_classifies_real_crops_alike_on_both_backends(sample_clip):
    from tracker.geometry.boxes import landmark_box
    from tracker.inference.landmarker import Landmarker
    from tracker.io.annotations import read_300vw
    from tracker.io.sources import VideoSource
    labels = read_300vw(sample_clip).landmarks
    frames = [f for f, _ in zip(VideoSource(sample_clip / "vid.mp4", threads=1), range(40))][::8]
    results = {}
    for backend in ("torch", "opencv"):
        lm = Landmarker(load_model(backend=backend), keep_log_probs=True)
        crops = np.concatenate([lm.crops(f.image, landmark_box(labels[f.index])[None]) for f in frames])
        results[backend] = lm.classify_crops(crops)
    (pt, ct), (po, co) = results["torch"], results["opencv"]
    np.testing.assert_array_equal(pt.classes[:, :5], po.classes[:, :5])
    np.testing.assert_allclose(po.log_probs, pt.log_probs, atol=2e-4)
    assert np.abs(co - ct).max() < 1e-4                                    # canonical units: < 0.03 px here


def test_numpy_top_k_is_torch_top_k():
    scores = np.random.default_rng(2).normal(0, 3, (4, 500)).astype(np.float32)
    a, b = top_k_posterior(scores, 20, True), top_k_posterior(torch.from_numpy(scores), 20, True)
    np.testing.assert_array_equal(a.classes, b.classes)
    for x, y in ((a.probs, b.probs), (a.mass, b.mass), (a.log_probs, b.log_probs)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_the_checkpoint_reader_is_torch_load_without_torch():
    for path in (DEFAULT_MODEL, regressors_path(DEFAULT_MODEL)):
        ours, theirs = read_checkpoint(path), torch.load(path, weights_only=True)
        _assert_same(ours, theirs, str(path.name))


def _assert_same(ours, theirs, where):
    if isinstance(theirs, torch.Tensor):
        assert np.asarray(ours).dtype == theirs.numpy().dtype, where
        np.testing.assert_array_equal(np.asarray(ours), theirs.numpy(), err_msg=where)
    elif isinstance(theirs, dict):
        assert set(ours) == set(theirs), where
        for k in theirs:
            _assert_same(ours[k], theirs[k], f"{where}/{k}")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (p, q) in enumerate(zip(ours, theirs)):
            _assert_same(p, q, f"{where}[{i}]")
    else:
        assert ours == theirs, where


class _Shell:
    def __reduce__(self):
        import os
        return (os.system, ("echo unsafe",))


def test_the_checkpoint_reader_refuses_other_globals_and_non_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("bad/data.pkl", pickle.dumps({"x": _Shell()}))
    with pytest.raises(CheckpointError, match="unsupported object"):
        read_checkpoint(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        read_checkpoint(junk)
    buffer = io.BytesIO()
    torch.save({"format": "x", "t": torch.arange(6).reshape(2, 3).t()}, buffer)   # a strided (transposed) tensor
    (tmp_path / "t.pt").write_bytes(buffer.getvalue())
    np.testing.assert_array_equal(read_checkpoint(tmp_path / "t.pt")["t"], np.arange(6).reshape(2, 3).T)


@pytest.mark.slow
def test_tracking_on_the_cpu_never_imports_torch(sample_clip):
    code = ("import sys, numpy as np; from tracker.api import Tracker; t = Tracker(device='cpu');"
            "import av; c = av.open(sys.argv[1]); im = next(c.decode(video=0)).to_ndarray(format='bgr24');"
            "faces = t.predict(im); assert faces and t.backend == 'opencv';"
            "print('torch' in sys.modules, 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(sample_clip / "vid.mp4")], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == ["False", "False"]


def test_thread_counts_are_chosen_per_backend(monkeypatch):
    import os

    from tracker.api import network_threads
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert network_threads(0, "torch") == 1 and network_threads(0, "opencv") == 6
    assert network_threads(3, "torch") == 3 and network_threads(3, "opencv") == 3
