"""Peak memory of a training step measured on fake tensors (tracker.training.step_memory): the same
bytes as the step run for real, the head's share growing with K, and `facetrack train --memory`."""
import dataclasses

import pytest
import yaml

from tests.clips import tiny_face_folder
from tracker.cli import main
from tracker.config import ModelConfig, config_from_dict
from tracker.training.data import load_faces, split_by_photo, template_bank
from tracker.training.step_memory import class_count, step_peak

SMALL = dataclasses.replace(ModelConfig(), crop_size=32, embedding=16)


@pytest.mark.slow
@pytest.mark.parametrize("amp", [False, True])
def test_fake_tensors_measure_the_same_peak_as_a_real_step(amp):
    fake = step_peak(SMALL, 300, 4, amp, members=20)
    real = step_peak(SMALL, 300, 4, amp, members=20, fake=False)
    assert fake == real
    assert fake["Total"] >= fake["Parameter"] > 0 and fake["Optstate"] >= 2 * fake["Parameter"]


def test_the_head_its_gradient_and_optimizer_state_grow_with_k():
    small, large = step_peak(SMALL, 100, 4), step_peak(SMALL, 20_100, 4)
    head_bytes = 20_000 * (SMALL.embedding + 1) * 4               # 20,000 more rows of weights and bias, fp32
    assert large["Parameter"] - small["Parameter"] == head_bytes
    assert large["Optstate"] - small["Optstate"] >= 2 * head_bytes          # AdamW's two moments
    assert large["Total"] - small["Total"] >= 3 * head_bytes


def _tiny_settings(root, **classes) -> dict:
    return {"name": "tiny", "data": {"root": str(root), "train_sets": ["faces"], "val_fraction": 0.3},
            "classes": {"kind": "exemplar", "perturbed_copies": 2, **classes},
            "model": {"crop_size": 32, "embedding": 8}, "train": {"batch_size": 4}}


def _tiny_config(root, **classes):
    return config_from_dict(_tiny_settings(root, **classes))


def test_class_count_matches_the_template_bank(tmp_path, face):
    cfg = _tiny_config(tiny_face_folder(tmp_path / "data", face))
    faces, _ = split_by_photo(load_faces(cfg.data.root, cfg.data.train_sets), cfg.data.val_fraction,
                              cfg.data.split_seed)
    assert class_count(cfg) == len(template_bank(faces, cfg.classes)) == len(faces) * 2 * 3
    assert class_count(_tiny_config(tmp_path / "data", k=7)) == 7


def test_train_memory_prints_the_peaks_without_training(tmp_path, face, capsys):
    root = tiny_face_folder(tmp_path / "data", face)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_tiny_settings(root, k=5000)))
    assert main(["train", "--config", str(config), "--memory", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "K = 5,000 classes, 4 crops of 32 px" in out
    assert "fp32" in out and "bf16 autocast" in out and out.count("GiB") >= 2
    assert not (tmp_path / "run").exists()
