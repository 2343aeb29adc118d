"""The public Python API: :class:`Tracker` and :func:`read_landmarks`.

The command line is a shell over these objects: ``facetrack track`` is
``Tracker.track`` with sinks, ``facetrack predict`` is ``Tracker.predict`` per frame.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import weakref
from pathlib import Path

import cv2

from tracker.classifier.model import LandmarkModel, load_model, pick_device, resolve_backend
from tracker.config import TrackConfig, track_config
from tracker.detection.detectors import DetectorUnavailable, detector_chain, fallback_detectors
from tracker.detection.identity import FaceIdentity
from tracker.distribution.uncertainty import UncertaintyReader, landmark_heatmap
from tracker.errors import FacetrackError
from tracker.inference.engine import Engine
from tracker.inference.landmarker import Landmarker
from tracker.inference.pipeline import track_frames
from tracker.io.sources import as_bgr_image, open_source, read_image
from tracker.io.table import LandmarkTable, read_landmarks
from tracker.process import map_large_allocations, single_threaded_blas
from tracker.results import FaceResult, FrameResult
from tracker.temporal.stage import TemporalStage, temporal_stage
from tracker.timing import StageTimes

__all__ = ["Tracker", "TrackStream", "FrameResult", "FaceResult", "LandmarkTable", "read_landmarks"]


class Tracker:
    """A landmark model loaded once, with its face detector and tracking settings.

    ``model``: a model file, a loaded :class:`tracker.classifier.model.LandmarkModel`, or None for
    the packaged one. ``device``: "auto" (CUDA when present), "cpu" or "cuda". The network
    runs on torch on a GPU, and on the CPU on the backend ``tracking.backend`` names (auto:
    OpenCV's DNN module, so torch is not imported; see :mod:`tracker.classifier.opencv_network`).
    ``config``: a tracking YAML or a :class:`tracker.config.TrackConfig`; ``settings``
    override single values by name (``batch_size=1``, ``lag=4``, ``temporal=False``; see
    ``configs/track.yaml``). The torch and OpenCV thread counts are set from ``threads``;
    creating a Tracker also sets, for the whole process, NumPy's OpenBLAS to one thread and
    the C heap to map large buffers (:mod:`tracker.process`).
    """

    def __init__(self, model=None, device: str = "auto", *, config: str | Path | TrackConfig | None = None,
                 **settings):
        self.config = track_config(config, **settings)
        cfg = self.config.tracking
        map_large_allocations()
        if isinstance(model, LandmarkModel):
            self.backend = model.backend
            self.device = pick_device(device) if self.backend == "torch" else "cpu"
        else:
            self.backend, self.device = resolve_backend(cfg.backend, device)
        self.threads = network_threads(cfg.threads, self.backend)
        if self.backend == "torch":
            import torch
            torch.set_num_threads(self.threads)
        # OpenCV's pool: the network's threads on the OpenCV backend; beside torch, as many as
        # torch has (its work there, crops, the cut summary and resizes, is small).
        cv2.setNumThreads(self.threads)
        single_threaded_blas()
        if isinstance(model, LandmarkModel):
            if self.backend == "torch":
                model.network.to(self.device)
        else:
            model = load_model(model, self.device, self.backend)
        self.model = model
        self.read_uncertainty = UncertaintyReader(model.templates, model.widths)
        detectors = _detectors(cfg.detector, cfg.upsample)
        self.landmarker = Landmarker(model, detectors, self.device, top_k=cfg.top_k,
                                     passes=cfg.detect_passes, flip_average=cfg.flip_average,
                                     keep_log_probs=self.config.temporal.enabled, regressors=cfg.regressors,
                                     box_refinement=cfg.box_refinement,
                                     fallback=_detectors(cfg.fallback, fallback=True, chain=detectors))
        self.landmarker.device_crops = _device_crops(cfg.device_crops, self.backend, self.device)
        self.batch_size = cfg.gpu_batch_size if self.on_gpu else cfg.batch_size   # frames per classifier call
        self.overlap = cfg.overlap != "off"          # the engine a batch ahead of the temporal stage (files)
        self._streams: weakref.WeakSet = weakref.WeakSet()

    @property
    def on_gpu(self) -> bool:
        return self.backend == "torch" and getattr(self.device, "type", "cpu") == "cuda"

    def track(self, source, fps: float = 30.0) -> "TrackStream":
        """Follow every face through ``source``: a video file, an image file or folder, a
        camera index, or an iterable of HxWx3 uint8 BGR arrays (timestamps (i - 1) / fps).

        Returns a :class:`TrackStream`: iterate it for one :class:`FrameResult` per frame,
        in order. The source is opened now, so a bad path fails here."""
        stream = TrackStream(open_source(source, self.config.tracking.decode_threads, fps), self)
        self._streams.add(stream)
        return stream

    def predict(self, image) -> list[FaceResult]:
        """The faces of one image (an HxWx3 BGR array or an image file), best first, each
        found afresh by the detector (``face_id`` is its rank)."""
        image = read_image(image) if isinstance(image, (str, Path)) else as_bgr_image(image)
        return [self.with_uncertainty(dataclasses.replace(FaceResult.from_estimate(est, i), log_probs=None))
                for i, est in enumerate(self.landmarker(image))]

    def with_uncertainty(self, face: FaceResult) -> FaceResult:
        """``face`` with its head pose and landmark spread (:mod:`tracker.distribution.uncertainty`) set."""
        return dataclasses.replace(face, uncertainty=self.read_uncertainty(face.classes, face.probs, face.box))

    def heatmap(self, face: FaceResult, size: tuple[int, int]):
        """(H, W) float32 in [0, 1]: where ``face``'s landmarks may be in a frame of ``size``
        (height, width) under its class distribution (:func:`tracker.distribution.uncertainty.landmark_heatmap`)."""
        return landmark_heatmap(face.classes, face.probs, self.model.templates, self.model.widths, face.box, size)

    def described(self, result: FrameResult) -> FrameResult:
        """``result`` with every face's uncertainty set."""
        return FrameResult(result.frame, tuple(self.with_uncertainty(f) for f in result.faces))

    def new_engine(self) -> Engine:
        """A fresh tracking engine over this tracker's landmarker (one per stream)."""
        temporal = self.config.temporal
        cfg = self.config.tracking
        identity = FaceIdentity() if cfg.cuts == "auto" and FaceIdentity.available() else None
        return Engine(self.landmarker, cfg, identity=identity, hold_frames=temporal.hold_frames if temporal.enabled else 0)

    def new_temporal_stage(self, live: bool, times: StageTimes | None = None) -> TemporalStage | None:
        """A fresh stage after the engine (HMM, regressors, smoothing: those that are on; the
        regressors' seconds added to ``times``), or None when all are off."""
        regress = self.landmarker.regress if self.landmarker.cascade is not None else None
        return temporal_stage(self.config.temporal, self.model, live, regress, times)

    def close(self) -> None:
        """Close every stream still open (their decoders and cameras are released)."""
        for stream in list(self._streams):
            stream.close()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TrackStream:
    """The results of one source, frame by frame: an iterator and a context manager.

    ``source`` is the opened source (``fps``, ``frame_count``, ``live``, and ``damage``:
    what was wrong with the input, '' when nothing). Each result waits until its temporal
    decoding is final (``lag`` frames for files); after stopping early, :meth:`finish`
    returns the frames still held, decided now. Closing (or leaving the ``with`` block,
    or an exception) stops the decode thread and releases the decoder.
    """

    def __init__(self, source, tracker: Tracker):
        self.source = source
        self._tracker = tracker
        self.live = bool(getattr(source, "live", False))
        self.engine = tracker.new_engine()
        self.temporal = tracker.new_temporal_stage(self.live, self.engine.times)   # "regress" inside "temporal"
        cfg = tracker.config.tracking
        self._results = track_frames(source, self.engine, tracker.batch_size, max(cfg.queue_size, tracker.batch_size),
                                     cfg.latency or self.live,
                                     self.temporal, cuts=cfg.cuts, overlap=tracker.overlap)

    @property
    def times(self) -> StageTimes:
        """Seconds and counts per stage so far (decode, crop, classify, detect, temporal)."""
        return self.engine.times

    @property
    def damage(self) -> str:
        return getattr(self.source, "damage", "")

    def __iter__(self) -> "TrackStream":
        return self

    def __next__(self) -> FrameResult:
        return self._tracker.described(next(self._results))

    def finish(self) -> list[FrameResult]:
        """Stop, and return the frames the temporal stage still holds, decided now."""
        self.close()
        return [] if self.temporal is None else [self._tracker.described(r) for r in self.temporal.drain()]

    def close(self) -> None:
        started = inspect.getgeneratorstate(self._results) != inspect.GEN_CREATED
        self._results.close()            # stops and joins a file's decode thread, which releases the decoder
        self.engine.close()              # and the scan worker
        if hasattr(self.source, "close") and (self.live or not started):
            self.source.close()          # a camera (read on this thread), or a file opened but never read

    def __enter__(self) -> "TrackStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _device_crops(setting: str, backend: str, device) -> bool:
    """Whether crops are cut on the network's device (``tracking.device_crops``)."""
    if setting == "on" and backend != "torch":
        raise FacetrackError("tracking.device_crops: 'on' needs the torch backend (tracking.backend=torch)")
    return setting == "on" or (setting == "auto" and backend == "torch" and getattr(device, "type", "") == "cuda")


def network_threads(setting: int, backend: str) -> int:
    """The network's CPU threads for a ``tracking.threads`` setting (0: auto). Auto is one
    for torch, whose OpenMP threads spin beside the decode thread (2 of them on 2 cores
    swung between 8 and 73 fps), and every core for OpenCV's pool, which does not (on 2
    cores: 72.7 fps against 51.7 with one, whole process on the sample 8.1 s against 10.5 s)."""
    if setting:
        return setting
    return 1 if backend == "torch" else max(1, os.cpu_count() or 1)


def _detectors(name: str, upsample: int = 0, fallback: bool = False, chain: list = ()) -> list:
    try:
        return fallback_detectors(name, chain) if fallback else detector_chain(name, upsample=upsample)
    except DetectorUnavailable as exc:
        raise FacetrackError(str(exc)) from None
