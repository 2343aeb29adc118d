"""Training the K-way pose classifier: one process, or several under torchrun (DDP)."""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from tracker.classifier.model import LandmarkModel, PoseClassifier, pick_device
from tracker.config import Config, ConfigError, config_to_dict
from tracker.distribution.poses import choose_tau, class_widths, kmeans_templates, membership_sets, nearest_template
from tracker.distribution.posterior import expected_shape, top_k_posterior
from tracker.evaluation.metrics import auc, failure_rate
from tracker.geometry.shapes import box_diagonal
from tracker.training.calibration import calibrate_detectors, calibrate_landmark_boxes
from tracker.training.data import AugmentedFaces, jittered_crops, load_faces, split_by_photo, template_bank
from tracker.training.losses import loss_from_name


@dataclass(frozen=True)
class PoseSetup:
    """Classes, tau and widths derived from the training shapes."""

    templates: np.ndarray
    tau: float
    widths: np.ndarray
    tau_table: list


def build_pose_setup(cfg: Config, train_faces, val_shapes: np.ndarray) -> PoseSetup:
    bank = template_bank(train_faces, cfg.classes)
    if cfg.classes.kind == "kmeans":
        templates = kmeans_templates(bank, cfg.classes.k, seed=cfg.classes.seed)
    elif cfg.classes.kind == "exemplar":
        templates = exemplar_subset(bank, cfg.classes.k, cfg.classes.seed)
    else:
        raise ValueError(f"classes.kind must be 'exemplar' or 'kmeans', got {cfg.classes.kind!r}")
    table = []
    tau = cfg.classes.tau
    if tau is None:
        tau, table = choose_tau(templates, val_shapes, cfg.classes.tau_candidates)
    widths = class_widths(templates, bank, membership_sets(bank, templates, tau))
    return PoseSetup(templates=templates, tau=float(tau), widths=widths, tau_table=table)


def exemplar_subset(bank: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` exemplars of the bank (a seeded random subset, in bank order); all for k = 0."""
    if k <= 0 or k == len(bank):
        return bank
    if k > len(bank):
        raise ConfigError(f"classes.k = {k:,} exceeds the {len(bank):,} exemplars the training faces give "
                          f"(raise classes.perturbed_copies)")
    keep = np.sort(np.random.default_rng(seed).choice(len(bank), k, replace=False))
    return np.ascontiguousarray(bank[keep])


def landmark_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """NME normalised by the ground-truth box diagonal (scale-free, so canonical units work)."""
    return np.linalg.norm(pred - gt, axis=-1).mean(-1) / box_diagonal(gt)


@torch.no_grad()
def predict_scores(net: torch.nn.Module, crops: np.ndarray, device, batch: int = 128) -> torch.Tensor:
    net.eval()
    out = [net(torch.from_numpy(crops[i:i + batch]).to(device)).float().cpu()
           for i in range(0, len(crops), batch)]
    return torch.cat(out)


def validate(net, crops, shapes, templates, tau, top_k, device) -> dict:
    """Landmark error (argmax template and top-k mean), class accuracy, AUC, FR."""
    scores = predict_scores(net, crops, device)
    post = top_k_posterior(scores, top_k)
    best = templates[post.best]
    mean = expected_shape(post, templates)
    member = membership_sets(shapes, templates, tau)
    correct = [post.best[i] in set(member.row(i).tolist()) for i in range(len(shapes))]
    err_best, err_mean = landmark_errors(best, shapes), landmark_errors(mean, shapes)
    return {
        "nme_argmax": float(err_best.mean()), "nme_topk": float(err_mean.mean()),
        "auc_argmax": auc(err_best), "auc_topk": auc(err_mean),
        "fr_argmax": failure_rate(err_best), "fr_topk": failure_rate(err_mean),
        "class_acc": float(np.mean(correct)),
    }


def lr_at(step: int, cfg) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


class NullReporter:
    """Receives progress; the CLI supplies one that draws a progress bar."""

    def start(self, total: int, done: int) -> None: ...
    def step(self, step: int, loss: float, images_per_s: float) -> None: ...
    def validation(self, step: int, metrics: dict) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


def _shard_rng(seed: int, step: int, shard: int) -> np.random.Generator:
    """The random stream of one micro-batch of one step: the same wherever it is computed,
    so N processes (or N micro-batches in one) see the same global batch."""
    return np.random.default_rng([seed, step, shard])


def _mean_over_processes(value: float, world: int, device) -> float:
    if world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world > 1 else 0, world, int(os.environ.get("LOCAL_RANK", "0")))


def training_step(model, optimizer, micro_batches, count: int = 1, amp: bool = False,
                  no_sync: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One optimizer step of the pose classifier over ``count`` micro-batches.

    Each micro-batch, (crops (B, S, S, 3) uint8 on the model's device, ``loss_of``), goes
    forward (in bf16 autocast with ``amp``), ``loss_of(scores)`` takes its float32 scores to
    the loss (the multi-label loss over membership sets by default), and the loss divided by
    ``count`` goes backward (gradients of the mean); then the optimizer steps. With
    ``no_sync`` (DDP) the gradients are averaged over processes once, on the last micro-batch.
    Returns each micro-batch's (top class (B,), loss) tensors.
    :func:`tracker.training.step_memory.step_peak` measures this step's memory."""
    optimizer.zero_grad(set_to_none=True)
    model.train()
    results = []
    for index, (crops, loss_of) in enumerate(micro_batches):
        with model.no_sync() if no_sync and index + 1 < count else nullcontext():
            with torch.autocast(device_type=crops.device.type, dtype=torch.bfloat16, enabled=amp):
                scores = model(crops)
            scores = scores.float()
            loss = loss_of(scores)
            (loss / count if count > 1 else loss).backward()
        results.append((scores.argmax(1), loss.detach()))
    optimizer.step()
    return results


def _loss_of(kind: str, loss_fn, shapes, templates, member, device):
    """The loss of a micro-batch's scores: against the nearest template (softmax) or over
    the membership sets (the others)."""
    if kind == "softmax":
        target = torch.from_numpy(nearest_template(shapes, templates)[0]).to(device)
        return lambda scores: loss_fn(scores, target)
    indptr = torch.from_numpy(member.indptr).to(device)
    indices = torch.from_numpy(member.indices.astype(np.int64)).to(device)
    return lambda scores: loss_fn(scores, indptr, indices)


def train(cfg: Config, out_dir, resume: bool = False, reporter=None, calibrate: bool = True) -> LandmarkModel:
    """Train per ``cfg``; writes checkpoints, ``log.jsonl`` and ``model.pt`` under ``out_dir``."""
    reporter = reporter or NullReporter()
    rank, world, local_rank = _distributed()
    shards = world * cfg.train.accumulate
    if cfg.train.batch_size % shards:
        raise ConfigError(f"train.batch_size {cfg.train.batch_size} does not split into {world} process(es) x "
                          f"{cfg.train.accumulate} micro-batch(es)")
    torch.manual_seed(cfg.train.seed + rank)
    torch.set_num_threads(cfg.train.threads)
    device = pick_device(cfg.train.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    faces = load_faces(cfg.data.root, cfg.data.train_sets)
    train_faces, val_faces = split_by_photo(faces, cfg.data.val_fraction, cfg.data.split_seed)
    val_crops, val_shapes = jittered_crops(val_faces, cfg.model.crop_size, cfg.model.margin)
    reporter.message(f"{len(train_faces)} training faces, {len(val_faces)} validation faces")
    setup = build_pose_setup(cfg, train_faces, val_shapes)
    templates, tau = setup.templates, setup.tau
    K = len(templates)
    sizes = membership_sets(templates, templates, tau).sizes()
    for row in setup.tau_table:
        reporter.message(f"  tau {row.tau:.3f}: blend-oracle RMS {row.mean_error:.4f}, median |M| {row.median_size:.0f}")
    reporter.message(f"K = {K} classes, tau = {tau:.4f}, median membership {int(np.median(sizes))}")

    net = PoseClassifier(cfg.model, K)
    if cfg.train.loss == "multilabel":
        prior = float(np.median(sizes)) / K
        net.init_bias(math.log(prior / (1 - prior)))
    net.to(device)
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[local_rank] if device.type == "cuda" else None) \
        if world > 1 else net
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    loss_fn = loss_from_name(cfg.train.loss)
    sampler = AugmentedFaces(train_faces, cfg.model.crop_size, cfg.model.margin, cfg.augment,
                             seed=cfg.train.seed * 1000 + rank)
    use_amp = cfg.train.amp and device.type == "cuda"
    start = 0
    ckpt_path = out_dir / "last.pt"
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["net"])
        optimizer.load_state_dict(ckpt["optimizer"])
        sampler.rng.bit_generator.state = ckpt["sampler_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        start = ckpt["step"]
        reporter.message(f"resumed from {ckpt_path} at step {start}")

    def micro_batches(step: int, members: list):
        """This process's micro-batches of ``step``, each sampled when its turn comes; their
        membership sets go to ``members``."""
        for micro in range(cfg.train.accumulate):
            shard = rank * cfg.train.accumulate + micro
            crops, shapes = sampler.batch(cfg.train.batch_size // shards,
                                          _shard_rng(cfg.train.seed, step, shard) if shards > 1 else None)
            members.append(membership_sets(shapes, templates, tau))
            yield (torch.from_numpy(crops).to(device),
                   _loss_of(cfg.train.loss, loss_fn, shapes, templates, members[-1], device))

    log = open(out_dir / "log.jsonl", "a")
    reporter.start(cfg.train.steps, start)
    train_wrong, train_seen, tic = 0, 0, time.perf_counter()
    metrics = {}
    try:
        for step in range(start, cfg.train.steps):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg.train)
            members = []
            results = training_step(model, optimizer, micro_batches(step, members), cfg.train.accumulate, use_amp,
                                    no_sync=world > 1)
            loss_sum = 0.0
            for (best, micro_loss), member in zip(results, members):
                loss_sum += micro_loss.item()
                best = best.cpu().numpy()
                train_wrong += sum(int(best[i] not in member.row(i)) for i in range(len(best)))
                train_seen += len(best)
            loss = _mean_over_processes(loss_sum / cfg.train.accumulate, world, device)
            speed = cfg.train.batch_size / max(1e-9, time.perf_counter() - tic)
            tic = time.perf_counter()
            reporter.step(step + 1, loss, speed)
            last = step + 1 == cfg.train.steps
            if rank == 0 and ((step + 1) % cfg.train.val_every == 0 or last):
                metrics = validate(net, val_crops, val_shapes, templates, tau, cfg.train.top_k, device)
                metrics.update(step=step + 1, loss=loss, train_error=train_wrong / max(1, train_seen))
                train_wrong = train_seen = 0
                log.write(json.dumps(metrics) + "\n")
                log.flush()
                reporter.validation(step + 1, metrics)
                tic = time.perf_counter()
            if rank == 0 and ((step + 1) % cfg.train.checkpoint_every == 0 or last):
                torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1,
                            "sampler_rng": sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state()},
                           ckpt_path)
    finally:
        log.close()
        reporter.close()
    result = LandmarkModel(network=net.cpu().eval(), config=config_to_dict(cfg), templates=templates,
                           widths=setup.widths, tau=tau,
                           meta={"tau_table": [row._asdict() for row in setup.tau_table], "steps": cfg.train.steps,
                                 "train_faces": len(train_faces), "val_faces": len(val_faces),
                                 "final_validation": metrics})
    if rank == 0 and calibrate:
        result.calibration, result.meta["calibration_fit"] = calibrate_detectors(train_faces)
        landmarks, result.meta["calibration_fit"]["landmarks"] = calibrate_landmark_boxes(result, val_faces)
        result.calibration["landmarks"] = landmarks
        reporter.message(f"box calibration: {result.meta['calibration_fit']}")
    if rank == 0:
        result.save(out_dir / "model.pt")
    if world > 1:
        dist.destroy_process_group()
    return result
