"""bin/predict end to end with a tiny random model (the packaged one is tested elsewhere)."""
import cv2
import numpy as np
import pytest
import torch

from tracker.classifier.model import LandmarkModel, PoseClassifier
from tracker.cli.predict import main as predict_main
from tracker.config import ModelConfig
from tracker.geometry.boxes import landmark_box
from tracker.geometry.shapes import to_canonical
from tracker.io.landmark_csv import read_landmark_csv
from tracker.io.sources import VideoSource


@pytest.fixture
def tiny_model(tmp_path, face):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", crop_size=32, embedding=8)
    base = to_canonical(face, landmark_box(face))
    templates = (base[None] + np.random.default_rng(0).normal(0, 0.01, (6, 68, 2))).astype(np.float32)
    model = LandmarkModel(network=PoseClassifier(cfg, 6).eval(), config={"model": cfg.__dict__},
                          templates=templates, widths=np.full(6, 0.02, np.float32), tau=0.05)
    model.save(tmp_path / "tiny.pt")
    return tmp_path / "tiny.pt"


@pytest.fixture
def image_folder(tmp_path, sample_clip):
    folder = tmp_path / "images"
    folder.mkdir()
    first = next(iter(VideoSource(sample_clip / "vid.mp4")))
    cv2.imwrite(str(folder / "a_face.png"), first.image)
    cv2.imwrite(str(folder / "b_black.png"), np.zeros((120, 160, 3), np.uint8))
    return folder


def test_every_image_gets_a_row(tiny_model, image_folder, tmp_path):
    out = tmp_path / "out.csv"
    assert predict_main([str(image_folder), "--csv", str(out), "--model", str(tiny_model), "--no-progress"]) == 0
    rows = read_landmark_csv(out)
    assert [r.extras["file"] for r in rows] == ["a_face.png", "b_black.png"]
    face_row, empty_row = rows
    assert face_row.success and face_row.frame == 1 and 0 <= face_row.confidence <= 1
    assert not empty_row.success and empty_row.face_id == -1
    x, y = face_row.points[:, 0], face_row.points[:, 1]
    assert 0 < x.min() and x.max() < 640 and 0 < y.min() and y.max() < 360


@pytest.mark.parametrize("args,code,message", [
    (["/no/such/input.mp4", "--csv", "{tmp}/o.csv"], 3, "no such file"),
    (["{tmp}/empty", "--csv", "{tmp}/o.csv"], 3, "no images"),
    (["{tmp}/text.mp4", "--csv", "{tmp}/o.csv"], 3, "not a readable video"),
    (["{images}", "--csv", "{tmp}/missing/dir/o.csv"], 4, "cannot write"),
    (["{images}", "--csv", "{tmp}/o.csv", "--model", "{tmp}/text.mp4"], 3, "not a facetrack model"),
])
def test_bad_inputs(tiny_model, image_folder, tmp_path, capsys, args, code, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.mp4").write_text("hello")
    argv = [a.format(tmp=tmp_path, images=image_folder) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(tiny_model)]
    assert predict_main(argv + ["--no-progress"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
