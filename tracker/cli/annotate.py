"""facetrack annotate: correct predicted landmarks by dragging them, the rest re-predicted (eq. 10)."""
from __future__ import annotations

import sys
from pathlib import Path

from tracker.cli.common import EXIT_INTERRUPTED, EXIT_OK, command_parser, fail, int_at_least, run_command, warn
from tracker.errors import UsageError

SUMMARY = "annotate images or video frames in a window: drag landmarks, the rest follows (300-W .pts)"

MAX_WINDOW = (1280, 800)        # a larger image is shown scaled down to fit (clicks are mapped back)
KEY_BACKSPACE, KEY_TAB, KEY_ESC, KEY_DELETE = 8, 9, 27, 127


def parser(prog: str = "facetrack annotate"):
    from tracker.apps.annotate import DEFAULT_TOLERANCE
    p = command_parser(prog, "Interactive annotation: every face of each image (or video frame) is predicted; "
                             "drag a landmark to where it belongs and the face is predicted again given it (the "
                             "classes consistent with every click, paper eq. 10); the landmark whose click would "
                             "help most is ringed. Writes 300-W .pts files (a video: 300VW annot/NNNNNN.pts) "
                             "and a landmark CSV; saved with 's' and on quitting.")
    p.add_argument("input", help="an image, a folder of images, or a video file")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default: <input>_annotated beside the input; never the input's own folder)")
    p.add_argument("--model", help="model file (default: the packaged model)")
    p.add_argument("--tolerance", type=float, metavar="PX",
                   help=f"how far (pixels) a clicked landmark may be from a pose class's for the class to "
                        f"stay (default {DEFAULT_TOLERANCE:g}; with --simulate, 0.06 of the face box's side)")
    p.add_argument("--threads", type=int_at_least(1), default=2, help="the network's CPU threads")
    p.add_argument("--simulate", metavar="GT",
                   help="no window: the simulated annotator against the ground truth GT (a folder of .pts, or a "
                        "300VW-style folder with vid.* and annot/); clicks true landmark positions and prints "
                        "NME, AUC@0.08 and failure rate for no click, the nose tip, the suggested landmark "
                        "(1..N clicks) and the best single landmark in hindsight")
    p.add_argument("--clicks", type=int_at_least(1), default=3, help="--simulate: suggested clicks per face (N)")
    p.add_argument("--every", default="10,30", metavar="M[,M...]",
                   help="--simulate on a sequence: one suggested click every M frames, carried by the HMM")
    p.add_argument("--json", action="store_true", help="--simulate: print the table as JSON")
    return p


def main(argv: list[str] | None = None, prog: str = "facetrack annotate") -> int:
    return run_command(prog, _annotate, argv)


def _annotate(argv: list[str], prog: str) -> int:
    from tracker.apps.annotate import DEFAULT_TOLERANCE, AnnotationSession, check_out, default_out, open_items
    from tracker.io.sinks import display_available
    args = parser(prog).parse_args(argv)
    if args.tolerance is not None and not args.tolerance > 0:
        raise UsageError(f"--tolerance must be positive, got {args.tolerance:g}")
    if args.simulate:
        return _simulate(args, prog)
    items = open_items(args.input)                 # a bad input fails before the display check and the model
    try:
        if not display_available():
            raise UsageError("annotate needs a window and no display is set (DISPLAY / WAYLAND_DISPLAY); "
                             "for headless runs use --simulate")
        out = Path(args.out) if args.out else default_out(args.input)
        check_out(out, Path(args.input))
        if any(out.glob("*.pts")) or (out / "annot").is_dir():
            warn(prog, f"{out} already holds annotations; saving overwrites those of the items you visit")
        from tracker.api import Tracker
        # clicks condition a frame's distribution: every frame goes through the classifier
        tracker = Tracker(args.model, "cpu", temporal=True, threads=args.threads, classify_every=1)
        session = AnnotationSession(tracker, items, out, args.tolerance or DEFAULT_TOLERANCE)
        try:
            run_window(session, f"facetrack annotate: {args.input}")
        except KeyboardInterrupt:
            session.save()
            return fail(prog, f"interrupted; the items visited are saved in {out}", EXIT_INTERRUPTED)
        session.save()
        print(f"{prog}: {len(session.states)} items saved in {out}", file=sys.stderr)
        return EXIT_OK
    finally:
        items.close()


def handle_key(session, key: int) -> bool:
    """Do what ``key`` (a ``cv2.waitKey`` code) asks of ``session``; False to save and quit."""
    key &= 0xFF
    if key in (ord("q"), KEY_ESC):
        return False
    if key in (ord("n"), ord(" ")):
        session.next()
    elif key in (ord("p"), KEY_BACKSPACE, KEY_DELETE):
        session.previous()
    elif key == ord("u"):
        session.undo()
    elif key == ord("c"):
        session.clear()
    elif key == ord("h"):
        session.carry()
    elif key == ord("s"):
        session.save()
    elif key == KEY_TAB:
        session.next_face()
    return True


def display_scale(shape, limit=MAX_WINDOW) -> float:
    """The factor (at most 1) that fits an image of ``shape`` (H, W, ...) in ``limit`` (W, H)."""
    return min(1.0, limit[0] / shape[1], limit[1] / shape[0])


class MouseDrag:
    """A ``cv2.setMouseCallback`` handler: press, drag and release a landmark of ``session``
    (window coordinates divided by the display ``scale``)."""

    def __init__(self, session):
        self.session = session
        self.scale = 1.0

    def __call__(self, event: int, x: int, y: int, flags: int, param) -> None:
        import cv2
        px, py = x / self.scale, y / self.scale
        if event == cv2.EVENT_LBUTTONDOWN:
            self.session.press(px, py)
        elif event == cv2.EVENT_MOUSEMOVE and flags & cv2.EVENT_FLAG_LBUTTON:
            self.session.move(px, py)
        elif event == cv2.EVENT_LBUTTONUP:
            self.session.release(px, py)


def run_window(session, title: str) -> None:
    """The window loop: show the session's picture, pass it the mouse and the keys, until
    q, Esc or the window is closed."""
    import cv2
    cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
    mouse = MouseDrag(session)
    cv2.setMouseCallback(title, mouse)
    try:
        while True:
            image = session.render()
            mouse.scale = display_scale(image.shape)
            if mouse.scale < 1:
                image = cv2.resize(image, None, fx=mouse.scale, fy=mouse.scale, interpolation=cv2.INTER_AREA)
            cv2.imshow(title, image)
            key = cv2.waitKey(30)
            if key != -1 and not handle_key(session, key):
                return
            if cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:
                return
    finally:
        cv2.destroyWindow(title)
        cv2.waitKey(1)


def _simulate(args, prog: str) -> int:
    """``--simulate GT``: the table of tracker.evaluation.simulate, printed (stdout) as text or JSON.
    The click tolerance is the simulator's own (a fraction of the face box) unless
    ``--tolerance`` was given."""
    import json

    from tracker.api import Tracker
    from tracker.cli.common import int_list
    from tracker.evaluation.simulate import format_table, simulate
    every = int_list(args.every, "--every", low=1)
    gt = Path(args.simulate)
    if not gt.exists():
        raise UsageError(f"--simulate {gt}: no such file or folder")
    tracker = Tracker(args.model, "cpu", temporal=True, threads=args.threads, classify_every=1)   # as the window
    rows = simulate(tracker, args.input, gt, clicks=args.clicks, every=every, tolerance_px=args.tolerance)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return EXIT_OK
