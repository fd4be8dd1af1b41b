"""Table 1's AUC against its training time: the grid's settings beside other training lengths.

For each dataset, each variant of the table's settings (``VARIANTS``: other epochs, early
stopping on the held-out normal data, other batch sizes) trains MemAE on the same classes and
seed as the grid does (``memae.reproduce.table1``: the one-class split, the table's settings,
one thread). The variants take turns within each class, in an order that rotates from class
to class, so the machine's other work falls on all of them alike. Each run records its wall
time (fit and scoring), the epochs it trained and its test AUC; each variant then gets its
AUC and its time against the grid's, paired by class::

    python benchmarks/auc_time.py --data-dir "$MEMAE_DATA" --out results/auc_time.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from memae.data.paths import data_dir
from memae.data.protocols import one_class_split
from memae.detector import MemAEDetector
from memae.fast import keep_freed_memory
from memae.metrics import roc_auc
from memae.provenance import provenance
from memae.reproduce import table1

#: Per dataset, each variant's changes to the table's detector settings; ``grid`` is the table.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "mnist": {
        "grid": {},
        "half the epochs": {"epochs": 50},
        "half the epochs, batch 64 (the grid's number of steps)": {"epochs": 50, "batch_size": 64},
        "early stopping (10 epochs)": {"early_stopping": 10},
        "batch 256, lr 2e-3": {"batch_size": 256, "lr": 2e-3},
    },
    "cifar10": {
        "grid": {},
        "twice the epochs": {"epochs": 10},
        "four times the epochs": {"epochs": 20},
    },
}


def run_one(split: Any, seed: int, settings: dict[str, Any], variant: str) -> dict[str, Any]:
    detector = MemAEDetector(**{**settings, "variant": variant, "random_state": seed})
    start = time.perf_counter()
    detector.fit(split.train, X_val=split.val)
    scores = detector.decision_function(split.test)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "epochs_trained": len(detector.history_.train_loss),
        "auc": roc_auc(split.test_labels, scores),
    }


def measure(dataset: str, classes: list[int], seed: int, variant: str, root: Path) -> dict[str, Any]:
    X, y = table1.load_dataset(dataset, root)
    base = table1.SETTINGS[dataset]["detector"]
    names = list(VARIANTS[dataset])
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    warm = one_class_split(X, y, classes[0], seed=seed)  # untimed: the first fit's start-up
    MemAEDetector(**{**base, "epochs": 1, "variant": variant}).fit(warm.train[:256])
    for i, normal in enumerate(classes):
        split = one_class_split(X, y, normal, seed=seed)
        for name in names[i % len(names) :] + names[: i % len(names)]:
            run = run_one(split, seed, {**base, **VARIANTS[dataset][name]}, variant)
            runs[name].append({"class": normal, **run})
            print(
                f"{dataset} class {normal} {name}: AUC {run['auc']:.4f}, {run['seconds']:.0f} s, "
                f"{run['epochs_trained']} epochs",
                flush=True,
            )
    grid = runs["grid"]
    summary = {}
    for name, own in runs.items():
        summary[name] = {
            "changes": VARIANTS[dataset][name],
            "auc": statistics.mean(r["auc"] for r in own),
            "auc_change": statistics.mean(r["auc"] - g["auc"] for r, g in zip(own, grid, strict=True)),
            "time_ratio": statistics.median(
                r["seconds"] / g["seconds"] for r, g in zip(own, grid, strict=True)
            ),
            "epochs_trained": statistics.mean(r["epochs_trained"] for r in own),
        }
    return {"classes": classes, "seed": seed, "variant": variant, "runs": runs, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="default: $MEMAE_DATA, else ~/.cache/memae/data")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"], choices=list(VARIANTS))
    parser.add_argument("--classes", nargs="+", type=int, default=[3, 7])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default="memae", help="the MemAE variant trained (default: memae)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    keep_freed_memory()  # as the memae command runs the grid
    root = data_dir(args.data_dir)
    measured = {d: measure(d, args.classes, args.seed, args.variant, root) for d in args.datasets}
    record = {
        "command": harness.command_line("benchmarks/auc_time.py", argv or sys.argv[1:]),
        "config": {
            **harness.settings(args),
            "variants": VARIANTS,
            "settings": table1.SETTINGS,
            "torch_threads": 1,
        },
        "datasets": measured,
        "provenance": provenance(),
    }
    harness.write_json(args.out, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
