"""Where the shared test data lives: the one place that computes it.

``$FACETRACK_SHARED`` when set, else the ``shared`` folder beside the repository
(``../shared``). Tests import it (``from shared import SHARED_DATA, needs_shared``), as
conftest.py does for its fixtures; tests that need the data skip, with the missing path as
the reason, where it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACETRACK_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"


def absent_reason(*paths: Path) -> str:
    """Why a test that needs ``paths`` is skipped ("" when all of them exist)."""
    missing = [p for p in paths if not Path(p).exists()]
    if not missing:
        return ""
    return (f"needs {', '.join(str(p) for p in missing)} (the shared data folder beside the "
            f"repository, or $FACETRACK_SHARED); absent here")


def needs_shared(*paths: Path) -> pytest.MarkDecorator:
    """Skip marker: skip the test, saying which path is missing, unless every one of ``paths``
    (default: the shared data folder) exists."""
    reason = absent_reason(*(paths or (SHARED_DATA,)))
    return pytest.mark.skipif(bool(reason), reason=reason or "shared data present")
