"""facetrack: 68-point facial landmarks by K-way pose classification (Li, Jeni, Ramanan 2018).

The public names: :class:`Tracker` (``track`` a video, folder, camera or frame iterator;
``predict`` one image), :func:`read_landmarks` (our CSV or .pts files into arrays), and the
result types :class:`FrameResult`, :class:`FaceResult`, :class:`LandmarkTable`. They load
on first use, so ``import tracker`` stays light.
"""

__version__ = "0.1.0"

_PUBLIC = {"Tracker": "api", "TrackStream": "api", "FrameResult": "results", "FaceResult": "results",
           "LandmarkTable": "io.table", "read_landmarks": "io.table", "FacetrackError": "errors"}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib
        value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
