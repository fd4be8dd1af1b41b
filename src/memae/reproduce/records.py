"""One JSON record per run, so a long grid can be resumed, and the summaries built from them.

A record is written atomically to
``<results>/runs/<table>/<dataset>/<method>/<run>.json`` where ``<run>`` is
``class<k>-seed<s>`` (one-class image tasks) or ``seed<s>``. A run whose record exists
is skipped by the runners; a grid whose records were made with other settings is refused
(:func:`check_settings`), so a table never mixes runs of two configurations.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memae.checkpoint import atomic_write
from memae.provenance import provenance


@dataclass(frozen=True)
class RunKey:
    """What identifies one run of a table's grid."""

    table: str
    dataset: str
    method: str
    seed: int
    normal_class: int | None = None

    def path(self, results_dir: str | Path) -> Path:
        run = f"seed{self.seed}" if self.normal_class is None else f"class{self.normal_class}-seed{self.seed}"
        return Path(results_dir) / "runs" / self.table / self.dataset / _slug(self.method) / f"{run}.json"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_")


def record_exists(results_dir: str | Path, key: RunKey) -> bool:
    return key.path(results_dir).is_file()


def changed_settings(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Where two JSON values differ, as ``key: old -> new`` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += changed_settings(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def check_settings(
    results_dir: str | Path,
    runs: list[tuple[RunKey, dict[str, Any]]],
    relevant: Callable[[RunKey, dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Refuse to resume a grid whose recorded runs were made with other settings.

    ``runs`` pairs each run of the grid with the config its record would hold;
    ``relevant(key, config)`` picks the part of a config that decides the run's result
    (all of it by default). A record whose part differs would be skipped and then mixed
    into the table with the others, so nothing runs and the error names the records.
    """

    def pick(key: RunKey, config: dict[str, Any]) -> dict[str, Any]:
        return relevant(key, config) if relevant is not None else config

    stale: list[tuple[str, str]] = []
    for key, config in runs:
        path = key.path(results_dir)
        if not path.is_file():
            continue
        recorded = pick(key, read_record(path).get("config", {}))
        expected = pick(key, json.loads(json.dumps(config)))
        if recorded != expected:
            stale.append((str(path), "; ".join(changed_settings(recorded, expected)[:3])))
    if stale:
        others = ", ".join(p for p, _ in stale[1:4]) + (", ..." if len(stale) > 4 else "")
        more = f" (and {len(stale) - 1} more: {others})"
        raise ValueError(
            f"{len(stale)} recorded run(s) of this grid were made with other settings, "
            f"{stale[0][0]}: {stale[0][1]} (recorded -> requested){more if len(stale) > 1 else ''}; "
            "move them away or pass another --results-dir; nothing was run"
        )


def write_record(
    results_dir: str | Path,
    key: RunKey,
    metrics: dict[str, float],
    config: dict[str, Any],
    wall_seconds: float,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the record of a finished run (metrics, config, seed, commit, machine, time)."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise ValueError(f"metric {name!r} of {key} is not finite: {value}")
    record = {
        "table": key.table,
        "dataset": key.dataset,
        "method": key.method,
        "normal_class": key.normal_class,
        "seed": key.seed,
        "metrics": metrics,
        "config": config,
        "wall_seconds": round(wall_seconds, 2),
        **(extra or {}),
        **provenance(),
    }
    text = json.dumps(record, indent=2, sort_keys=False, default=str)
    return atomic_write(key.path(results_dir), lambda p: Path(p).write_text(text))


def load_records(results_dir: str | Path, table: str) -> list[dict[str, Any]]:
    """Every record of ``table`` under ``results_dir`` (each checked by :func:`read_record`)."""
    root = Path(results_dir) / "runs" / table
    return [read_record(p) for p in sorted(root.rglob("*.json"))] if root.is_dir() else []


#: what every record holds: the field, its types, and how to say them
_RECORD_FIELDS: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("dataset", (str,), "a string"),
    ("method", (str,), "a string"),
    ("seed", (int,), "an integer"),
    ("normal_class", (int, type(None)), "an integer or null"),
    ("metrics", (dict,), "an object of numbers"),
)


def read_record(path: str | Path) -> dict[str, Any]:
    """One run record, refused naming the file and the field when it is not what
    :func:`write_record` writes (a ``ValueError``)."""
    from memae.checkpoint import parse_json

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"run record {path} is not UTF-8 text: {err}") from err
    record = parse_json(text, f"run record {path}")
    if not isinstance(record, dict):
        raise ValueError(f"run record {path} must be a JSON object, got {type(record).__name__}")
    for name, types, said in _RECORD_FIELDS:
        value = record.get(name)
        if name not in record or isinstance(value, bool) or not isinstance(value, types):
            got = "nothing" if name not in record else f"{value!r}"
            raise ValueError(f"run record {path}: field {name!r} must be {said}, got {got}")
    for name, value in record["metrics"].items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"run record {path}: metric {name!r} must be a finite number, got {value!r}")
    return record


def _stats(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=0)), "n_runs": len(values)}


def summarise(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{dataset: {method: stats}}`` of a table's records.

    For one-class tasks a seed's value is its mean over classes (only seeds with every
    class this method has records for count), and the stats are taken over seeds;
    ``n_runs`` counts the runs behind them and ``n_classes`` the classes in each mean.
    Tables with one metric get ``{"mean", "std", "n_runs"}`` per method; tables with several
    get one such entry per metric name.
    """
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        grouped[(rec["dataset"], rec["method"])].append(rec)
    summary: dict[str, dict[str, Any]] = defaultdict(dict)
    for (dataset, method), runs in sorted(grouped.items()):
        metric_names = sorted({m for r in runs for m in r["metrics"]})
        entry: dict[str, Any] = {}
        for metric in metric_names:
            values, counts = _values(runs, metric)
            if values:
                entry[metric] = {**_stats(values), **counts}
        if len(metric_names) == 1 and metric_names[0] in entry:
            entry = entry[metric_names[0]]
        summary[dataset][method] = entry
    return dict(summary)


def _values(runs: list[dict[str, Any]], metric: str) -> tuple[list[float], dict[str, int]]:
    with_metric = [r for r in runs if metric in r["metrics"]]
    if all(r["normal_class"] is None for r in with_metric):
        return [float(r["metrics"][metric]) for r in with_metric], {"n_runs": len(with_metric)}
    classes = sorted({r["normal_class"] for r in with_metric})
    by_seed: dict[int, dict[int, float]] = defaultdict(dict)
    for r in with_metric:
        by_seed[r["seed"]][r["normal_class"]] = float(r["metrics"][metric])
    complete = [seed for seed, per in by_seed.items() if len(per) == len(classes)]
    values = [float(np.mean(list(by_seed[s].values()))) for s in sorted(complete)]
    return values, {"n_runs": len(complete) * len(classes), "n_classes": len(classes)}


def per_class(records: list[dict[str, Any]], metric: str = "auc") -> dict[str, dict[str, dict[int, float]]]:
    """``{dataset: {method: {class: mean over seeds}}}`` for one-class tables."""
    acc: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in records:
        if r["normal_class"] is not None and metric in r["metrics"]:
            acc[r["dataset"]][r["method"]][r["normal_class"]].append(float(r["metrics"][metric]))
    return {
        d: {m: {c: float(np.mean(v)) for c, v in sorted(cls.items())} for m, cls in methods.items()}
        for d, methods in acc.items()
    }
