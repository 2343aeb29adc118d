"""The K = 140,000 training config (configs/k140k.yaml): its classes, and the same config
trained on the CPU with K = 2,000 for two steps."""
from __future__ import annotations

import numpy as np
import pytest

from tracker.config import load_config
from tracker.training.classifier import exemplar_subset, train
from tracker.training.data import load_faces, split_by_photo, template_bank

pytestmark = pytest.mark.slow        # every test here takes seconds

CONFIG = "configs/k140k.yaml"


def config(shared_data, **sections):
    overrides = {"data": {"root": str(shared_data / "300w-subset")}}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_config(CONFIG, overrides)


def assert_140000_distinct_exemplar_classes(cfg):
    faces = load_faces(cfg.data.root, cfg.data.train_sets)
    train_faces, _ = split_by_photo(faces, cfg.data.val_fraction, cfg.data.split_seed)
    bank = template_bank(train_faces, cfg.classes)
    assert len(bank) == len(train_faces) * 2 * (1 + cfg.classes.perturbed_copies) >= 140_000
    classes = exemplar_subset(bank, cfg.classes.k, cfg.classes.seed)
    assert classes.shape == (140_000, 68, 2)
    assert len(np.unique(classes.reshape(len(classes), -1), axis=0)) == 140_000     # no exemplar twice


def test_the_config_builds_140000_exemplar_classes(shared_data):
    assert_140000_distinct_exemplar_classes(config(shared_data))


def test_a_tiny_version_of_the_same_config_trains_on_the_cpu(shared_data, tmp_path):
    cfg = config(shared_data, classes={"k": 2000, "perturbed_copies": 0},
                 train={"steps": 2, "batch_size": 8, "val_every": 2, "checkpoint_every": 2, "device": "cpu",
                        "threads": 1})
    model = train(cfg, tmp_path, calibrate=False)
    assert model.num_classes == 2000 and model.templates.shape == (2000, 68, 2)
    assert (tmp_path / "model.pt").is_file() and np.isfinite(model.meta["final_validation"]["loss"])


def test_the_cpu_comparison_config_is_the_default_recipe_with_only_k_changed(shared_data):
    """configs/k140k-cpu.yaml answers "does K = 140,000 beat the default's K?" only if K is
    all that differs from configs/default.yaml; and it must give 140,000 distinct classes."""
    from tracker.config import config_to_dict
    root = {"data": {"root": str(shared_data / "300w-subset")}}
    default, wide = (config_to_dict(load_config(f"configs/{name}.yaml", root)) for name in ("default", "k140k-cpu"))
    for cfg in (default, wide):
        cfg.pop("name")
        cfg["classes"].pop("k")
        cfg["classes"].pop("perturbed_copies")
    assert wide == default
    assert_140000_distinct_exemplar_classes(load_config("configs/k140k-cpu.yaml", root))
