"""Peak memory of one training step, measured without running it: will a config fit a GPU?

The step is tracker.training.classifier.training_step (the pose classifier, the multi-label loss over
membership sets, AdamW as CUDA runs it: foreach), executed on fake tensors (torch's FakeTensorMode:
shapes, dtypes and sizes, no data, nothing computed) under torch's MemTracker, which adds
up the bytes of every live tensor by kind and keeps the peak. bf16 autocast is taken on
the CPU's autocast, whose lists put convolutions and matrix products in bf16 as CUDA's do.
What no tensor holds is not counted: a CUDA context, cuDNN's workspace, the caching
allocator's slack.
"""
from __future__ import annotations

from contextlib import nullcontext

KINDS = ("Parameter", "Gradient", "Optstate", "Activation", "Temp")


def step_peak(model_cfg, num_classes: int, batch: int, amp: bool = False, members: int = 1000,
              fake: bool = True) -> dict[str, int]:
    """Peak bytes by kind (``KINDS``, "Total") over two training steps (the first creates the
    optimizer's state), as they stood at the peak. ``members``: classes in each crop's
    membership set (only their number counts; fake tensors hold no indices). ``fake=False``
    runs the same steps for real on the CPU (to check the measurement)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from tracker.classifier.network import PoseClassifier
    from tracker.training.classifier import training_step
    from tracker.training.losses import entry_score_sums, multilabel_from_sums
    members = max(1, min(members, num_classes))
    size = model_cfg.crop_size
    with FakeTensorMode() if fake else nullcontext():
        net = PoseClassifier(model_cfg, num_classes).train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, foreach=True)
        tracker = MemTracker()
        tracker.track_external(net, optimizer)
        with tracker:
            for _ in range(2):
                crops = torch.zeros(batch, size, size, 3, dtype=torch.uint8)
                rows = torch.arange(batch).repeat_interleave(members)
                cols = torch.zeros(batch * members, dtype=torch.long)

                def loss(scores, rows=rows, cols=cols):
                    # the multi-label loss from the membership entries as row and class lists
                    # (a fake tensor has no values: no CSR offsets to read them from)
                    return multilabel_from_sums(scores, entry_score_sums(scores, rows, cols))
                training_step(net, optimizer, [(crops, loss)], amp=amp)
                tracker.reset_mod_stats()        # per-module records only; the peak stays
        peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
    out = {getattr(kind, "value", kind): int(n) for kind, n in peak.items()}
    return {kind: out.get(kind, 0) for kind in (*KINDS, "Total")}


def class_count(cfg) -> int:
    """K for a training config, without building the classes (exemplar classes: the training
    faces after the validation split, their mirror images and jittered copies, or ``k`` of them)."""
    if cfg.classes.kind == "kmeans" or cfg.classes.k > 0:
        return cfg.classes.k
    from tracker.training.data import load_faces, split_by_photo
    faces, _ = split_by_photo(load_faces(cfg.data.root, cfg.data.train_sets), cfg.data.val_fraction,
                              cfg.data.split_seed)
    return len(faces) * (2 if cfg.classes.flips else 1) * (1 + cfg.classes.perturbed_copies)
