"""Source -> engine -> results: a decoding thread, a bounded queue, batches, shutdown.

Files are decoded on a producer thread (PyAV releases the GIL, so decoding overlaps
with the classifier) into a bounded queue: back-pressure, nothing lost. Live sources
already hand out only their newest frame and are read in place, one frame per batch.
"""
from __future__ import annotations

import queue
import threading
from contextlib import contextmanager, nullcontext
from typing import Iterable, Iterator

from tracker.inference.cuts import mark_cuts
from tracker.inference.engine import Engine
from tracker.io.sources import Frame
from tracker.results import FrameResult
from tracker.timing import StageTimes, timed

POLL_SECONDS = 0.1


class _End:
    """End-of-stream marker; carries the producer's exception when it failed."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put with a timeout loop so a stopped consumer never leaves the producer blocked."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def decoded(items: Iterable, times: StageTimes | None) -> Iterator:
    """``items``, with the wait for each one added to ``times`` as "decode"."""
    items = iter(items)
    while True:
        with timed(times, "decode"):
            item = next(items, None)
        if item is None:
            return
        yield item


@contextmanager
def prefetched(source: Iterable, size: int, times: StageTimes | None = None,
               name: str = "decode") -> Iterator[Iterator]:
    """Items of ``source`` (frames: decoded) made ahead on a thread ``name``, at most ``size``
    waiting; the producer's wait for each is added to ``times`` as "decode"."""
    q: queue.Queue = queue.Queue(maxsize=max(1, size))
    stop = threading.Event()

    def produce() -> None:
        end = _End()
        try:
            for item in decoded(source, times):
                if not _put(q, item, stop):
                    break
        except BaseException as exc:          # handed to the consumer, which re-raises it
            end = _End(exc)
        finally:
            _put(q, end, stop)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()

    def consume() -> Iterator:
        while True:
            try:
                item = q.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if not thread.is_alive() and q.empty():
                    return
                continue
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    try:
        yield consume()
    finally:
        stop.set()
        while True:                               # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                break
        thread.join(timeout=5.0)


def batched(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def track_frames(source, engine: Engine, batch_size: int = 8, queue_size: int = 8,
                 latency: bool = False, temporal=None, cuts: str = "auto",
                 overlap: bool = False) -> Iterator[FrameResult]:
    """Every frame's result, in order. Live sources (and ``latency``) go one frame at a time.

    ``temporal`` (a :class:`tracker.temporal.stage.TemporalStage`: the HMM, the regressors, the
    smoothing, whichever are on) delays each result until its decoding is final; whoever stops
    early calls its ``drain()`` for the frames it holds.
    ``cuts`` is how shot changes are marked (:func:`tracker.inference.cuts.mark_cuts`), on the decode thread.
    With ``overlap`` (files only, with a temporal stage) the engine runs on a thread one batch
    ahead: the next batch is classified while this one's temporal stage runs here.
    """
    live = getattr(source, "live", False)
    one_at_a_time = live or latency
    marked = mark_cuts(source, cuts, engine.times)
    frames_cm = nullcontext(decoded(marked, engine.times)) if live else prefetched(marked, queue_size, engine.times)
    with frames_cm as frames:
        processed = (engine.process(batch) for batch in batched(frames, 1 if one_at_a_time else max(1, batch_size)))
        ahead = overlap and temporal is not None and not one_at_a_time
        with prefetched(processed, 1, name="engine") if ahead else nullcontext(processed) as results:
            yield from _through_temporal(results, temporal, engine.times)


def _through_temporal(processed: Iterable[list[FrameResult]], temporal, times: StageTimes) -> Iterator[FrameResult]:
    """Each batch's results, through the temporal stage when there is one."""
    for results in processed:
        for result in results:
            if temporal is None:
                yield result
                continue
            with timed(times, "temporal"):
                temporal.ready.extend(temporal.push(result))
            while temporal.ready:            # kept on the stage until handed on: nothing lost on a stop
                yield temporal.ready.popleft()
    if temporal is not None:
        temporal.ready.extend(temporal.flush())
        while temporal.ready:
            yield temporal.ready.popleft()
