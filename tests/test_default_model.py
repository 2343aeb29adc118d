"""The packaged default model on the bundled sample clip (pseudo-labels from dlib)."""
import itertools

import numpy as np
import pytest
import torch

from tracker.detect import detector_chain
from tracker.io.annotations import read_300vw
from tracker.io.sources import VideoSource
from tracker.landmarker import Landmarker
from tracker.metrics import nme
from tracker.model import DEFAULT_MODEL, load_model


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_model()


def test_packaged_model_is_small_and_complete(model):
    assert DEFAULT_MODEL.stat().st_size < 40 * 2**20
    assert model.templates.shape[1:] == (68, 2) and len(model.widths) == model.num_classes
    assert 0 < model.tau < 0.2 and {"dlib", "haar"} <= set(model.calibration)


def test_landmarks_on_sample_frames(model, sample_clip):
    labels = read_300vw(sample_clip).landmarks
    landmarker = Landmarker(model, detector_chain("auto", upsample=0))
    errors = []
    for frame in itertools.islice(VideoSource(sample_clip / "vid.mp4"), 0, 60, 6):
        faces = landmarker(frame.image)
        assert len(faces) == 1
        errors.append(nme(faces[0].landmarks, labels[frame.index]))
        assert 0 < faces[0].confidence <= 1
    # Against the clip's dlib pseudo-labels; 0.08 is the failure threshold.
    assert np.mean(errors) < 0.04 and max(errors) < 0.08
