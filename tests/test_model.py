"""The classifier network, saving/loading, and a toy problem that training learns."""
import numpy as np
import pytest
import torch

from tracker.classifier.model import LandmarkModel, ModelError, PoseClassifier, load_model
from tracker.config import ModelConfig
from tracker.training.losses import loss_from_name


def _toy_batch(rng, n=32, size=32):
    """Class 0: bright left half; class 1: bright right half (plus noise)."""
    labels = rng.integers(0, 2, n)
    crops = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    for i, y in enumerate(labels):
        half = slice(0, size // 2) if y == 0 else slice(size // 2, size)
        crops[i, :, half] += 150
    return torch.from_numpy(crops), torch.from_numpy(labels)


@pytest.mark.slow
@pytest.mark.parametrize("loss_name", ["softmax", "soft_target", "multilabel"])
def test_two_class_toy_problem_is_learned(loss_name):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    net = PoseClassifier(ModelConfig(backbone="resnet18", crop_size=32, embedding=16), 2)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    loss_fn = loss_from_name(loss_name)
    for _ in range(25):
        crops, labels = _toy_batch(rng)
        scores = net.train()(crops)
        if loss_name == "softmax":
            loss = loss_fn(scores, labels)
        else:   # membership set = the true class only
            loss = loss_fn(scores, torch.arange(len(labels) + 1), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    crops, labels = _toy_batch(np.random.default_rng(1), n=64)
    with torch.no_grad():
        accuracy = (net.eval()(crops).argmax(1) == labels).float().mean().item()
    assert accuracy > 0.95


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", crop_size=32, embedding=8)
    net = PoseClassifier(cfg, 5).eval()
    templates = np.random.default_rng(0).normal(0, 0.2, (5, 68, 2)).astype(np.float32)
    model = LandmarkModel(network=net, config={"model": cfg.__dict__}, templates=templates,
                          widths=np.full(5, 0.01, np.float32), tau=0.05,
                          calibration={"haar": {"ax": 0.1, "ay": 0, "b": 0}})
    model.save(tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    x = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.network(x).numpy(), net(x).numpy(), rtol=0.02, atol=0.02)
    np.testing.assert_allclose(loaded.templates, templates, atol=1e-3)   # stored as fp16
    assert loaded.tau == 0.05 and loaded.calibration == {"haar": {"ax": 0.1, "ay": 0, "b": 0}}


@pytest.mark.parametrize("content", [b"", b"not a model", None])
def test_bad_model_files(tmp_path, content):
    path = tmp_path / "m.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match="m.pt"):
        load_model(path)


def test_unknown_backbone():
    with pytest.raises(ModelError, match="unknown torchvision backbone"):
        PoseClassifier(ModelConfig(backbone="resnet7"), 3)
