import re

import pytest

from tracker.config import ConfigError, config_from_dict, load_config, load_fit_config, load_track_config, track_config


def test_defaults_and_overrides():
    cfg = config_from_dict({"train": {"loss": "softmax", "steps": 10}, "classes": {"tau": 0.03, "tau_candidates": [0.01, 0.02]}})
    assert cfg.train.loss == "softmax" and cfg.train.steps == 10 and cfg.train.batch_size == 64
    assert cfg.classes.tau == 0.03 and cfg.classes.tau_candidates == (0.01, 0.02)


@pytest.mark.parametrize("values,message", [
    ({"train": {"lrr": 1}}, "unknown key 'lrr' \\(did you mean 'lr'\\?\\)"),
    ({"trian": {}}, "did you mean 'train'"),
    ({"train": {"steps": "many"}}, "expected a number"),
    ({"train": {"steps": 1.5}}, "expected a number"),
    ({"train": {"amp": "yes"}}, "expected true or false"),
    ({"model": 3}, "expected a mapping"),
    ({"train": {"batch_size": 1}}, "^config: train.batch_size: must be at least 2, got 1$"),
    ({"train": {"lr": 0}}, "train.lr: must be greater than 0.0"),
    ({"train": {"loss": "l2"}}, "train.loss: expected one of softmax, soft_target, multilabel, got 'l2'"),
    ({"classes": {"kind": "kmeans", "k": 0}}, "classes.k: kind kmeans needs k >= 1"),
    ({"classes": {"tau_candidates": [0.02, 0.0]}}, "classes.tau_candidates: must be greater than 0.0"),
    ({"model": {"crop_size": 16}}, "model.crop_size: must be at least 32"),
    ({"augment": {"flip_p": 1.5}}, "augment.flip_p: must be between 0.0 and 1.0"),
    ({"data": {"train_sets": ["afw", "helen-test"]}}, "includes helen-test, the test set; it is never trained on"),
])
def test_bad_values_are_rejected_with_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)


def test_every_committed_config_loads():
    from pathlib import Path

    from tracker.training.sweep import grid_configs, load_sweep
    root = Path(__file__).parents[1] / "configs"
    configs = sorted(root.glob("*.yaml"))
    assert configs
    for path in configs:
        if path.name == "track.yaml":
            continue                     # tracking settings, not a training run (tested below)
        if path.name.startswith("regressors-"):
            load_fit_config(path)     # regressors for a classifier (facetrack fit)
            continue
        load_config(path)
    for path in sorted((root / "sweeps").glob("*.yaml")):
        base, points, losses, _ = load_sweep(path)
        assert len(grid_configs(base, points, losses)) == len(points) * len(losses)


def test_fit_config_rejects_the_test_set_and_bad_values(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  train_sets: [afw, helen-test]\n")
    with pytest.raises(ConfigError, match="helen-test, the test set"):
        load_fit_config(path)
    path.write_text("cascade:\n  shrinkage: 0\n")
    with pytest.raises(ConfigError, match="cascade.shrinkage: must be greater than 0"):
        load_fit_config(path)
    path.write_text("cascade:\n  tress: 10\n")
    with pytest.raises(ConfigError, match="did you mean 'trees'"):
        load_fit_config(path)
    path.write_text("role: photo\n")
    with pytest.raises(ConfigError, match="role: expected one of video, stills, got 'photo'"):
        load_fit_config(path)


def test_track_yaml_matches_the_built_in_defaults():
    from pathlib import Path

    from tracker.config import TrackConfig, load_track_config
    assert load_track_config(Path(__file__).resolve().parents[1] / "configs" / "track.yaml") == TrackConfig()


def test_track_config_rejects_unknown_keys_and_bad_types():
    import pytest

    from tracker.config import ConfigError, load_track_config
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        load_track_config(None, {"tracking": {"batchsize": 4}})
    with pytest.raises(ConfigError, match="expected true or false"):
        load_track_config(None, {"tracking": {"latency": "yes"}})


@pytest.mark.parametrize("section, key, value, message", [
    ("tracking", "batch_size", 0, "tracking.batch_size: must be at least 1, got 0"),
    ("tracking", "threads", -1, "tracking.threads: must be at least 0"),
    ("tracking", "lost_confidence", 2, r"tracking.lost_confidence: must be between 0.0 and 1.0, got 2.0"),
    ("tracking", "detector", "foo",
     "tracking.detector: expected auto or detectors from blazeface, dlib, haar joined by '+', got 'foo'"),
    ("tracking", "top_k", 0, "tracking.top_k: must be at least 1"),
    ("tracking", "regressors", "photo", "tracking.regressors: expected one of video, stills, off, got 'photo'"),
    ("temporal", "lag", -1, "temporal.lag: must be at least 0"),
    ("temporal", "neighbours", 0, "temporal.neighbours: must be at least 1"),
    ("temporal", "prune_top", -5, "temporal.prune_top: must be at least 0, got -5"),
    ("temporal", "hold_frames", -1, "temporal.hold_frames: must be at least 0"),
])
def test_track_config_rejects_values_out_of_range(section, key, value, message):
    from tracker.config import load_track_config
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_track_config(None, {section: {key: value}})


def test_track_config_accepts_the_edges_of_each_range():
    from tracker.config import load_track_config
    cfg = load_track_config(None, {"tracking": {"batch_size": 1, "lost_confidence": 0, "redetect_every": 0,
                                                "detector": "haar"},
                                   "temporal": {"lag": 0, "prune_top": 0, "hold_frames": 0, "neighbours": 1}})
    assert cfg.tracking.batch_size == 1 and cfg.tracking.detector == "haar" and cfg.temporal.prune_top == 0


def test_override_of_a_section_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml: train: expected a mapping, got int"):
        load_config(path, {"train": {"steps": 3}})


def test_on_and_off_settings_take_yaml_s_unquoted_words(tmp_path):
    """YAML reads on / off as true / false: where a setting's words are on and off, both spellings work."""
    from tracker.cli.common import parse_overrides
    from tracker.config import load_track_config
    cfg = load_track_config(None, parse_overrides(["tracking.overlap=on", "tracking.device_crops=off"]))
    assert (cfg.tracking.overlap, cfg.tracking.device_crops) == ("on", "off")
    path = tmp_path / "t.yaml"
    path.write_text("tracking:\n  overlap: off\n  device_crops: 'on'\n")
    cfg = load_track_config(path)
    assert (cfg.tracking.overlap, cfg.tracking.device_crops) == ("off", "on")
    with pytest.raises(ConfigError, match="tracking.regressors: expected text, got True"):
        load_track_config(None, {"tracking": {"regressors": True}})      # not a setting of on / off words


@pytest.mark.parametrize("old, hint", [
    ("refine", "regressors: off or box_refinement: false"),
    ("follow_refined", "follow_box_refinement"),
    ("refine_drift", "reclassify_drift"),
])
def test_a_key_under_its_old_name_says_what_replaced_it(tmp_path, old, hint):
    path = tmp_path / "t.yaml"
    path.write_text(f"tracking:\n  {old}: false\n")
    with pytest.raises(ConfigError, match=f"tracking: unknown key '{old}' \\(renamed: did you mean {hint}"):
        load_track_config(path)
    with pytest.raises(ConfigError, match=f"unknown setting '{old}' \\(renamed: did you mean {hint}"):
        track_config(**{old: False})


def test_regressors_and_box_refinement_are_switched_apart():
    assert track_config(regressors="off").tracking.box_refinement
    assert track_config(box_refinement=False).tracking.regressors == "video"
    with pytest.raises(ConfigError, match="expected one of video, stills, off"):
        track_config(regressors="none")


def test_the_fit_config_box_section_under_its_old_name(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("box:\n  enabled: false\n")
    with pytest.raises(ConfigError, match="renamed: did you mean box_refinement"):
        load_fit_config(path)
