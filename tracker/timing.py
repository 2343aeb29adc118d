"""Wall seconds and counts per stage of the tracker (for ``facetrack bench``), and the one way
to time a stage: ``with timed(times, "classify", len(crops)): ...``."""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class StageTimes:
    """Wall seconds and counts per stage (for ``facetrack bench``)."""

    seconds: dict = field(default_factory=lambda: defaultdict(float))
    counts: dict = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stage: str, seconds: float, count: int = 1) -> None:
        with self._lock:                 # added to from the engine's thread and the temporal stage's
            self.seconds[stage] += seconds
            self.counts[stage] += count


@dataclass
class Timing:
    """The stage being timed; set ``count`` inside the block when it is known only there."""

    count: int = 1


@contextmanager
def timed(times: StageTimes | None, stage: str, count: int = 1) -> Iterator[Timing]:
    """Add the block's wall seconds and ``count`` (or what the block set it to) to ``stage`` of
    ``times`` (None: nothing is recorded). A block that raises records nothing: its work was not done."""
    timing = Timing(count)
    start = time.perf_counter()
    yield timing
    if times is not None:
        times.add(stage, time.perf_counter() - start, timing.count)
