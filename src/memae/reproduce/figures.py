"""The paper's MNIST figures: decoded memory slots, AE vs MemAE reconstructions of
anomalies (trained on "5", shown "9"s and others) and score distributions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memae.checkpoint import atomic_write
from memae.data.protocols import one_class_split
from memae.detector import MemAEDetector
from memae.metrics import roc_auc
from memae.provenance import provenance
from memae.reproduce.tables import RunOptions
from memae.viz import image_grid, score_histogram

RECORD = "figures/mnist_figures.json"
FIGURES = {
    "slots": "mnist_memory_slots.png",
    "recon": "mnist_ae_vs_memae_anomalies.png",
    "scores": "mnist_score_distributions.png",
}


def make_figures(
    options: RunOptions,
    cfg: dict[str, Any],
    out_dir: Path,
    normal: int = 5,
    anomaly: int = 9,
    seed: int = 0,
) -> Path:
    """Train AE and MemAE on MNIST ``normal`` with ``cfg`` (Table 1's MNIST config, whose
    ``"detector"`` entry holds the detector's parameters); write the figures into
    ``out_dir`` and a JSON record of what made them into the results folder."""
    from memae.data.mnist import load_mnist

    X, y = load_mnist(options.data_dir)
    split = one_class_split(X, y, normal, seed=seed)
    models = {
        v: MemAEDetector(**{**cfg["detector"], "variant": v, "random_state": seed}).fit(
            split.train, X_val=split.val
        )
        for v in ("ae", "memae")
    }
    memae = models["memae"]
    usage = memae.addressing_weights(split.train[:2000]).mean(axis=0)
    top = np.argsort(usage)[::-1][:12].copy()
    slots = memae.model_.decode_slots(torch.as_tensor(top, device=memae._device())).cpu().numpy()
    out_dir.mkdir(parents=True, exist_ok=True)
    image_grid(
        [slots],
        ["slots"],
        out_dir / FIGURES["slots"],
        f"MemAE on MNIST '{normal}': 12 most used slots, decoded",
    )

    pool = np.flatnonzero(y == anomaly)
    shown = X[pool[np.random.default_rng(seed).choice(len(pool), 10, replace=False)]]
    image_grid(
        [shown, models["ae"].reconstruct(shown), memae.reconstruct(shown)],
        ["input", "AE", "MemAE"],
        out_dir / FIGURES["recon"],
        f"'{anomaly}'s reconstructed by models trained on '{normal}'",
    )
    scores = {v: m.decision_function(split.test) for v, m in models.items()}
    aucs = {v: roc_auc(split.test_labels, s) for v, s in scores.items()}
    score_histogram(
        scores["memae"],
        split.test_labels,
        out_dir / FIGURES["scores"],
        f"MemAE on MNIST '{normal}': test scores (AUC {aucs['memae']:.4f})",
    )
    record: dict[str, Any] = {
        "figures": FIGURES,
        "normal_class": normal,
        "anomaly_class_shown": anomaly,
        "seed": seed,
        "auc": aucs,
        "config": cfg,
        **provenance(),
    }
    text = json.dumps(record, indent=2)
    return atomic_write(options.results_dir / RECORD, lambda p: Path(p).write_text(text))


def figures_markdown(results_dir: Path, link_prefix: str = "figures/") -> str:
    """Markdown that shows the figures when their record exists."""
    path = results_dir / RECORD
    if not path.is_file():
        return "Figures: not generated yet (`memae reproduce figures`).\n"
    aucs = json.loads(path.read_text())["auc"]
    return (
        f"Figures (`memae reproduce figures`, record `results/{RECORD}`; on this class and seed "
        f"AE's AUC is {aucs['ae']:.4f}, MemAE's {aucs['memae']:.4f}):\n\n"
        f"![decoded memory slots]({link_prefix}{FIGURES['slots']})\n\n"
        f"![AE vs MemAE reconstructions of anomalies]({link_prefix}{FIGURES['recon']})\n\n"
        f"![score distributions]({link_prefix}{FIGURES['scores']})\n"
    )
