"""One-class tasks on small real tables: memae's default detector against PyOD's defaults.

    python benchmarks/tables.py --out results/tables_suite.json
    python benchmarks/tables.py --sweep --out results/tables_sweep.json   # memae settings only
    python benchmarks/tables_report.py                                      # docs/TABLES.md

**Data.** Tables that ship inside scikit-learn (no download): breast_cancer (569 x 30,
2 classes), wine (178 x 13, 3 classes), iris (150 x 4, 3 classes), digits (1797 x 64,
10 classes); and, where ``MEMAE_DATA`` holds it, a 3,000-record sample of the KDDCUP99 10 %
file read as a table with its string columns (the DAGMM convention: the attack records are
the normal class, ``normal.`` traffic the anomalies).

**Protocol.** Each class in turn is the normal class (a *task*). For every seed, 60 % of the
normal class's rows, drawn at random, are the training data; the test data are the other
40 % of that class (label 0) and every row of the other classes (label 1). The score is the
ROC AUC on the test data. Every method sees the same splits. memae's detector takes the raw
table (its own :class:`memae.preprocessing.TableEncoder` does the rest); PyOD's detectors take
the table standardised by a scikit-learn ``StandardScaler`` fitted on the training rows
(string columns one-hot, unseen categories all-zero), the preparation PyOD's examples use.

**Tasks held back.** The tasks are split into a *tuning* set (breast_cancer, iris, digits
0-4) on which memae's defaults were chosen, and a *check* set (wine, digits 5-9, KDDCUP99)
never looked at while choosing; the record reports both means.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from memae import preprocessing

SCHEMA = 1
TRAIN_FRACTION = 0.6
PEERS = ("IForest", "KNN", "OCSVM", "AutoEncoder", "DeepSVDD")
MEMAE = ("MemAE", "AE")
#: The detector's defaults before the tables work (50 epochs of 64 whatever the size, cosine
#: addressing), run beside today's for the record.
BEFORE = {
    "MemAE (before)": (
        "memae",
        {"epochs": 50, "batch_size": 64, "similarity": "cosine", "preprocessing": "standard"},
    ),
    "AE (before)": ("ae", {"epochs": 50, "batch_size": 64, "preprocessing": "standard"}),
}
CHECK_TASKS = ("wine", "digits:5", "digits:6", "digits:7", "digits:8", "digits:9", "kddcup")


@dataclass(frozen=True)
class Table:
    """A labelled table: ``X`` a 2-D array or a DataFrame, ``y`` the class of each row."""

    name: str
    X: Any
    y: np.ndarray
    normal_classes: tuple[Any, ...]


@dataclass(frozen=True)
class Task:
    table: Table
    normal: Any

    @property
    def name(self) -> str:
        return f"{self.table.name}:{self.normal}"

    @property
    def held_back(self) -> bool:
        return self.name in CHECK_TASKS or self.table.name in CHECK_TASKS


def bundled_tables(kdd_rows: int = 3000, seed: int = 0) -> list[Table]:
    """scikit-learn's bundled tables, and a KDDCUP99 sample where ``MEMAE_DATA`` has the file."""
    from sklearn import datasets

    out = []
    for name, loader in (
        ("breast_cancer", datasets.load_breast_cancer),
        ("wine", datasets.load_wine),
        ("iris", datasets.load_iris),
        ("digits", datasets.load_digits),
    ):
        bunch = loader()
        X, y = bunch.data.astype(np.float64), bunch.target
        out.append(Table(name, X, y, tuple(int(c) for c in np.unique(y))))
    kdd = kdd_frame()
    if kdd is not None:
        rows = np.random.default_rng(seed).choice(len(kdd), kdd_rows, replace=False)
        frame = kdd.iloc[np.sort(rows)].reset_index(drop=True)
        y = np.where(frame.pop("label").to_numpy() == "normal.", "normal.", "attack")
        out.append(Table("kddcup", frame, y, ("attack",)))
    return out


def kdd_frame() -> Any:
    """The KDDCUP99 10 % file as a DataFrame with its string columns and a ``label`` column,
    or None where ``MEMAE_DATA`` does not hold it."""
    import pandas as pd

    from memae.data.kddcup import DATA_FILE, NAMES_FILE, read_names
    from memae.data.paths import data_dir

    root = data_dir() / "kddcup99"
    if not (root / DATA_FILE).exists():
        return None
    names = [name for name, _ in read_names(root / NAMES_FILE)] + ["label"]
    return pd.read_csv(root / DATA_FILE, header=None, names=names)


def tasks(tables: list[Table]) -> list[Task]:
    return [Task(t, c) for t in tables for c in t.normal_classes]


def split(task: Task, seed: int) -> tuple[Any, Any, np.ndarray]:
    """(train rows, test rows, test labels 1 = anomaly) of ``task`` for ``seed``."""
    y = task.table.y
    normal = np.flatnonzero(y == task.normal)
    other = np.flatnonzero(y != task.normal)
    order = np.random.default_rng([seed, _stable_hash(task.name)]).permutation(normal)
    n_train = round(TRAIN_FRACTION * len(normal))
    train, test = np.sort(order[:n_train]), np.concatenate([np.sort(order[n_train:]), other])
    labels = np.concatenate([np.zeros(len(normal) - n_train, int), np.ones(len(other), int)])
    return _rows(task.table.X, train), _rows(task.table.X, test), labels


def _stable_hash(text: str) -> int:
    return int.from_bytes(text.encode(), "little") % (2**31 - 1)


def _rows(X: Any, index: np.ndarray) -> Any:
    return X.iloc[index].reset_index(drop=True) if hasattr(X, "iloc") else X[index]


def standardiser(train: Any) -> Callable[[Any], np.ndarray]:
    """The peers' preparation: StandardScaler on numbers, one-hot on strings (fitted on ``train``)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not hasattr(train, "columns"):
        scaler = StandardScaler().fit(train)
        return lambda X: scaler.transform(X)
    strings = [c for c in train.columns if train[c].dtype == object or str(train[c].dtype) == "str"]
    numbers = [c for c in train.columns if c not in strings]
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), numbers),
            ("str", OneHotEncoder(handle_unknown="ignore", sparse_output=False), strings),
        ]
    ).fit(train)
    return lambda X: np.asarray(prep.transform(X), dtype=np.float64)


# --- the methods -----------------------------------------------------------------------------


def peer(name: str, seed: int, n_features: int, n_train: int) -> Any:
    """PyOD's detector ``name`` with its defaults (``verbose=0``; a seed where it takes one).

    PyOD's AutoEncoder drops an incomplete last batch, so on fewer rows than its batch size
    (32) it trains on nothing and fails; there, and only there, its batch is the training set.
    """
    if name == "IForest":
        from pyod.models.iforest import IForest

        return IForest(random_state=seed)
    if name == "KNN":
        from pyod.models.knn import KNN

        return KNN()
    if name == "OCSVM":
        from pyod.models.ocsvm import OCSVM

        return OCSVM()
    if name == "AutoEncoder":
        from pyod.models.auto_encoder import AutoEncoder

        small = {"batch_size": n_train} if n_train < 32 else {}
        return AutoEncoder(random_state=seed, verbose=0, **small)
    if name == "DeepSVDD":
        from pyod.models.deep_svdd import DeepSVDD

        return DeepSVDD(n_features=n_features, random_state=seed, verbose=0)
    raise ValueError(f"unknown peer {name!r}")


def memae(variant: str, seed: int, params: dict[str, Any] | None = None) -> Any:
    from memae import MemAEDetector

    return MemAEDetector(variant=variant, random_state=seed, device="cpu", **(params or {}))


def run_one(method: str, task: Task, seed: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit on the task's training rows for ``seed``, score its test rows: AUC and seconds."""
    from sklearn.metrics import roc_auc_score

    train, test, labels = split(task, seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    start = time.perf_counter()
    if method in PEERS:
        prep = standardiser(train)
        train_x = prep(train)
        detector = peer(method, seed, train_x.shape[1], len(train_x)).fit(train_x)
        fitted = time.perf_counter()
        scores = detector.decision_function(prep(test))
    else:
        variant = {"MemAE": "memae", "AE": "ae"}.get(method, method)
        params = dict(params or {})
        # "bound": the bounded scaling's BOUND for this run (memae.preprocessing)
        bound = params.pop("bound", preprocessing.BOUND)
        with mock.patch.object(preprocessing, "BOUND", bound):
            detector = memae(variant, seed, params).fit(train)
        fitted = time.perf_counter()
        scores = detector.decision_function(test)
    done = time.perf_counter()
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=np.inf)
    return {
        "method": method,
        "task": task.name,
        "seed": seed,
        "auc": float(roc_auc_score(labels, scores)),
        "fit_s": fitted - start,
        "score_s": done - fitted,
        "n_train": len(train),
        "n_test": len(labels),
    }


# --- summaries -------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]], task_names: list[str]) -> dict[str, Any]:
    """Per method: mean AUC per task (over seeds), per dataset, over the tuning and check tasks
    and over all tasks (every task weighs the same), and the mean fit + score seconds."""
    methods = list(dict.fromkeys(r["method"] for r in runs))
    out: dict[str, Any] = {}
    for m in methods:
        mine = [r for r in runs if r["method"] == m]
        per_task = {
            t: float(np.mean([r["auc"] for r in mine if r["task"] == t]))
            for t in task_names
            if any(r["task"] == t for r in mine)
        }
        datasets = list(dict.fromkeys(t.split(":")[0] for t in per_task))
        per_dataset = {
            d: float(np.mean([a for t, a in per_task.items() if t.split(":")[0] == d])) for d in datasets
        }
        check = [a for t, a in per_task.items() if t in CHECK_TASKS or t.split(":")[0] in CHECK_TASKS]
        tune = [a for t, a in per_task.items() if not (t in CHECK_TASKS or t.split(":")[0] in CHECK_TASKS)]
        out[m] = {
            "per_task": per_task,
            "per_dataset": per_dataset,
            "mean_tuning": float(np.mean(tune)) if tune else None,
            "mean_check": float(np.mean(check)) if check else None,
            "mean_all": float(np.mean(list(per_task.values()))),
            "mean_dataset": float(np.mean(list(per_dataset.values()))),
            "seconds_per_task": float(np.mean([r["fit_s"] + r["score_s"] for r in mine])),
        }
    return out


def memae_defaults() -> dict[str, Any]:
    """The detector's defaults as this checkout has them (recorded with the results)."""
    from memae import MemAEDetector
    from memae.detector import TABLE_SCALING

    params = MemAEDetector().get_params()
    return {
        **{k: v for k, v in params.items() if k not in ("device", "verbose")},
        "TABLE_SCALING": TABLE_SCALING,
    }


#: memae settings measured by ``--sweep`` (each against the defaults, on the same splits).
#: Measured on the tuning tasks only; the defaults were then set from the tuning means.
SWEEP: dict[str, dict[str, Any]] = {
    "default": {"variant": "memae", "params": {}},
    "similarity cosine": {"variant": "memae", "params": {"similarity": "cosine"}},
    "scaling bounded at 2": {"variant": "memae", "params": {"bound": 2.0}},
    "scaling bounded at 8": {"variant": "memae", "params": {"bound": 8.0}},
    "scaling standard": {"variant": "memae", "params": {"preprocessing": "standard"}},
    "scaling robust": {"variant": "memae", "params": {"preprocessing": "robust"}},
    "scaling minmax": {"variant": "memae", "params": {"preprocessing": "minmax"}},
    "fewer steps (20 epochs)": {"variant": "memae", "params": {"epochs": 20}},
    "more steps (200 epochs)": {"variant": "memae", "params": {"epochs": 200}},
    "small batches (16, 150 epochs)": {"variant": "memae", "params": {"batch_size": 16, "epochs": 150}},
    "early stopping (patience 5; at most 200 epochs)": {
        "variant": "memae",
        "params": {"early_stopping": 5, "epochs": 200},
    },
    "early stopping (patience 10; at most 200 epochs)": {
        "variant": "memae",
        "params": {"early_stopping": 10, "epochs": 200},
    },
    "width 2": {"variant": "memae", "params": {"width": 2.0}},
    "memory 20 slots": {"variant": "memae", "params": {"memory_size": 20}},
    "λ = 2/N": {"variant": "memae", "params": {"shrink_threshold": 0.02}},
    "λ = 1/(4N)": {"variant": "memae", "params": {"shrink_threshold": 0.0025}},
    "lr 3e-3": {"variant": "memae", "params": {"lr": 0.003}},
    "AE variant": {"variant": "ae", "params": {}},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/tables_suite.json"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", default=",".join(("MemAE (before)", *MEMAE, *PEERS)))
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    parser.add_argument(
        "--sweep", default="", help="comma-separated SWEEP settings, or 'all', instead of --methods"
    )
    parser.add_argument("--params", default="", help="JSON: memae parameters for a one-off setting")
    parser.add_argument("--no-kdd", action="store_true", help="leave the KDDCUP99 task out")
    parser.add_argument("--tuning-only", action="store_true", help="only the tasks not held back")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from memae.preprocessing import UnseenCategoryWarning
    from memae.provenance import provenance

    # KDDCUP99's test rows hold services the training sample never saw: encoded as all zeros
    warnings.filterwarnings("ignore", category=UnseenCategoryWarning)

    tables = bundled_tables()
    if args.no_kdd:
        tables = [t for t in tables if t.name != "kddcup"]
    all_tasks = tasks(tables)
    if args.tuning_only:
        all_tasks = [t for t in all_tasks if not t.held_back]
    if args.tasks:
        wanted = args.tasks.split(",")
        all_tasks = [t for t in all_tasks if t.name in wanted or t.table.name in wanted]
    settings: dict[str, tuple[str, dict[str, Any] | None]] = {}
    if args.sweep:
        names = list(SWEEP) if args.sweep == "all" else args.sweep.split(",")
        for name in names:
            variant, params = SWEEP[name]["variant"], dict(SWEEP[name]["params"])
            settings[name] = (variant, params)
    elif args.params:
        settings["custom"] = ("memae", json.loads(args.params))
    else:
        for m in args.methods.split(","):
            settings[m] = BEFORE.get(m, (m, None))

    runs = []
    for seed in args.seeds:
        for task in all_tasks:
            for name, (method, params) in settings.items():
                record = run_one({"memae": "MemAE", "ae": "AE"}.get(method, method), task, seed, params)
                record["method"] = name
                runs.append(record)
                print(
                    f"{name:24s} {task.name:16s} seed {seed}: AUC {record['auc']:.4f} "
                    f"({record['fit_s'] + record['score_s']:.1f} s)",
                    flush=True,
                )
    task_names = [t.name for t in all_tasks]
    record = {
        "schema": SCHEMA,
        "provenance": provenance(),
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "protocol": {
            "train_fraction": TRAIN_FRACTION,
            "what": "each class in turn normal; train on a random 60 % of its rows; test on the other "
            "40 % (label 0) and every row of the other classes (label 1); ROC AUC",
            "peers_input": "StandardScaler (and one-hot for strings) fitted on the training rows",
            "memae_input": "the raw table",
            "check_tasks": list(CHECK_TASKS),
        },
        "config": {
            "seeds": args.seeds,
            "threads": args.threads,
            "memae_defaults": memae_defaults(),
            "settings": {k: {"method": v[0], "params": v[1]} for k, v in settings.items()},
        },
        "tasks": [
            {
                "task": t.name,
                "dataset": t.table.name,
                "held_back": t.held_back,
                "rows": len(t.table.y),
                "normal_rows": int((t.table.y == t.normal).sum()),
            }
            for t in all_tasks
        ],
        "summary": summarise(runs, task_names),
        "runs": runs,
        "tuning_only": args.tuning_only,
    }
    harness.write_json(args.out, record, indent=1)
    for m, s in record["summary"].items():
        print(
            f"{m:24s} tuning {s['mean_tuning']}  check {s['mean_check']}  all {s['mean_all']:.4f} "
            f" {s['seconds_per_task']:.1f} s/task"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
