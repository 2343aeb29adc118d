"""The single-process training path end to end on a tiny generated data set."""
import json

import numpy as np
import pytest

from tests.clips import tiny_face_folder
from tracker.classifier.model import load_model
from tracker.config import config_from_dict
from tracker.training.classifier import lr_at, train
from tracker.training.data import Face, canonical_to_crop, crop_to_canonical, split_by_photo, template_bank


@pytest.fixture
def tiny_data(tmp_path, face):
    """12 noisy images, each with the sample face shape drawn as dots at a random place."""
    return tiny_face_folder(tmp_path / "data", face)


def _config(root, steps):
    return config_from_dict({
        "name": "tiny",
        "data": {"root": str(root), "train_sets": ["faces"], "val_fraction": 0.3},
        "classes": {"kind": "kmeans", "k": 4, "perturbed_copies": 1, "tau": None,
                    "tau_candidates": [0.05, 0.1]},
        "model": {"backbone": "resnet18", "crop_size": 32, "embedding": 8},
        "train": {"steps": steps, "batch_size": 4, "warmup_steps": 1, "val_every": 2,
                  "checkpoint_every": 2, "threads": 1, "loss": "multilabel", "top_k": 3},
    })


@pytest.mark.slow
def test_train_checkpoint_resume_and_load(tiny_data, tmp_path):
    out = tmp_path / "run"
    model = train(_config(tiny_data, 4), out, calibrate=False)
    assert model.num_classes == 4 and model.tau in (0.05, 0.1)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    for key in ("nme_argmax", "nme_topk", "class_acc", "train_error", "auc_topk"):
        assert np.isfinite(log[-1][key])
    train(_config(tiny_data, 6), out, resume=True, calibrate=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]          # resumed at 4, not from scratch
    loaded = load_model(out / "model.pt")
    assert loaded.templates.shape == (4, 68, 2) and loaded.meta["final_validation"]["step"] == 6


def test_split_keeps_photos_together(face):
    faces = [Face(image=np.zeros((4, 4, 3), np.uint8), landmarks=face, name=f"afw/{p}_{j}")
             for p in range(40) for j in range(3)]
    train_faces, val_faces = split_by_photo(faces, 0.25, seed=0)
    assert {f.photo for f in train_faces}.isdisjoint({f.photo for f in val_faces})
    assert 0.1 < len(val_faces) / len(faces) < 0.4


def test_template_bank_counts_and_canonical_frame(face):
    faces = [Face(image=np.zeros((300, 400, 3), np.uint8), landmarks=face, name="x/1_1")]
    cfg = config_from_dict({"classes": {"flips": True, "perturbed_copies": 2}}).classes
    bank = template_bank(faces, cfg)
    assert bank.shape == (6, 68, 2)                      # face, mirror, 2 copies of each
    assert np.abs(bank[:2]).max() <= 0.5 + 1e-6          # unperturbed ones fill the box
    np.testing.assert_allclose(crop_to_canonical(canonical_to_crop(bank, 96, 1.3), 96, 1.3), bank, atol=1e-6)


def test_lr_schedule_warms_up_then_decays():
    cfg = config_from_dict({"train": {"lr": 1.0, "steps": 100, "warmup_steps": 10}}).train
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.5) and lr_at(100, cfg) == pytest.approx(0.0)


def test_photo_names_of_the_three_training_sets(face):
    def photo(name):
        return Face(image=np.zeros((4, 4, 3), np.uint8), landmarks=face, name=name).photo
    assert photo("afw/1051618982_2") == "afw/1051618982"            # <photo>_<face number>
    assert photo("helen-train/100032540_1") == "helen-train/100032540"
    assert photo("lfpw-train/image_0006") == "lfpw-train/image_0006"  # one face per photo, numbered photos
    assert photo("lfpw-train/image_0006") != photo("lfpw-train/image_0007")
