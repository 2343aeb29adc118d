"""Training the network cascade stage (:class:`tracker.regressors.net_stage.NetStage`): the torch
module and its fitting. Inference runs without torch (:mod:`tracker.regressors.net_stage`)."""
from __future__ import annotations

import os
import time

import cv2
import numpy as np
import torch
from torch import nn

from tracker.geometry.alignment import similarity_jitter
from tracker.geometry.crop import transform_points
from tracker.regressors.net_stage import NetStage, tap_layers


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class ShapeNet(nn.Module):
    """Standardised grayscale (N, 1, S, S) and the current shape (N, 2P), in input px
    over S and centred -> the update (N, 2P) in input px (zero at initialisation).

    The update is a function of the whole face (a fully connected head); with ``local``,
    each landmark's update also gets a linear term of its own in the feature maps at
    1/4 and 1/8 resolution read at that landmark (shape-indexed learned features)."""

    def __init__(self, size: int, points: int, widths=(24, 48, 96, 192), hidden: int = 256, dropout: float = 0.0,
                 local: bool = False):
        super().__init__()
        self.taps = tap_layers(widths, local)             # layer 2k: after the (k+1)th width's block
        if local:
            self.local_weight = nn.Parameter(torch.zeros(points, sum(widths[t // 2] for t in self.taps), 2))
        layers, c = [_conv(1, widths[0], 2)], widths[0]
        for w in widths[1:]:
            layers += [_conv(c, w, 2), _conv(w, w)]
            c = w
        self.features = nn.Sequential(*layers, _conv(c, c), nn.Flatten())
        side = size // 2 ** len(widths)
        self.hidden = nn.Sequential(nn.Linear(c * side * side + 2 * points, hidden), nn.ReLU(inplace=True),
                                    nn.Dropout(dropout))
        self.out = nn.Linear(hidden, 2 * points)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        x, taps = image, []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                taps.append(x)
        out = self.out(self.hidden(torch.cat([x, shape], dim=1)))
        if not taps:
            return out
        n, points = len(shape), self.local_weight.shape[0]
        grid = (2 * shape).view(n, points, 1, 2)         # input px over S, centred -> grid_sample's [-1, 1]
        local = torch.cat([nn.functional.grid_sample(t, grid, align_corners=False).squeeze(-1) for t in taps], 1)
        return out + torch.einsum("ncp,pcd->npd", local, self.local_weight).reshape(n, 2 * points)


def degraded(images: np.ndarray, chance: float, rng) -> np.ndarray:
    """Network inputs (N, 1, S, S), each with probability ``chance`` made to look like a video
    frame's face: blurred, or lower in resolution, JPEG-compressed and noisy (one of them or more)."""
    out = images.copy()
    size = images.shape[-1]
    for i in np.flatnonzero(rng.random(len(images)) < chance):
        image = out[i, 0]
        if rng.random() < 0.5:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.5))
        if rng.random() < 0.4:
            small = max(8, int(size * rng.uniform(0.4, 0.8)))
            image = cv2.resize(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                               interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            pixels = np.clip(image * 48 + 128, 0, 255).astype(np.uint8)
            _, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 80))])
            image = (cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE).astype(np.float32) - 128) / 48
        if rng.random() < 0.5:
            image = image + rng.normal(0, rng.uniform(0.02, 0.15), image.shape).astype(np.float32)
        out[i, 0] = image
    return out


def fit_net_stage(crops, image_of, shapes, truths, mean_px, cfg, rng, log=print, val=None) -> NetStage:
    """Train a :class:`NetStage` from ``shapes`` towards ``truths`` (crop px; L1 loss in input px).

    Each batch's starts are moved by a small random similarity (fresh variety every epoch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)       # training has the machine to itself
    try:
        return _trained_net_stage(crops, image_of, shapes, truths, mean_px, cfg, rng, log, val)
    finally:
        torch.set_num_threads(threads)


def _trained_net_stage(crops, image_of, shapes, truths, mean_px, cfg, rng, log, val) -> NetStage:
    torch.manual_seed(int(rng.integers(0, 2 ** 31)))
    stage = NetStage(cfg.net_size, cfg.net_span, tuple(cfg.net_widths), cfg.net_hidden, {}, cfg.net_local)
    net = ShapeNet(stage.size, shapes.shape[1], stage.widths, stage.hidden, cfg.net_dropout, cfg.net_local)
    mean_c = np.asarray(mean_px, np.float64) - np.asarray(mean_px, np.float64).mean(0)
    target = stage.input_target(mean_c)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.net_lr, weight_decay=cfg.net_weight_decay)
    batch = cfg.net_batch
    steps = cfg.net_epochs * (len(shapes) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.net_lr, total_steps=max(steps, 1), pct_start=0.1)
    shapes64, truths64 = np.asarray(shapes, np.float64), np.asarray(truths, np.float64)
    for epoch in range(cfg.net_epochs):
        began, net = time.perf_counter(), net.train()
        order, total = rng.permutation(len(shapes)), 0.0
        for first in range(0, len(order) - batch + 1, batch):
            rows = order[first:first + batch]
            starts = similarity_jitter(shapes64[rows], rng, cfg.net_rotate_deg, cfg.net_scale, cfg.net_shift)
            images, local, matrices = stage.inputs(crops, image_of[rows], starts, target)
            goal = transform_points(truths64[rows], matrices) - local
            if cfg.net_degrade:
                images = degraded(images, cfg.net_degrade, rng)
            if cfg.net_contrast:
                gain = np.exp(rng.uniform(-0.3, 0.3, (len(rows), 1, 1, 1))).astype(np.float32)
                images = images * gain
            pred = net(torch.from_numpy(images), torch.from_numpy(stage.shape_input(local)))
            loss = (pred - torch.from_numpy(goal.reshape(len(rows), -1).astype(np.float32))).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(rows)
        stage.state = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        stage._net = None
        row = {"epoch": epoch + 1, "train_l1_px": round(total / max(len(order) // batch * batch, 1), 4),
               "seconds": round(time.perf_counter() - began, 1)}
        if val is not None:
            moved = stage.update(val[0], val[1], val[2], mean_c)
            row["val_error"] = float(np.linalg.norm(moved - val[3], axis=-1).mean() / cfg.face_size)
        log(row)
    return stage
