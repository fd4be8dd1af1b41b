"""Table 1: one-class MNIST and CIFAR-10, mean AUC over the ten classes (SPEC §6-7)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from memae.config import get_variant
from memae.data.protocols import one_class_split
from memae.metrics import roc_auc
from memae.provenance import git_commit
from memae.reproduce.figures import figures_markdown
from memae.reproduce.methods import KDE_BANDWIDTHS, get_method, relevant_settings
from memae.reproduce.records import RunKey, check_settings, record_exists, write_record
from memae.reproduce.tables import RowSet, RunOptions, TableSpec, register_table, write_summary

PAPER = {
    "mnist": {
        "OC-SVM": 0.9499,
        "KDE": 0.8116,
        "VAE": 0.9643,
        "PixCNN": 0.6141,
        "DSEBM": 0.9554,
        "AE": 0.9619,
        "MemAE-nonSpar": 0.9725,
        "MemAE": 0.9751,
    },
    "cifar10": {
        "OC-SVM": 0.5619,
        "KDE": 0.5756,
        "VAE": 0.5725,
        "PixCNN": 0.5450,
        "DSEBM": 0.5725,
        "AE": 0.5706,
        "MemAE-nonSpar": 0.6058,
        "MemAE": 0.6088,
    },
}

DEFAULT_METHODS = ("AE", "MemAE-nonSpar", "MemAE")

#: Settings per dataset; the detector's keys are MemAEDetector parameters.
SETTINGS: dict[str, dict[str, Any]] = {
    "mnist": {
        "detector": {
            "backbone": "mnist",
            "similarity": "dot",
            "epochs": 50,
            "batch_size": 64,
            "lr": 1e-3,
            "schedule": "cosine",
            "preprocessing": "none",
            "device": "auto",
        },
    },
    "cifar10": {
        "detector": {
            "backbone": "cifar10",
            "similarity": "dot",
            "epochs": 5,
            "batch_size": 128,
            "lr": 1e-3,
            "preprocessing": "none",
            "device": "auto",
        },
    },
}


def load_dataset(name: str, data_dir: Any) -> tuple[np.ndarray, np.ndarray]:
    if name == "mnist":
        from memae.data.mnist import load_mnist

        return load_mnist(data_dir)
    if name == "cifar10":
        from memae.data.cifar10 import load_cifar10

        return load_cifar10(data_dir)
    raise ValueError(f"unknown Table 1 dataset {name!r}; known: mnist, cifar10")


PROTOCOL = "one_class_split(train_fraction=2/3, anomaly_fraction=0.3, val_fraction=0.1)"


def settings(dataset: str, options: RunOptions) -> dict[str, Any]:
    """The config a run on ``dataset`` uses and its record holds."""
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in SETTINGS[dataset].items()}
    if options.epochs is not None:
        cfg["detector"]["epochs"] = options.epochs
    cfg["detector"].update(options.overrides)
    return {**cfg, "protocol": PROTOCOL}


def run(options: RunOptions) -> None:
    datasets = list(options.datasets or ("mnist", "cifar10"))
    methods = [get_method(m).name for m in (options.methods or DEFAULT_METHODS)]
    classes = list(options.classes if options.classes is not None else range(10))
    seeds = list(options.seeds if options.seeds is not None else (0, 1, 2))
    grid = [(d, s, c, m) for d in datasets for s in seeds for c in classes for m in methods]
    keys = [RunKey("table1", d, m, s, c) for d, s, c, m in grid]
    check_settings(
        options.results_dir,
        [(k, settings(k.dataset, options)) for k in keys],
        lambda key, config: relevant_settings(key.method, config),
    )
    todo = [g for g, k in zip(grid, keys, strict=True) if not record_exists(options.results_dir, k)]
    from tqdm.auto import tqdm

    git_commit()  # pin the commit this job starts from for all its records

    loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    bar = tqdm(todo, desc="table1", unit="run", disable=not options.progress)
    for dataset, seed, normal, method in bar:
        bar.set_postfix_str(f"{dataset} class {normal} seed {seed} {method}")
        key = RunKey("table1", dataset, method, seed, normal)
        if record_exists(options.results_dir, key):  # written meanwhile by another worker
            continue
        if dataset not in loaded:
            loaded[dataset] = load_dataset(dataset, options.data_dir)
        X, y = loaded[dataset]
        split = one_class_split(X, y, normal, seed=seed)
        cfg = settings(dataset, options)
        start = time.perf_counter()
        scores = get_method(method).fn(split.train, split.val, split.test, seed, cfg)
        seconds = time.perf_counter() - start
        auc = roc_auc(split.test_labels, scores)
        write_record(
            options.results_dir,
            key,
            {"auc": auc},
            cfg,
            seconds,
            extra={"n_train": len(split.train), "n_test": len(split.test)},
        )
        write_summary(options.results_dir, SPEC)


def _settings_note() -> str:
    from memae.nn.backbones import list_backbones

    parts = []
    for dataset, cfg in SETTINGS.items():
        d = cfg["detector"]
        parts.append(
            f"{dataset}: the `{d['backbone']}` net ({list_backbones()[d['backbone']]}), "
            f"{d['similarity']}-product addressing, "
            f"{d['epochs']} epochs of Adam at lr {d['lr']:g} ({d.get('schedule', 'constant')} schedule), "
            f"batch {d['batch_size']}"
        )
    return (
        "Settings of the AE and MemAE rows (`SETTINGS` in `src/memae/reproduce/table1.py`; "
        "λ = 1/N, α = 2e-4 as SPEC §2-3 give them): " + "; ".join(parts) + ". "
        "The paper's MNIST net has two readings (SPEC §5). Both fall below the paper on every "
        "row, and the table keeps the `mnist` reading because its AE, MemAE-nonSpar and MemAE "
        "rows sit closer to the paper's; the paper-text reading, which gives the paper's "
        "ordering (MemAE above MemAE-nonSpar above AE) but an AE far below the paper's, is kept "
        "as the row set `mnist-paper-text` below (the distance line and paired test there). "
        "MNIST trains for 50 epochs at batch 64: as many optimiser steps as the 100 epochs at "
        "batch 128 the table used before, in about half the time (the AUC against training time "
        "below). Over every class and seed its AE, MemAE-nonSpar and MemAE rows sit within a "
        "few thousandths of the 100-epoch rows, VAE's a little lower and DSEBM's higher (row "
        "set `mnist-100ep`, with each row's change against the table's runs). "
        "CIFAR-10 trains for 5 epochs. The table used 10, and pilots on classes 0 and 5 "
        "gained from longer training; but over every class and seed, 20 epochs lowers MemAE and "
        "MemAE-nonSpar and raises AE (row set `cifar10-20ep`), while 5 epochs gives AE and "
        "MemAE rows as high as 10 and the same lead of MemAE over AE, a little closer to the "
        "paper's, in half the time; 3 epochs drops MemAE and MemAE-nonSpar far below "
        "(row set `cifar10-3ep`). Of the baselines that share the length, DSEBM falls at 5 "
        "epochs, which puts the 10-epoch rows nearer the paper over all five deep methods "
        "(row set `cifar10-10ep`; each row set's change against the table's runs is below it). "
        "Pilot runs behind these choices are in `results/sweeps/` (see its README)."
    )


def _paper_text_rows() -> RowSet:
    """MNIST on the paper-text net: the pilot folders that together hold its grid."""
    from memae.nn.backbones import list_backbones

    return RowSet(
        "mnist-paper-text",
        f"mnist on the `mnist-paper-text` net ({list_backbones()['mnist-paper-text']}), the "
        "table's earlier training otherwise, 100 epochs at batch 128 "
        "(`--epochs 100 --set backbone=mnist-paper-text batch_size=128`).",
        ("mnist-paper-text-seed0", "mnist-paper-text-seeds-1-2"),
    )


def _mnist_100ep_rows() -> RowSet:
    """MNIST under the table's earlier training: the records it moved to a pilot folder."""
    return RowSet(
        "mnist-100ep",
        "mnist trained for 100 epochs at batch 128, the table's settings otherwise "
        "(`--epochs 100 --set batch_size=128`): the table's training before 50 epochs at "
        "batch 64, which takes as many optimiser steps (VAE and DSEBM too).",
        ("mnist-100ep-grid",),
    )


def _cifar10_epochs_rows(epochs: int, why: str) -> RowSet:
    """CIFAR-10 trained for another number of epochs: the pilot folder of its grid."""
    return RowSet(
        f"cifar10-{epochs}ep",
        f"cifar10 trained for {epochs} epochs, the table's settings otherwise (`--epochs {epochs}`): {why}",
        (f"cifar10-{epochs}ep-grid",),
    )


#: The record of ``benchmarks/grid_cost.py``, in the results folder.
GRID_COST = "grid_cost.json"


#: The record of ``benchmarks/grid_threads.py``, in the results folder.
GRID_THREADS = "grid_threads.json"


def _benchmark_record(results_dir: Path, name: str) -> tuple[dict[str, Any], str] | None:
    """A benchmark's record in the results folder and the words naming it (file, command,
    commit), or ``None`` when it has not been run."""
    path = results_dir / name
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    source = (
        f"record `{results_dir.name}/{name}`: `{record['command']}` at commit "
        f"{record['provenance']['commit'][:12]}"
    )
    return record, source


def grid_cost_markdown(results_dir: Path) -> str:
    """The grid's cost under channels-last training, from its benchmark record if present."""
    found = _benchmark_record(results_dir, GRID_COST)
    if found is None:
        return ""
    record, source = found
    projection = record["projection"]
    lines = [
        f"Cost of this grid with channels-last training, the default for 2-D conv nets on the CPU "
        f"({source}): each deep method ran a probe of a few epochs "
        "on one class, channels-last and contiguous in turn, and its paired speed-up divides "
        "the core-hours its runs took above; the other methods keep theirs. "
        f"Projected: {projection['recorded_h']:.2f} → {projection['projected_h']:.2f} core-hours "
        f"({projection['ratio']:.2f}x).",
        "",
        "| dataset | method | probe | channels-last speed-up | recorded (core-hours) | projected |",
        "|---|---|---|---|---|---|",
    ]
    for row in projection["rows"]:
        if row["speedup"] is None:
            continue
        probe = record["probes"][row["dataset"]]
        units = probe["methods"][row["method"]]["channels-last"]
        lines.append(
            f"| {row['dataset']} | {row['method']} | class {probe['class']}, {probe['epochs']} epoch(s) | "
            f"{row['speedup']:.2f}x ({units['speedup_min']:.2f}-{units['speedup_max']:.2f}) | "
            f"{row['recorded_h']:.2f} | {row['projected_h']:.2f} |"
        )
    return "\n".join([*lines, "", ""])


def grid_threads_markdown(results_dir: Path) -> str:
    """Runs per hour with one run on every core against one single-thread run per core."""
    found = _benchmark_record(results_dir, GRID_THREADS)
    if found is None:
        return ""
    record, source = found
    rates = ", ".join(f"{name}: {rate:.0f} runs/hour" for name, rate in record["runs_per_hour"].items())
    return (
        f"Threads per worker ({source}, a {record['config']['epochs']}-epoch MemAE probe "
        f"on {record['config']['dataset']}): {rates}. The grids run one single-thread worker per core.\n\n"
    )


#: The record of ``benchmarks/auc_time.py``, in the results folder.
AUC_TIME = "auc_time.json"


def auc_time_markdown(results_dir: Path) -> str:
    """The grid's AUC against its training time, from the benchmark's record if present."""
    found = _benchmark_record(results_dir, AUC_TIME)
    if found is None:
        return ""
    record, source = found
    lines = [
        f"AUC against training time ({source}): on each dataset, "
        f"{get_variant(record['config']['variant']).title} "
        "trained under the table's settings of the record's commit (*grid*; the record holds them) "
        "and under each variant of them in turn, "
        "on the same classes and seed; *change* is the variant's AUC minus the grid's and "
        "*time* the median of its wall times (fit and scoring, one thread) over the grid's, "
        "both paired by class.",
        "",
        "| dataset | classes | settings | changed | epochs trained | AUC | change | time / grid |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    halves = []
    for dataset, measured in record["datasets"].items():
        classes = ", ".join(map(str, measured["classes"]))
        for name, row in measured["summary"].items():
            changed = "; ".join(f"`{k}={v}`" for k, v in row["changes"].items()) or "–"
            lines.append(
                f"| {dataset} | {classes} (seed {measured['seed']}) | {name} | {changed} | "
                f"{row['epochs_trained']:.0f} | {row['auc']:.4f} | {row['auc_change']:+.4f} | "
                f"{row['time_ratio']:.2f}x |"
            )
            if row["changes"] and row["time_ratio"] <= 0.5:
                halves.append(f"{dataset} {name} ({row['auc_change']:+.4f} AUC)")
    lines += [
        "",
        "Variants in at most half the grid's time: "
        + ("; ".join(halves) if halves else "none")
        + ". A variant changes only the deep methods' runs; OC-SVM, KDE and the PyOD peers "
        "cost what they did.",
    ]
    return "\n".join([*lines, "", ""])


def _extra(results_dir: Path) -> str:
    return (
        auc_time_markdown(results_dir)
        + grid_cost_markdown(results_dir)
        + grid_threads_markdown(results_dir)
        + figures_markdown(results_dir)
    )


SPEC = register_table(
    TableSpec(
        name="table1",
        title="Table 1: one-class MNIST and CIFAR-10, AUC",
        metrics=("auc",),
        paper=PAPER,
        run=run,
        relevant=relevant_settings,
        extra=_extra,
        row_sets=(
            _paper_text_rows(),
            _mnist_100ep_rows(),
            _cifar10_epochs_rows(3, "shorter still than the table's, to see where the trend ends."),
            _cifar10_epochs_rows(
                10,
                "the table's length before the grids at 5 and 20 epochs (VAE and DSEBM too).",
            ),
            _cifar10_epochs_rows(
                20,
                "the length the pilots on classes 0 and 5 pointed to (see the pilot runs and "
                "the AUC against training time below).",
            ),
        ),
        notes=(
            "Protocol (SPEC §6): each class in turn is normal; its samples (official train and "
            "test pooled) are split 2:1 into train and test, anomalies from the other classes make "
            "30 % of the test set, 10 % of the training part is held out for validation. "
            "Score: per-image mean squared reconstruction error. " + _settings_note() + " "
            "KDE is a Gaussian kernel density computed exactly (`memae.baselines.kde`), its "
            f"bandwidth the one of {', '.join(f'{f:g}' for f in KDE_BANDWIDTHS)} times the mean "
            "per-pixel standard deviation that gives the validation images the highest "
            "likelihood. scikit-learn's `KernelDensity`, which the table used before, returned "
            "log-densities off by hundreds on these images (its issues #25799 and #7492); its "
            "runs, far below these, are the folder `kde-sklearn-tree` among the pilot runs."
        ),
    )
)
