"""Shared fixtures: the ../shared data folder (skipped with a reason when absent)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# caches the code keeps in the user's home (class poses of unpackaged models, Numba caches of
# batch workers) go to a folder of this run instead, for the subprocesses too
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="facetrack-test-cache-")
SHARED_DATA = Path(os.environ.get("FACETRACK_SHARED", REPO.parent / "shared")) / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the shared data folder beside the repository); absent here")
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
