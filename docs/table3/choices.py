"""How the click conditioning was chosen (validation only; output: choices.txt).

Run: .venv/bin/python docs/table3/choices.py LIKELIHOOD RECROP [CLIP]
  LIKELIHOOD: omega (eq. 10, the consistent classes alone) or gaussian (each class weighted
  by the click's Gaussian likelihood, tracker.distribution.clicks.click_log_likelihood);
  RECROP: 1 to crop and classify the face again around the conditional prediction, 0 not to.
Without CLIP: the 213 validation faces held out of AFW + HELEN-train + LFPW-train
(tracker.training.data.split_by_photo(..., 0.1, seed 0), the default model's own validation split),
2 suggested clicks. With CLIP (a folder name under ../shared/data/videos): that sequence,
also one suggested click every 10 frames. Never HELEN-test.
"""
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
import tracker.distribution.clicks as condition  # noqa: E402
from tracker.api import Tracker  # noqa: E402
from tracker.evaluation.simulate import format_table, simulate_sequence, simulate_stills  # noqa: E402
from tracker.training.data import load_faces, split_by_photo  # noqa: E402

SUBSET = REPO.parent / "shared" / "data" / "300w-subset"


def validation_folder(out: Path) -> Path:
    """Links to the validation faces' images and .pts, named <set>__<stem>."""
    faces = load_faces(SUBSET, ["afw", "helen-train", "lfpw-train"])
    _, val = split_by_photo(faces, 0.1, 0)
    for face in val:
        subset, stem = face.name.split("/")
        image = next(p for p in (SUBSET / subset).glob(stem + ".*") if p.suffix != ".pts")
        (out / f"{subset}__{stem}{image.suffix}").symlink_to(image)
        (out / f"{subset}__{stem}.pts").symlink_to(SUBSET / subset / f"{stem}.pts")
    return out


def main():
    likelihood, recrop = sys.argv[1], sys.argv[2] == "1"
    condition.CLICK_LIKELIHOOD, condition.RECROP = likelihood, recrop
    tracker = Tracker(None, "cpu", temporal=True, threads=2)
    if len(sys.argv) > 3:
        rows = simulate_sequence(tracker, REPO.parent / "shared" / "data" / "videos" / sys.argv[3], clicks=2,
                                 every=(10,))
        name = sys.argv[3]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            folder = validation_folder(Path(tmp))
            rows = simulate_stills(tracker, folder, folder, clicks=2)
        name = "validation (213 faces)"
    print(f"{name}, likelihood {likelihood}, recrop {int(recrop)}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
