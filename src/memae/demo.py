"""The first-run demo: ten one-class tasks on scikit-learn's bundled 8×8 digits, AE vs MemAE.

No download: the digits ship with scikit-learn. Each digit in turn is the normal class
(the image protocol of SPEC §6); AE and MemAE share the encoder and decoder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memae.checkpoint import atomic_write
from memae.data.protocols import one_class_split
from memae.detector import MemAEDetector
from memae.metrics import roc_auc
from memae.provenance import provenance
from memae.viz import image_grid

VARIANTS = ("ae", "memae")
TITLES = {"ae": "AE", "memae": "MemAE"}


@dataclass(frozen=True)
class DemoConfig:
    """The demo's settings; the defaults run in about a minute and a half on 2 CPU cores."""

    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3
    memory_size: int = 50
    seeds: tuple[int, ...] = (0, 1, 2)
    classes: tuple[int, ...] = tuple(range(10))
    figure_class: int = 5


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as (N, 1, 8, 8) float32 in [0, 1], with labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images[:, None] / 16.0).astype(np.float32), digits.target.astype(int)


def _detector(variant: str, config: DemoConfig, seed: int) -> MemAEDetector:
    return MemAEDetector(
        variant=variant,
        memory_size=config.memory_size,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        preprocessing="none",
        random_state=seed,
        device="cpu",
    )


def run_demo(
    out_dir: str | Path, config: DemoConfig = DemoConfig(), log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train AE and MemAE on every class, write the report folder, return the results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_digits_images()
    # aucs[variant][seed][class]
    aucs: dict[str, dict[int, dict[int, float]]] = {v: {s: {} for s in config.seeds} for v in VARIANTS}
    start = time.perf_counter()
    from tqdm.auto import tqdm

    tasks = [(seed, normal) for seed in config.seeds for normal in config.classes]
    for seed, normal in tqdm(tasks, desc="one-class tasks", unit="task"):
        split = one_class_split(X, y, normal, seed=seed)
        fitted = {}
        for variant in VARIANTS:
            det = _detector(variant, config, seed).fit(split.train, X_val=split.val)
            aucs[variant][seed][normal] = roc_auc(split.test_labels, det.decision_function(split.test))
            fitted[variant] = det
        if normal == config.figure_class and seed == config.seeds[0]:
            _figures(out, fitted, split.test, split.test_labels, normal)
    seconds = time.perf_counter() - start
    per_class = {
        v: {c: float(np.mean([aucs[v][s][c] for s in config.seeds])) for c in config.classes}
        for v in VARIANTS
    }
    seed_means = {v: [float(np.mean(list(aucs[v][s].values()))) for s in config.seeds] for v in VARIANTS}
    means = {v: float(np.mean(seed_means[v])) for v in VARIANTS}
    table = format_table(per_class, config.classes, seed_means)
    log(table)
    result = {
        "task": "sklearn digits 8x8, one class normal, image protocol of SPEC §6",
        "auc": {v: {str(k): a for k, a in per_class[v].items()} for v in VARIANTS},
        "auc_per_seed": {
            v: {str(s): {str(k): a for k, a in aucs[v][s].items()} for s in config.seeds} for v in VARIANTS
        },
        "mean_auc": means,
        "mean_auc_std_over_seeds": {v: float(np.std(seed_means[v])) for v in VARIANTS},
        "config": config.__dict__ | {"classes": list(config.classes), "seeds": list(config.seeds)},
        "wall_seconds": round(seconds, 1),
        **provenance(),
    }
    atomic_write(out / "results.json", lambda p: Path(p).write_text(json.dumps(result, indent=2)))
    atomic_write(out / "results.md", lambda p: Path(p).write_text(_markdown(table, result)))
    log(f"report written to {out}/ (results.md, results.json, figures) in {seconds:.0f} s")
    return result


def format_table(
    aucs: dict[str, dict[int, float]], classes: Sequence[int], seed_means: dict[str, list[float]]
) -> str:
    """Plain-text table: a row per variant, a column per class (mean over seeds), then the
    mean over classes ± its standard deviation over seeds."""
    head = "method  " + " ".join(f"{c:>6}" for c in classes) + "    mean ± std (seeds)"
    rows = [head]
    for v in aucs:
        cells = " ".join(f"{aucs[v][c]:6.4f}" for c in classes)
        rows.append(f"{TITLES[v]:<7} {cells}  {np.mean(seed_means[v]):6.4f} ± {np.std(seed_means[v]):.4f}")
    return "\n".join(rows)


def _markdown(table: str, result: dict[str, Any]) -> str:
    return (
        "# memae demo: one-class digits (8×8), AUC per normal class\n\n"
        f"```\n{table}\n```\n\n"
        f"memae {result['memae_version']}, commit {result['commit']}, "
        f"{result['wall_seconds']} s, config `{json.dumps(result['config'])}`\n\n"
        "![decoded memory slots](memory_slots.png)\n\n"
        "![AE vs MemAE reconstructions of anomalies](anomaly_reconstructions.png)\n"
    )


def _figures(
    out: Path, fitted: dict[str, MemAEDetector], test: np.ndarray, labels: np.ndarray, normal: int
) -> None:
    memae = fitted["memae"]
    usage = memae.addressing_weights(test[labels == 0]).mean(axis=0)
    top = np.argsort(usage)[::-1][:10].copy()
    import torch

    slots = memae.model_.decode_slots(torch.as_tensor(top)).cpu().numpy()
    image_grid(
        [slots],
        ["slots"],
        out / "memory_slots.png",
        f"MemAE (normal = {normal}): 10 most used slots, decoded",
    )
    anomalies = test[labels == 1][:10]
    image_grid(
        [anomalies, fitted["ae"].reconstruct(anomalies), memae.reconstruct(anomalies)],
        ["input", "AE", "MemAE"],
        out / "anomaly_reconstructions.png",
        f"anomalies reconstructed by models trained on {normal}",
    )
