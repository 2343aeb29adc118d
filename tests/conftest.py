"""Shared fixtures: the ../shared data folder (its path: tests/shared.py; skipped with a reason
when absent)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from shared import SHARED_DATA, absent_reason

REPO = Path(__file__).resolve().parents[1]
# caches the code keeps in the user's home (class poses of unpackaged models, Numba caches of
# batch workers) go to a folder of this run instead, for the subprocesses too
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="facetrack-test-cache-")


def _need(path: Path) -> Path:
    reason = absent_reason(path)
    if reason:
        pytest.skip(reason)
    return path


@pytest.fixture
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture
def helen_test() -> Path:
    return _need(SHARED_DATA / "300w-subset" / "helen-test")


@pytest.fixture
def sample_clip() -> Path:
    """The bundled sample (a copy of videos/wolfganglanger) with its pseudo-labels."""
    return REPO / "tracker" / "assets" / "sample"


@pytest.fixture
def face() -> np.ndarray:
    """A plausible 68-point face (0-based pixels), from the bundled sample's first label."""
    from tracker.io.annotations import read_pts
    return read_pts(REPO / "tracker" / "assets" / "sample" / "annot" / "000001.pts")
