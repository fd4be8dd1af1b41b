"""What Table 1's grid costs with channels-last training, against contiguous training.

Each deep method of the grid (AE, MemAE-nonSpar, MemAE, VAE, DSEBM) runs as the grid runs
it (``memae.reproduce.methods``, the table's settings, one class and seed of MNIST and of
CIFAR-10) for a few epochs, trained channels-last (``channels_last="auto"``, the default on
the CPU) and contiguous (``channels_last=False``) in turn within each repetition
(``harness.interleave``). The paired speed-up of each method then projects the core-hours
the table's records took (``results/runs/table1``) onto the new default: every run of that
dataset and method divided by its speed-up, the other methods (OC-SVM, KDE, PyOD) as they
were. A probe of a few epochs includes each run's fixed part (scoring the test and training
sets) in its share, so the projection is of whole runs, not of epochs alone::

    python benchmarks/grid_cost.py --data-dir "$MEMAE_DATA" --out results/grid_cost.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from memae.data.paths import data_dir
from memae.data.protocols import one_class_split
from memae.fast import keep_freed_memory
from memae.provenance import provenance
from memae.reproduce import table1
from memae.reproduce.methods import get_method

METHODS = ("AE", "MemAE-nonSpar", "MemAE", "VAE", "DSEBM")
#: epochs of each probe run: enough that training, not start-up, is most of the time
PROBE_EPOCHS = {"mnist": 3, "cifar10": 1}
LAYOUTS = {"contiguous": False, "channels-last": "auto"}


def recorded_hours(records: Path) -> dict[str, dict[str, float]]:
    """Core-hours of the table's records, by dataset and method (one thread per run)."""
    hours: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path in sorted(records.glob("*/*/*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        hours[path.parent.parent.name][path.parent.name] += record["wall_seconds"] / 3600
    return {d: dict(m) for d, m in hours.items()}


def probe(dataset: str, normal: int, seed: int, repeats: int, root: Path) -> dict[str, Any]:
    X, y = table1.load_dataset(dataset, root)
    split = one_class_split(X, y, normal, seed=seed)
    base = table1.SETTINGS[dataset]["detector"]
    out: dict[str, Any] = {}
    for method in METHODS:
        fn = get_method(method).fn
        units = {}
        for name, layout in LAYOUTS.items():
            cfg = {
                "detector": {**copy.deepcopy(base), "epochs": PROBE_EPOCHS[dataset], "channels_last": layout}
            }
            units[name] = lambda fn=fn, cfg=cfg: fn(split.train, split.val, split.test, seed, cfg)
        times, loops = harness.interleave(units, repeats, torch.device("cpu"), warmup=0)
        summary = harness.summarise(times, "contiguous", len(split.train) * PROBE_EPOCHS[dataset] * loops)
        out[method] = {"loops": loops, **summary}
        speedup = summary["channels-last"]["speedup"]
        print(f"{dataset} {method}: channels-last {speedup:.2f}x", flush=True)
    return {
        "class": normal,
        "seed": seed,
        "epochs": PROBE_EPOCHS[dataset],
        "n_train": len(split.train),
        "methods": out,
    }


def project(hours: dict[str, dict[str, float]], probes: dict[str, Any]) -> dict[str, Any]:
    rows, before, after = [], 0.0, 0.0
    for dataset, methods in sorted(hours.items()):
        for method, h in sorted(methods.items()):
            measured = probes.get(dataset, {}).get("methods", {}).get(method)
            speedup = measured["channels-last"]["speedup"] if measured else None
            new = h / speedup if speedup else h
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "recorded_h": h,
                    "speedup": speedup,
                    "projected_h": new,
                }
            )
            before, after = before + h, after + new
    return {"rows": rows, "recorded_h": before, "projected_h": after, "ratio": before / after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="default: $MEMAE_DATA, else ~/.cache/memae/data")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar10"])
    parser.add_argument("--classes", nargs="+", type=int, default=[2, 0], help="one per dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--records", default="results/runs/table1")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if len(args.classes) != len(args.datasets):
        parser.error(f"--classes needs one class per dataset ({len(args.datasets)}), got {args.classes}")
    torch.set_num_threads(1)
    keep_freed_memory()  # as the memae command runs the grid
    root = data_dir(args.data_dir)
    probes = {
        d: probe(d, c, args.seed, args.repeats, root)
        for d, c in zip(args.datasets, args.classes, strict=True)
    }
    projection = project(recorded_hours(Path(args.records)), probes)
    print(
        f"Table 1: {projection['recorded_h']:.2f} core-hours recorded, "
        f"{projection['projected_h']:.2f} projected ({projection['ratio']:.2f}x)"
    )
    record = {
        "command": harness.command_line("benchmarks/grid_cost.py", argv or sys.argv[1:]),
        "config": {
            **harness.settings(args),
            "probe_epochs": PROBE_EPOCHS,
            "settings": table1.SETTINGS,
            "torch_threads": 1,
        },
        "probes": probes,
        "projection": projection,
        "provenance": provenance(),
    }
    harness.write_json(args.out, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
