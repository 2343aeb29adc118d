"""Files kept in the user's cache (``$XDG_CACHE_HOME/facetrack``, else ``~/.cache/facetrack``):
things computed once per machine that would cost time at every start-up."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def user_cache(*parts: str) -> Path:
    """A path under the user's facetrack cache folder (not created)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "facetrack", *parts)


def keep(path: Path, write: Callable[[Path], None]) -> None:
    """Best effort: ``write(part)`` to a temporary name beside ``path``, then rename it there, so
    no reader sees half a file. A cache that cannot be written only costs the work next time."""
    part = path.with_name(f"{path.stem}.{os.getpid()}.part{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(part)
        os.replace(part, path)
    except (OSError, RuntimeError):
        try:
            part.unlink(missing_ok=True)
        except OSError:
            pass
