"""Does top-M pruning change the decoded pose classes? Exact vs pruned fixed-lag Viterbi.

Tracks the wolfganglanger clip, clean and with occlusion.py's occluders (same seed), keeps
the classifier's log-softmax of every frame, and decodes each sequence with the default
lag exactly and with top-M pruning for several M. Prints, per M, the share of frames whose
decoded class equals the exact decoder's and the mean decode time per frame.

Run: .venv/bin/python docs/fig10/pruning.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import occlusion as occ  # noqa: E402

from tracker.config import TemporalConfig  # noqa: E402
from tracker.io.annotations import read_300vw  # noqa: E402
from tracker.io.sources import VideoSource  # noqa: E402
from tracker.temporal.hmm import FixedLagDecoder, model_transitions  # noqa: E402

SIZES = (None, 4096, 1024, 512, 256, 64)


def decode(decoder: FixedLagDecoder, obs) -> tuple[list[int], float]:
    decoder.push(obs[0])                    # load the compiled kernels before timing
    decoder.reset()
    states, seconds = [], 0.0
    for o in obs:
        tick = time.perf_counter()
        emitted = decoder.push(o)
        seconds += time.perf_counter() - tick
        states += [s for _, s in emitted]
    return states + [s for _, s in decoder.flush()], 1e3 * seconds / len(obs)


def main() -> None:
    if not occ.CLIP.exists():
        raise SystemExit(f"needs {occ.CLIP}")
    torch.set_num_threads(1)
    labels = read_300vw(occ.CLIP).landmarks
    clean = list(VideoSource(occ.CLIP / "vid.mp4"))
    plan = occ.occlusion_plan(len(clean), np.random.default_rng(occ.SEED))
    tcfg = TemporalConfig()
    for name, frames_plan in (("clean", {}), ("occluded", plan)):
        model, faces = occ.per_frame_faces(occ.Frames(clean, labels, frames_plan))
        obs = [faces[i].log_probs for i in sorted(faces)]
        trans = model_transitions(model, tcfg.neighbours)
        exact = None
        for size in SIZES:
            states, ms = decode(FixedLagDecoder(trans, tcfg.lag, prune_top=size), obs)
            exact = states if exact is None else exact
            same = np.mean(np.asarray(states) == np.asarray(exact))
            label = "exact" if size is None else f"top-{size}"
            print(f"{name:9s} {label:9s} frames {len(obs)}  same class as exact {100 * same:6.2f} %  "
                  f"{ms:.2f} ms per frame")


if __name__ == "__main__":
    main()
