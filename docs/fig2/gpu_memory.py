"""Peak memory of one training step at K up to 140,000, in fp32 and in bf16 autocast, for
batch sizes up to the largest that fits an 80 GB GPU: measured without a GPU.

The training step is the one tracker/training/classifier.py runs (the default network: ResNet-18 on 96 px
crops, 256-d embedding, the K x 256 head; the multi-label loss over sparse membership sets;
AdamW with CUDA's foreach update), executed by tracker.training.step_memory on fake tensors (torch's
FakeTensorMode: every tensor has its shape, dtype and size, none has data, nothing is
computed) and tracked by torch's MemTracker, which counts the bytes each live tensor holds
(parameters, gradients, optimizer state, activations, temporaries) and keeps the peak. A
real device adds what no tensor holds: the CUDA context (several hundred MB), cuDNN's
workspace and the caching allocator's slack, hence the 78 GiB limit below for an 80 GB card
(79.1 GiB visible to torch on an H100). A check row runs the same step on real CPU tensors
through the same tracker. Each crop's membership set holds ``members`` classes (only their
number matters here).

Run: .venv/bin/python docs/fig2/gpu_memory.py [--members N]  (about a minute; writes
gpu_memory.json and gpu_memory.md here)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
KS = (10, 1000, 10000, 140000)
BATCHES = (64, 256, 1024)
GIB = 2**30
CARD_BYTES = 78 * GIB            # an 80 GB card less its context and workspace


def step_peak(k: int, batch: int, amp: bool, members: int, fake: bool = True) -> dict:
    """One row: tracker.training.step_memory's peak for the default network at K = ``k``."""
    from tracker.config import ModelConfig
    from tracker.training.step_memory import step_peak as peak
    return {"K": k, "batch": batch, "precision": "bf16 autocast" if amp else "fp32", "fake": fake,
            "members": min(members, k), "bytes": peak(ModelConfig(), k, batch, amp, members, fake)}


def largest_fitting_batch(k: int, amp: bool, members: int, limit: int = CARD_BYTES) -> tuple[int, int]:
    """The largest power-of-two batch whose peak stays under ``limit``, and that peak."""
    batch, best = 256, (0, 0)
    while batch <= 2**17:
        total = step_peak(k, batch, amp, members)["bytes"]["Total"]
        if total > limit:
            break
        best = (batch, total)
        batch *= 2
    return best


def table(rows: list[dict], fits: list[dict]) -> str:
    def gb(n: int) -> str:
        return f"{n / GIB:.2f}"
    lines = ["| K | precision | batch | parameters | gradients | optimizer state | activations | temporaries | "
             "peak (GiB) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = r["bytes"]
        lines.append(f"| {r['K']:,} | {r['precision']}{'' if r['fake'] else ' (real CPU tensors)'} | {r['batch']:,} | "
                     f"{gb(b['Parameter'])} | {gb(b['Gradient'])} | {gb(b['Optstate'])} | {gb(b['Activation'])} | {gb(b['Temp'])} | "
                     f"**{gb(b['Total'])}** |")
    lines += ["", "| K | precision | largest power-of-two batch under 78 GiB | its peak (GiB) |", "|---|---|---|---|"]
    lines += [f"| {f['K']:,} | {f['precision']} | {f['batch']:,} | {gb(f['bytes'])} |" for f in fits]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=1000, help="membership-set size per training row (default 1000)")
    args = p.parse_args()
    rows = [step_peak(k, b, amp, args.members) for k in KS for amp in (False, True) for b in BATCHES]
    rows.append(step_peak(140000, 64, False, args.members, fake=False))
    fits = []
    for amp in (False, True):
        batch, peak = largest_fitting_batch(140000, amp, args.members)
        fits.append({"K": 140000, "precision": "bf16 autocast" if amp else "fp32", "batch": batch, "bytes": peak})
    (HERE / "gpu_memory.json").write_text(json.dumps({"members": args.members, "rows": rows, "fits": fits},
                                                     indent=1) + "\n")
    (HERE / "gpu_memory.md").write_text(table(rows, fits) + "\n")
    print(table(rows, fits))


if __name__ == "__main__":
    main()
