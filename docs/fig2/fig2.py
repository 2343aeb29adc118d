"""The paper's Fig. 2 on our code: test time and memory of the K-way classifier for K in
{10, 1,000, 10,000, 140,000}, and what one training step costs at each K.

Each measurement runs in a fresh process (so that its peak resident memory is its own): the
default model's network (ResNet-18, 96 px crops, 256-d embedding, then the K-way head) with
random weights, on the CPU (torch at 1 and 2 threads, and the OpenCV backend the tracker uses
on the CPU), forward time per batch of 1 and of 8 crops, median of repeated runs; and one
training step (multi-label loss over sparse membership sets, AdamW) at batch 64 in fp32.
On a GPU (when CUDA is present) the same in fp32 and with bf16 autocast, at batches of 1, 8
and 256 crops, and the training step's peak GPU memory (torch.cuda.max_memory_allocated).

Run: .venv/bin/python docs/fig2/fig2.py   (writes results.json, results.md and fig2.png here)
     .venv/bin/python docs/fig2/fig2.py --gpu-only   (on a machine with CUDA: the GPU rows alone,
     put beside the CPU rows already in results.json)
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KS = (10, 1000, 10000, 140000)
REPEATS = 30
TRAIN_BATCH = 64
MEMBERS = 1000          # membership-set size per training row at K = 140,000 (scaled with K below)


def measure(kind: str, k: int, threads: int, device: str = "cpu", amp: bool = False) -> dict:
    """One measurement in this process (called in a child); ``amp``: bf16 autocast (CUDA)."""
    import numpy as np
    import torch
    sys.path.insert(0, str(REPO))
    from tracker.classifier.network import PoseClassifier
    from tracker.config import ModelConfig
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    import cv2
    importlib.import_module("tracker.classifier.opencv_network")         # its imports counted before the baseline
    base = _rss_mb()
    cfg = ModelConfig()
    net = PoseClassifier(cfg, k)
    head_mb = sum(p.numel() for p in net.head.parameters()) * 4 / 2**20
    out = {"kind": kind, "K": k, "threads": threads, "device": device, "amp": amp, "head_MB_fp32": head_mb}
    if device == "cuda":
        out["card"] = torch.cuda.get_device_name(0)
    rng = np.random.default_rng(0)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp and device == "cuda")
    if kind in ("torch", "opencv"):
        sizes = (1, 8, 256) if device == "cuda" else (1, 8)
        crops = {n: rng.integers(0, 256, (n, cfg.crop_size, cfg.crop_size, 3), dtype=np.uint8) for n in sizes}
        if kind == "opencv":
            import gc

            from tracker.classifier.inputs import PIXEL_MEAN_BGR, PIXEL_STD_BGR
            from tracker.classifier.opencv_network import CvClassifier
            cv2.setNumThreads(threads)
            state = {k_: v.detach().numpy() for k_, v in net.state_dict().items()}
            model = CvClassifier(state, PIXEL_MEAN_BGR, PIXEL_STD_BGR)
            del state, net
            gc.collect()

            def forward(x):
                return model(x)
        else:
            net = net.eval().to(device)

            def forward(x):
                with torch.no_grad(), autocast:
                    y = net(torch.from_numpy(x).to(device))
                    if device == "cuda":
                        torch.cuda.synchronize()
                return y
        for n, x in crops.items():
            forward(x)
            times = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                forward(x)
                times.append(time.perf_counter() - start)
            out[f"ms_batch{n}"] = 1000 * float(np.median(times))
            out[f"ms_per_crop_batch{n}"] = out[f"ms_batch{n}"] / n
    else:                                                   # one training step, fp32
        from tracker.training.losses import loss_from_name
        net = net.train().to(device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
        loss_fn = loss_from_name("multilabel")
        members = max(1, min(k, MEMBERS * k // KS[-1]))
        indptr = torch.arange(0, (TRAIN_BATCH + 1) * members, members, dtype=torch.int64)
        indices = torch.from_numpy(rng.integers(0, k, TRAIN_BATCH * members)).to(torch.int64)
        x = torch.from_numpy(rng.integers(0, 256, (TRAIN_BATCH, cfg.crop_size, cfg.crop_size, 3), dtype=np.uint8))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            with autocast:
                scores = net(x.to(device))
            loss = loss_fn(scores.float(), indptr.to(device), indices.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        out["s_per_step"] = float(np.median(times[1:]))
        out["members_per_row"] = members
        out["optimizer_state_MB"] = sum(t.numel() * t.element_size() for s in optimizer.state.values()
                                        for t in s.values() if torch.is_tensor(t)) / 2**20
    if device == "cuda":
        out["cuda_peak_MB"] = torch.cuda.max_memory_allocated() / 2**20
    out["rss_growth_MB"] = _rss_mb() - base          # the network, its buffers and (training) the optimizer
    out["peak_rss_MB"] = _rss_mb("VmHWM")            # its own peak (ru_maxrss would also hold the parent's)
    return out


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def child(kind: str, k: int, threads: int, device: str = "cpu", amp: bool = False) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--one", kind, str(k), str(threads), device, str(int(amp))],
                          capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = ["| K | head (fp32) | torch 1 thread: ms per crop, batch 1 / 8 | torch 2 threads | OpenCV 2 threads | "
             "memory of the OpenCV network | training step (batch 64, fp32, torch 2 threads) | its memory (peak RSS) |",
             "|---|---|---|---|---|---|---|---|"]
    for k in KS:
        r = {(x["kind"], x["threads"]): x for x in rows if x["K"] == k}
        t1, t2, cv, tr = r[("torch", 1)], r[("torch", 2)], r[("opencv", 2)], r[("train", 2)]
        lines.append(f"| {k:,} | {t1['head_MB_fp32']:.1f} MB | {t1['ms_per_crop_batch1']:.1f} / "
                     f"{t1['ms_per_crop_batch8']:.1f} | {t2['ms_per_crop_batch1']:.1f} / {t2['ms_per_crop_batch8']:.1f} | "
                     f"{cv['ms_per_crop_batch1']:.1f} / {cv['ms_per_crop_batch8']:.1f} | {cv['rss_growth_MB']:.0f} MB | "
                     f"{tr['s_per_step']:.2f} s | {tr['rss_growth_MB']:.0f} MB ({tr['peak_rss_MB']:.0f} MB) |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for kind, threads, label in (("torch", 1, "torch, 1 thread"), ("torch", 2, "torch, 2 threads"),
                                 ("opencv", 2, "OpenCV DNN + NumPy head, 2 threads")):
        ys = [next(x for x in rows if x["K"] == k and x["kind"] == kind and x["threads"] == threads)
              ["ms_per_crop_batch8"] for k in KS]
        ax.plot(KS, ys, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("K (classes)")
    ax.set_ylabel("ms per crop (batches of 8)")
    ax.set_ylim(bottom=0)
    ax.set_title("Classifier test time against K (2-core CPU)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def gpu_table(rows: list[dict]) -> str:
    lines = [f"GPU: {rows[0]['card']}.", "",
             "| K | precision | ms per crop, batch 1 / 8 / 256 | training step (batch 64) | its GPU memory peak |",
             "|---|---|---|---|---|"]
    for k in KS:
        for amp in (False, True):
            r = {x["kind"]: x for x in rows if x["K"] == k and x["amp"] == amp}
            t, tr = r["torch"], r["train"]
            lines.append(f"| {k:,} | {'bf16 autocast' if amp else 'fp32'} | {t['ms_per_crop_batch1']:.2f} / "
                         f"{t['ms_per_crop_batch8']:.3f} / {t['ms_per_crop_batch256']:.4f} | "
                         f"{1000 * tr['s_per_step']:.1f} ms | {tr['cuda_peak_MB']:.0f} MB |")
    return "\n".join(lines)


def main(gpu_only: bool = False) -> None:
    """CPU rows always; GPU rows (fp32 and bf16 autocast) where CUDA is present. ``gpu_only``:
    measure the GPU rows alone and put them beside the CPU rows already in results.json (a
    device machine's CPU is not this one's)."""
    import torch
    cuda = torch.cuda.is_available()
    if gpu_only and not cuda:
        raise SystemExit("fig2.py --gpu-only: no CUDA device here")
    old = json.loads((HERE / "results.json").read_text()) if gpu_only else {}
    rows = [r for r in old.get("rows", []) if r["device"] == "cpu"]
    for k in KS:
        jobs = [] if gpu_only else [(kind, threads, "cpu", False) for kind, threads in
                                    (("torch", 1), ("torch", 2), ("opencv", 2), ("train", 2))]
        if cuda:
            jobs += [(kind, 2, "cuda", amp) for kind in ("torch", "train") for amp in (False, True)]
        for kind, threads, device, amp in jobs:
            rows.append(child(kind, k, threads, device, amp))
            print(json.dumps(rows[-1]), flush=True)
    cpu_rows = [r for r in rows if r["device"] == "cpu"]
    machine = old.get("machine") or f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    gpu = f"{torch.cuda.get_device_name(0)}" + (" (on another machine than the CPU rows)" if gpu_only else "") \
        if cuda else "no GPU"
    (HERE / "results.json").write_text(json.dumps({"machine": machine, "gpu": gpu, "rows": rows}, indent=1) + "\n")
    text = f"Machine: {machine}, {gpu}.\n\n" + table(cpu_rows) + "\n"
    if cuda:
        text += "\n" + gpu_table([r for r in rows if r["device"] == "cuda"]) + "\n"
    (HERE / "results.md").write_text(text)
    if not gpu_only:
        plot(cpu_rows, HERE / "fig2.png")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1")))
    else:
        main(gpu_only="--gpu-only" in sys.argv[1:])
