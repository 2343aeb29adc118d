"""What every command shares: exit codes, one-line errors, stop signals, progress, option parsing.

Every command returns an exit code: 0 success, 1 unexpected internal error, 2 usage
error, 3 bad input, 4 output cannot be written, 5 finished but the input was damaged
(unreadable parts skipped), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from tracker import __version__
from tracker.errors import FacetrackError, OutputError, UsageError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_DAMAGED = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
EXIT_CODES = ("exit codes: 0 done, 1 internal error, 2 usage, 3 bad input, 4 output not writable, "
              "5 done but the input was damaged (unreadable parts skipped), 130 interrupted, 143 terminated")


def command_parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with the options every command has (--help, --version)."""
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog or EXIT_CODES)
    p.add_argument("--version", action="version", version=f"facetrack {__version__}")
    return p


def add_renamed_option(p: argparse.ArgumentParser, old: str, new: str) -> None:
    """An option under its name before issue 27: giving it is an error that names ``new``."""
    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{old} was renamed: did you mean {new}?")
    p.add_argument(old, nargs=0, action=Renamed, help=argparse.SUPPRESS)


def fail(prog: str, message: str, code: int) -> int:
    """Print ``message`` as one error line on stderr; return ``code``."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def warn(prog: str, message: str) -> None:
    print(f"{prog}: warning: {message}", file=sys.stderr)


def _silence_stdout() -> None:
    """After the reader of our stdout went away, keep Python's exit flush from complaining."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_command(prog: str, body, argv) -> int:
    """Run ``body(argv, prog)`` turning known failures into one line on stderr and an exit code."""
    try:
        return body(sys.argv[1:] if argv is None else list(argv), prog)
    except KeyboardInterrupt:
        return fail(prog, "interrupted", EXIT_INTERRUPTED)
    except OutputError as exc:
        return fail(prog, str(exc), EXIT_OUTPUT)
    except UsageError as exc:
        return fail(prog, str(exc), EXIT_USAGE)
    except FacetrackError as exc:
        return fail(prog, str(exc), EXIT_INPUT)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except MemoryError:
        return fail(prog, "out of memory", EXIT_INTERNAL)
    except Exception as exc:                       # a bug: one line, the traceback on request
        if os.environ.get("FACETRACK_DEBUG"):
            raise
        message = " ".join(str(exc).split())[:300]
        return fail(prog, f"internal error ({type(exc).__name__}: {message}); FACETRACK_DEBUG=1 shows the "
                          "traceback", EXIT_INTERNAL)


class StopSignals:
    """While entered, Ctrl-C and SIGTERM only set ``received`` (so a run can end after the
    frame being written and no output holds half a frame); a second signal raises
    KeyboardInterrupt. The caller's handlers are restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received = None
        self._saved = {}

    def __enter__(self) -> "StopSignals":
        self._saved = {sig: signal.getsignal(sig) for sig in self.SIGNALS}
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt()
        self.received = signum

    @property
    def exit_code(self) -> int:
        return EXIT_TERMINATED if self.received == signal.SIGTERM else EXIT_INTERRUPTED

    @property
    def word(self) -> str:
        return "terminated" if self.received == signal.SIGTERM else "interrupted"


def frame_progress(total: int | None, enabled: bool):
    """A progress bar over frames, with frames per second, on stderr."""
    from tqdm import tqdm
    return tqdm(total=total or None, disable=not enabled, unit="frame", file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1)


class TrainingProgress:
    """Progress bar with loss and speed for training, validation lines above it."""

    def __init__(self, enabled: bool, prefix: str = ""):
        self.enabled = enabled
        self.prefix = prefix
        self.bar = None

    def start(self, total: int, done: int) -> None:
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=done, disable=not self.enabled, unit="step", desc=self.prefix or None,
                        dynamic_ncols=True, file=sys.stderr)

    def step(self, step: int, loss: float, images_per_s: float) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.0f}")

    def validation(self, step: int, m: dict) -> None:
        self.message(f"step {step}: val NME top-k {m['nme_topk']:.4f} argmax {m['nme_argmax']:.4f} "
                     f"AUC {m['auc_topk']:.3f} FR {100 * m['fr_topk']:.1f}% class acc {m['class_acc']:.3f} "
                     f"train err {m['train_error']:.3f}")

    def message(self, text: str) -> None:
        from tqdm import tqdm
        tqdm.write(f"[{self.prefix}] {text}" if self.prefix else text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    """The ``--set SECTION.KEY=VALUE`` option (repeatable)."""
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help=f"override one config value (YAML syntax), e.g. --set {example}")


def parse_overrides(items: list[str]) -> dict:
    """--set SECTION.KEY=VALUE items -> {section: {key: value}} (values in YAML syntax)."""
    import yaml
    overrides: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise FacetrackError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        section, name = key.split(".", 1)
        overrides.setdefault(section, {})[name] = yaml.safe_load(raw)
    return overrides


def int_at_least(low: int):
    """An argparse type: an integer no smaller than ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def int_list(text: str, what: str, low: int = 0) -> list[int]:
    """Comma-separated integers, each at least ``low`` (a :class:`UsageError` otherwise)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if any(v < low for v in values):
        raise UsageError(f"{what}: every value must be at least {low}, got {text!r}")
    return values


def add_regressor_switches(p: argparse.ArgumentParser) -> None:
    """--no-regressors and --no-box-refinement (each switches off its own stage only)."""
    p.add_argument("--no-regressors", action="store_true",
                   help="no cascaded regressors after the classifier (the classifier's own landmarks)")
    p.add_argument("--no-box-refinement", action="store_true",
                   help="no box refinement between classifier passes (crops around the landmarks' own box)")
    add_renamed_option(p, "--no-refine", "--no-regressors and/or --no-box-refinement")


def regressor_switches(args, regressors: str | None = None) -> dict:
    """Tracker settings for :func:`add_regressor_switches`' options; ``regressors``: the cascade
    asked for otherwise (None: the configuration's)."""
    regressors = "off" if args.no_regressors else regressors
    return {**({} if regressors is None else {"regressors": regressors}),
            **({"box_refinement": False} if args.no_box_refinement else {})}
