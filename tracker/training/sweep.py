"""The experiment of the paper's Fig. 3: landmark error, class accuracy and training error
as the number of pose classes K grows, for the three losses, on the same data."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tracker.config import Config, config_from_dict, config_to_dict
from tracker.training.classifier import train


def grid_configs(base: Config, points: list[dict], losses: list[str]) -> list[tuple[str, Config]]:
    """One config per (class setting, loss); each point sets ``classes`` fields (kind, k, copies)."""
    runs = []
    for point in points:
        label = point.get("label") or (f"k{point['k']}" if point.get("kind") == "kmeans" else "exemplar")
        classes = {k: v for k, v in point.items() if k != "label"}
        for loss in losses:
            values = config_to_dict(base)
            values["classes"].update(classes)
            values["train"]["loss"] = loss
            values["name"] = f"{base.name}-{label}-{loss}"
            runs.append((f"{label}/{loss}", config_from_dict(values)))
    return runs


def run_sweep(base: Config, points: list[dict], losses: list[str], out_dir, reporter_factory=None,
              skip_done: bool = True) -> list[dict]:
    """Train every grid point; results are appended to ``out_dir/results.jsonl`` as they come."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.jsonl"
    done = {}
    if skip_done and results_path.is_file():
        done = {r["run"]: r for r in map(json.loads, results_path.read_text().splitlines())}
    results = []
    for run, cfg in grid_configs(base, points, losses):
        if run in done:
            results.append(done[run])
            continue
        reporter = reporter_factory(run) if reporter_factory else None
        model = train(cfg, Path("runs") / "sweep" / cfg.name, reporter=reporter, calibrate=False)
        final = dict(model.meta["final_validation"])
        row = {**final, "final_loss": final.pop("loss", None), "run": run, "loss": cfg.train.loss,
               "K": model.num_classes, "tau": model.tau, "kind": cfg.classes.kind}
        with open(results_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        results.append(row)
    return results


def loss_name(row: dict) -> str:
    """The loss of a result row (the run label ends in it: 'k100/multilabel')."""
    return row["run"].rsplit("/", 1)[-1]


def plot_sweep(results: list[dict], path) -> None:
    """Three panels against K: landmark error, class accuracy, training error."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("nme_argmax", "landmark NME (argmax class)"), ("class_acc", "class accuracy (argmax in M_i)"),
              ("train_error", "training error")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    for ax, (key, title) in zip(axes, panels):
        for loss in sorted({loss_name(r) for r in results}):
            rows = sorted((r for r in results if loss_name(r) == loss), key=lambda r: r["K"])
            ax.plot([r["K"] for r in rows], [r[key] for r in rows], marker="o", label=loss)
        ax.set_xscale("log")
        ax.set_xlabel("number of classes K")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


SWEEP_KEYS = {"base", "points", "losses", "out"}


def load_sweep(path) -> tuple[Config, list[dict], list[str], str]:
    """A sweep YAML: ``base`` (a training config), ``points`` (class settings), ``losses``, ``out``."""
    import yaml

    from tracker.config import ClassesConfig, ConfigError
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    unknown = set(spec) - SWEEP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} (a sweep has {sorted(SWEEP_KEYS)})")
    base = config_from_dict(spec.get("base") or {}, where=f"{path}:base")
    class_fields = {f.name for f in dataclasses.fields(ClassesConfig)} | {"label"}
    points = spec.get("points") or []
    for point in points:
        bad = set(point) - class_fields
        if bad:
            raise ConfigError(f"{path}: points: unknown classes key {sorted(bad)[0]!r}")
    return base, points, list(spec.get("losses") or ["multilabel"]), str(spec.get("out") or f"docs/{path.stem}")
