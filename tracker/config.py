"""YAML configuration parsed into frozen dataclasses; unknown keys are rejected."""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from tracker.errors import FacetrackError


class ConfigError(FacetrackError, ValueError):
    """A configuration file with an unknown key or a value of the wrong type."""


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges and probabilities of each augmentation (0 turns one off).

    rotate_deg: uniform roll in +-degrees. scale: log-uniform side change within
    +-log(1 + scale). shift: uniform centre shift per axis, as a fraction of the box side.
    brightness / contrast / saturation: factors uniform in 1 +- value. noise_std: Gaussian
    noise in grey levels (0-255).
    """

    flip_p: float = 0.5
    rotate_deg: float = 15.0
    scale: float = 0.1
    shift: float = 0.08
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.2
    blur_p: float = 0.2
    blur_max_sigma: float = 1.5
    occlude_p: float = 0.3
    occlude_max_frac: float = 0.4
    grayscale_p: float = 0.05
    noise_std: float = 0.0

    @classmethod
    def off(cls) -> "AugmentConfig":
        """Every augmentation disabled: samples become plain crops."""
        return cls(**{f.name: 0.0 for f in fields(cls)})


@dataclass(frozen=True)
class DataConfig:
    root: str = "../shared/data/300w-subset"
    train_sets: tuple[str, ...] = ("afw", "helen-train")
    val_fraction: float = 0.1          # of training images, split by source photo
    split_seed: int = 0


@dataclass(frozen=True)
class ClassesConfig:
    kind: str = "exemplar"             # "exemplar" (one class per template) or "kmeans"
    k: int = 0                         # number of k-means classes (kind = kmeans); exemplar: keep k of
                                       # them, a seeded random subset (0: all)
    flips: bool = True                 # mirrored faces become classes too
    perturbed_copies: int = 5          # jittered copies of each face (detector error, roll)
    perturb_rotate_deg: float = 10.0
    perturb_scale: float = 0.06
    perturb_shift: float = 0.06
    tau: float | None = None           # membership radius (RMS, box units); None = choose on validation
    tau_candidates: tuple[float, ...] = (0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1)
    seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet18"         # any torchvision classification model name
    crop_size: int = 96
    margin: float = 1.3                # crop side = margin x face box side
    embedding: int = 256               # features before the K-way layer (0 = backbone's own)


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "multilabel"           # softmax | soft_target | multilabel
    steps: int = 2000
    batch_size: int = 64               # the global batch of a step (split over accumulate x processes)
    accumulate: int = 1                # micro-batches per step in each process (gradients summed)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    val_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "auto"               # auto | cpu | cuda
    threads: int = 0                   # the network's CPU threads (0: auto, 1 for torch, every core for opencv)
    decode_threads: int = 1            # FFmpeg threads decoding video (0: one per core)
    amp: bool = True                   # mixed precision on CUDA
    top_k: int = 50                    # templates averaged for the landmark estimate


@dataclass(frozen=True)
class Config:
    name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    classes: ClassesConfig = field(default_factory=ClassesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class TrackingConfig:
    """How ``facetrack track`` follows faces (``configs/track.yaml`` holds these defaults)."""

    batch_size: int = 8                # frames per classifier call for files (crops of all faces)
    gpu_batch_size: int = 64           # the same when the network runs on a GPU
    device_crops: str = "auto"         # crops cut on the network's device from uploaded frames (roi_align):
                                       # auto (on a GPU) | on (torch backend) | off (OpenCV on the CPU)
    overlap: str = "auto"              # the next batch classified on a thread while this one's temporal stage
                                       # (HMM, regressors) runs: auto = on (files; never live or latency) | off
    latency: bool = False              # true: one frame per call, nothing waits (always so for webcams)
    queue_size: int = 8                # decoded frames buffered ahead of the classifier
    threads: int = 0                   # the network's CPU threads (0: auto, 1 for torch, every core for opencv)
    decode_threads: int = 1            # FFmpeg threads decoding video (0: one per core)
    detector: str = "auto"             # auto (BlazeFace; dlib then Haar without it) | blazeface | dlib | haar,
                                       # or a chain joined by '+' (blazeface+dlib: dlib where BlazeFace finds none)
    upsample: int = 1                  # BlazeFace: 1 also scans the frame's quarters (faces down to ~20 px in
                                       # 640x480); dlib: upsampling (1 finds faces down to ~40 px)
    fallback: str = "auto"             # last resort on a still image the chain finds no face in: auto (dlib's CNN
                                       # where it loads) | cnn | none
    cuts: str = "auto"                 # shot changes: auto (detected) | every_frame (unrelated photos) | never
    redetect_every: int = 4            # frames between detector scans for new faces while tracking (0: never;
                                       # 4: a face that comes in is found within 6 frames)
    scan_upsample: int = 0             # upsampling for those scans (BlazeFace: 1 adds the quarters; dlib: 0 is ~4x
                                       # cheaper, faces over ~50 px)
    scan_scale: float = 1.0            # those scans see the frame resized by this (dlib: 1.3 finds faces down to
                                       # ~40 px; BlazeFace: no use)
    lost_confidence: float = 0.3       # a face whose confidence (probability it is right) falls below this is lost
    held_scan_every: int = 4           # while a face is held (its confidence fell), the detector looks every N frames
    empty_scan_every: int = 1          # while no face is followed, the detector scans every N frames (1: every
                                       # frame; 3: ~2x faster on sparse footage, fewer frames with a face)
    follow_box_refinement: bool = True # crops follow the box refinement's box (false: the landmarks' own box)
    reclassify_drift: float = 0.12     # classify again when the landmarks moved this far from the crop (box sides)
    classify_every: int = 2            # a steady face goes through the classifier on one frame in N; on the others
                                       # its last result is followed by optical flow (1: every frame)
    faint_faces: bool = True           # a detection the classifier is not sure of is followed by optical flow,
                                       # the detector looking again every 8 frames (false: written on its frame only)
    detect_passes: int = 2             # classifier passes on a fresh detection
    max_faces: int = 16                # faces followed at most (the largest first when there are more)
    forget_after: int = 60             # frames a lost face's id is kept for, should it come back in place
    top_k: int = 50                    # classes averaged for the landmarks
    flip_average: bool = False         # test-time mirroring: the mirrored crop classified and the mirrored
                                       # face regressed too, each averaged (twice the compute; predict's default)
    regressors: str = "video"          # the cascaded regressors after the classifier: video (NAME.regressors.pt) |
                                       # stills (NAME.stills.regressors.pt where the model has one, a network stage
                                       # + trees: predict's default) | off (classification alone)
    box_refinement: bool = True        # the box refinement (paper Fig. 6) between classifier passes, where the
                                       # model has one (false: crops around the landmarks' own box)
    backend: str = "auto"              # the network's engine: auto (torch on a GPU, else opencv) | torch | opencv


@dataclass(frozen=True)
class TemporalConfig:
    """The K-state HMM over pose classes and the final smoothing (paper Sec. 3.4)."""

    enabled: bool = True               # false: per-frame estimates only (facetrack track --no-temporal)
    lag: int = 8                       # frames a file's decision waits for (live sources use 0)
    neighbours: int = 32               # pose classes each class may move to between frames
    prune_top: int = 512               # decode only the M best states per frame (0: all K, exact)
    smoothing: bool = True             # 3-frame low-pass on the decoded landmarks
    hold_frames: int = 12              # frames a face whose confidence fell is kept, the HMM carrying it; in files
                                       # written only when the face comes back (a face lost instead was gone)


@dataclass(frozen=True)
class CascadeConfig:
    """The cascaded shape regressors after the classifier (fitted by ``facetrack fit``)."""

    kind: str = "trees"                # trees: gradient-boosted regression trees on pixel differences;
                                       # linear: the paper's ridge stages on appearance (RootSIFT) at the landmarks
    clusters: int = 1                  # clusters of pose classes, each with its own cascade
    stages: int = 10                   # cascade stages (features re-read at each stage's shapes)
    trees: int = 200                   # trees per stage
    depth: int = 4                     # splits from root to leaf
    shrinkage: float = 0.1             # learning rate of the boosting
    feature_pool: int = 400            # shape-indexed pixels read per stage
    candidate_splits: int = 20         # random splits tried per node
    pair_prior: float = 0.1            # pixel pairs drawn ~ exp(-distance / (pair_prior * face side))
    face_size: int = 100               # px: side of the mean shape's box in the normalised face crop
    crop_size: int = 160               # px: side of the normalised face crop
    descriptor_size: float = 4.0       # linear: SIFT keypoint diameter in crop px (window ~6x that)
    ridge: float = 1000.0              # linear: ridge strength on standardised features
    net_stages: int = 0                # small convolutional network stages before the others
    net_size: int = 64                 # net: input side, px
    net_span: float = 128.0            # net: crop px the input covers
    net_widths: tuple[int, ...] = (24, 48, 96, 192)
    net_hidden: int = 256
    net_dropout: float = 0.0
    net_local: bool = False            # net: also a per-landmark term of the feature maps read at the landmark
    net_epochs: int = 12
    net_batch: int = 128
    net_lr: float = 0.002
    net_weight_decay: float = 0.0001
    net_rotate_deg: float = 3.0        # net: random similarity moving each batch's starts
    net_scale: float = 0.03
    net_shift: float = 0.02
    net_contrast: bool = True          # net: random contrast gain on the inputs
    net_degrade: float = 0.0           # net: chance an input is blurred / downscaled / JPEG'd / noised like video
    seed: int = 0


@dataclass(frozen=True)
class StartsConfig:
    """The starting shapes the regressors learn from: like the classifier's real outputs."""

    classifier: int = 3                # classifier estimates per face, from boxes jittered like a detector's
    neighbours: int = 2                # neighbouring exemplars' shapes placed in the classifier's box
    neighbour_rank: int = 10           # ... drawn among this many nearest (other photos only)
    perturbed: int = 0                 # classifier estimates moved by a random similarity (cheap variety)
    perturb_rotate_deg: float = 6.0
    perturb_scale: float = 0.06        # log scale
    perturb_shift: float = 0.05        # of the face box side
    flips: bool = True                 # mirrored faces too
    augmented: int = 0                 # extra copies of each face, warped and recoloured (as for the classifier)
    augment_rotate_deg: float = 15.0
    augment_scale: float = 0.1


@dataclass(frozen=True)
class BoxRefinementConfig:
    """The box refinement (paper Fig. 6): ridge from the classifier's embedding to the face box."""

    enabled: bool = True
    rescales: int = 2                  # detector boxes per training face, each on a randomly resized image
    jitters: int = 4                   # landmark boxes per face jittered like the detector's errors
    lams: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)   # ridge strengths tried on validation
    seed: int = 0


@dataclass(frozen=True)
class FitConfig:
    """What ``facetrack fit`` fits for a classifier model: its regressors and its box refinement."""

    name: str = "regressors"
    model: str = "default"             # the classifier model file ("default": the packaged one)
    role: str = "video"                # where --install writes: video (NAME.regressors.pt, with the box
                                       # refinement) | stills (NAME.stills.regressors.pt, the cascade alone)
    data: DataConfig = field(default_factory=DataConfig)
    box_refinement: BoxRefinementConfig = field(default_factory=BoxRefinementConfig)
    starts: StartsConfig = field(default_factory=StartsConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)


TEST_SETS = ("helen-test",)     # held out for evaluation: never trained or tuned on


class _Range(typing.NamedTuple):
    """Numbers from ``low`` (excluded when ``strict``) up to ``high`` (None: no bound)."""

    low: float
    high: float | None = None
    strict: bool = False

    def problem(self, value) -> str | None:
        if self.strict and value <= self.low:
            return f"must be greater than {self.low}, got {value!r}"
        if value < self.low or (self.high is not None and value > self.high):
            span = f"at least {self.low}" if self.high is None else f"between {self.low} and {self.high}"
            return f"must be {span}, got {value!r}"
        return None


class _OneOf(tuple):
    """One of the given words."""

    def problem(self, value) -> str | None:
        return None if value in self else f"expected one of {', '.join(self)}, got {value!r}"


def _one_of(*words: str) -> _OneOf:
    return _OneOf(words)


class _Chain(tuple):
    """'auto', or one or more of the given words joined by '+' (a detector chain)."""

    def problem(self, value) -> str | None:
        parts = str(value).split("+")
        if value == "auto" or all(part in self for part in parts):
            return None
        return f"expected auto or detectors from {', '.join(self)} joined by '+', got {value!r}"


POSITIVE = _Range(0.0, strict=True)
UNIT_INTERVAL = _Range(0.0, 1.0)

# Allowed values of the settings, checked when a configuration is built, so a bad value
# is a one-line error before any data is read.
_ALLOWED = {
    DataConfig: {"val_fraction": _Range(0.0, 0.9)},
    ClassesConfig: {"kind": _one_of("exemplar", "kmeans"), "k": _Range(0), "perturbed_copies": _Range(0),
                    "perturb_rotate_deg": _Range(0.0, 180.0), "perturb_scale": UNIT_INTERVAL,
                    "perturb_shift": UNIT_INTERVAL, "tau": POSITIVE},
    ModelConfig: {"crop_size": _Range(32), "margin": _Range(1.0), "embedding": _Range(0)},
    AugmentConfig: {"flip_p": UNIT_INTERVAL, "rotate_deg": _Range(0.0, 180.0), "scale": UNIT_INTERVAL,
                    "shift": UNIT_INTERVAL, "brightness": UNIT_INTERVAL, "contrast": UNIT_INTERVAL,
                    "saturation": UNIT_INTERVAL, "blur_p": UNIT_INTERVAL, "blur_max_sigma": _Range(0.0),
                    "occlude_p": UNIT_INTERVAL, "occlude_max_frac": UNIT_INTERVAL, "grayscale_p": UNIT_INTERVAL,
                    "noise_std": _Range(0.0)},
    TrainConfig: {"loss": _one_of("softmax", "soft_target", "multilabel"), "steps": _Range(1),
                  "batch_size": _Range(2), "accumulate": _Range(1), "lr": POSITIVE, "weight_decay": _Range(0.0),
                  "warmup_steps": _Range(0),
                  "val_every": _Range(1), "checkpoint_every": _Range(1), "device": _one_of("auto", "cpu", "cuda"),
                  "threads": _Range(1), "decode_threads": _Range(0), "top_k": _Range(1)},
    TrackingConfig: {
        "batch_size": _Range(1), "queue_size": _Range(1), "threads": _Range(0), "decode_threads": _Range(0),
        "detector": _Chain(("blazeface", "dlib", "haar")), "upsample": _Range(0),
        "fallback": _one_of("auto", "cnn", "none"), "cuts": _one_of("auto", "every_frame", "never"),
        "redetect_every": _Range(0),
        "scan_upsample": _Range(0), "scan_scale": _Range(0.5, 3.0), "lost_confidence": UNIT_INTERVAL, "reclassify_drift": POSITIVE,
        "detect_passes": _Range(1), "max_faces": _Range(1), "forget_after": _Range(0), "top_k": _Range(1),
        "backend": _one_of("auto", "torch", "opencv"), "held_scan_every": _Range(1), "empty_scan_every": _Range(1), "classify_every": _Range(1),
        "regressors": _one_of("video", "stills", "off"), "gpu_batch_size": _Range(1),
        "device_crops": _one_of("auto", "on", "off"), "overlap": _one_of("auto", "on", "off"),
    },
    FitConfig: {"role": _one_of("video", "stills")},
    CascadeConfig: {"kind": _one_of("trees", "linear"), "descriptor_size": POSITIVE, "ridge": POSITIVE, "clusters": _Range(1), "stages": _Range(0), "trees": _Range(1),
                    "depth": _Range(1, 12), "shrinkage": _Range(0.0, 1.0, strict=True), "feature_pool": _Range(2),
                    "candidate_splits": _Range(1), "pair_prior": POSITIVE, "face_size": _Range(16),
                    "crop_size": _Range(16)},
    StartsConfig: {"classifier": _Range(0), "neighbours": _Range(0), "neighbour_rank": _Range(1), "perturbed": _Range(0),
                   "perturb_rotate_deg": _Range(0.0, 90.0), "perturb_scale": UNIT_INTERVAL, "perturb_shift": UNIT_INTERVAL,
                   "augmented": _Range(0), "augment_rotate_deg": _Range(0.0, 90.0), "augment_scale": UNIT_INTERVAL},
    BoxRefinementConfig: {"rescales": _Range(0), "jitters": _Range(0)},
    TemporalConfig: {"lag": _Range(0), "neighbours": _Range(1), "prune_top": _Range(0), "hold_frames": _Range(0)},
}


def _check_allowed(cls, key: str, value, where: str) -> None:
    rule = _ALLOWED.get(cls, {}).get(key)
    problem = None if rule is None or value is None else rule.problem(value)
    if problem:
        raise _at(where, problem)


@dataclass(frozen=True)
class TrackConfig:
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)


def _at(where: str, message: str) -> ConfigError:
    """An error at key path ``where`` inside a file ('' for the top level)."""
    return ConfigError(f"{where}: {message}" if where else message)


def _child(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def _in_source(source: str, build):
    """Run ``build``; its errors name the ``source`` (a file, or what stands for one)."""
    try:
        return build()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


# Keys under their names before issue 27, each with what replaces it (for the "did you mean" error).
RENAMED = {
    TrackingConfig: {"refine": "regressors: off or box_refinement: false",
                     "follow_refined": "follow_box_refinement", "refine_drift": "reclassify_drift"},
    FitConfig: {"box": "box_refinement"},
}


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise _at(where, f"expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            renamed = RENAMED.get(cls, {}).get(key)
            if renamed:
                raise _at(where, f"unknown key {key!r} (renamed: did you mean {renamed}?)")
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _at(where, f"unknown key {key!r}{hint}")
        kwargs[key] = _coerce(hints[key], _switch_word(cls, key, value), _child(where, key))
        _check_allowed(cls, key, kwargs[key], _child(where, key))
    return cls(**kwargs)


def _switch_word(cls, key: str, value):
    """YAML reads an unquoted on / off (and yes / no) as true / false: for a setting whose
    words are on and off, take them back as those words."""
    allowed = _ALLOWED.get(cls, {}).get(key)
    if isinstance(value, bool) and isinstance(allowed, _OneOf) and {"on", "off"} <= set(allowed):
        return "on" if value else "off"
    return value


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value or {}, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _at(where, f"expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, where) for v in value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise _at(where, f"expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and not float(value).is_integer()):
            raise _at(where, f"expected a number ({hint.__name__}), got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise _at(where, f"expected text, got {value!r}")
        return value
    return value


def config_from_dict(values: dict, where: str = "config") -> Config:
    """A training :class:`Config` from plain values; errors name ``where`` (e.g. the file)."""
    return _in_source(where, lambda: _checked_config(_build(Config, values or {}, "")))


def _checked_config(config: Config) -> Config:
    """Rules that involve more than one value."""
    held_out = sorted(set(config.data.train_sets) & set(TEST_SETS))
    if held_out:
        raise ConfigError(f"data.train_sets includes {', '.join(held_out)}, the test set; it is never trained on")
    if config.classes.kind == "kmeans" and config.classes.k < 1:
        raise ConfigError(f"classes.k: kind kmeans needs k >= 1, got {config.classes.k}")
    for value in config.classes.tau_candidates:
        _check_allowed(ClassesConfig, "tau", value, "classes.tau_candidates")
    return config


def _read_yaml(path) -> dict:
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc.__class__.__name__})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections")
    return values


def load_config(path, overrides: dict | None = None) -> Config:
    """Read a YAML file into a :class:`Config`; ``overrides`` maps section -> {key: value}."""
    values = _with_overrides(_read_yaml(path), overrides, str(path))
    return config_from_dict(values, where=str(path))


def load_fit_config(path, overrides: dict | None = None) -> FitConfig:
    """Read a ``facetrack fit`` YAML file into a :class:`FitConfig`."""
    values = _with_overrides(_read_yaml(path), overrides, str(path))
    def build():
        config = _build(FitConfig, values, "")
        held_out = sorted(set(config.data.train_sets) & set(TEST_SETS))
        if held_out:
            raise ConfigError(f"data.train_sets includes {', '.join(held_out)}, the test set; it is never trained on")
        if config.starts.classifier + config.starts.neighbours < 1:
            raise ConfigError("starts: at least one starting shape per face is needed")
        if config.starts.perturbed and not config.starts.classifier:
            raise ConfigError("starts.perturbed: perturbs classifier starts, so starts.classifier must be at least 1")
        for value in config.box_refinement.lams:
            if POSITIVE.problem(value):
                raise _at("box_refinement.lams", POSITIVE.problem(value))
        return config
    return _in_source(str(path), build)


def load_track_config(path=None, overrides: dict | None = None) -> TrackConfig:
    """The tracking configuration: built-in defaults, a YAML file, then ``overrides``."""
    values = _with_overrides(_read_yaml(path) if path is not None else {}, overrides, str(path or "track config"))
    return _in_source(str(path or "track config"), lambda: _build(TrackConfig, values, ""))


def track_config(config=None, **settings) -> TrackConfig:
    """The tracking configuration from ``config`` (a YAML path, a :class:`TrackConfig`, or
    None for the defaults) with flat ``settings``: any key of the ``tracking`` or
    ``temporal`` section by its own name (``batch_size=1``, ``lag=4``), and ``temporal``
    (true or false) for the temporal stage as a whole. Values are checked as in a file."""
    if isinstance(config, TrackConfig):
        values, source = dataclasses.asdict(config), "settings"
    else:
        values = _read_yaml(config) if config is not None else {}
        source = str(config) if config is not None else "settings"
    overrides = _sections_of(settings)
    return _in_source(source, lambda: _build(TrackConfig, _with_overrides(values, overrides, source), ""))


def _sections_of(settings: dict) -> dict:
    """Flat setting names -> {section: {key: value}} for :func:`track_config`."""
    sections = {"tracking": {f.name for f in dataclasses.fields(TrackingConfig)},
                "temporal": {f.name for f in dataclasses.fields(TemporalConfig)} - {"enabled"}}
    names = sorted(set.union(*sections.values()) | {"temporal"})
    out: dict = {}
    for key, value in settings.items():
        if key == "temporal":
            out.setdefault("temporal", {})["enabled"] = value
            continue
        section = next((name for name, keys in sections.items() if key in keys), None)
        if section is None:
            renamed = RENAMED[TrackingConfig].get(key)
            if renamed:
                raise ConfigError(f"unknown setting {key!r} (renamed: did you mean {renamed}?)")
            close = difflib.get_close_matches(str(key), names, n=1)
            raise ConfigError(f"unknown setting {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        out.setdefault(section, {})[key] = value
    return out


def _with_overrides(values: dict, overrides: dict | None, source: str) -> dict:
    """``values`` with ``overrides`` (section -> {key: value}) merged in."""
    for section, items in (overrides or {}).items():
        current = values.setdefault(section, {})
        if not isinstance(current, dict):
            raise ConfigError(f"{source}: {section}: expected a mapping, got {type(current).__name__}")
        current.update(items)
    return values


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)
