"""Threads per worker for a grid: one run on every core, or one single-thread run per core.

A Table 1 MemAE run (the table's settings, a probe of a few epochs on one class) is timed
both ways on the same machine, the two layouts alternating ``--repeats`` times: one process
with ``torch.set_num_threads(cores)``, then ``cores`` processes side by side with one thread
each. Runs per hour is what a grid cares about::

    python benchmarks/grid_threads.py --data-dir "$MEMAE_DATA" --out results/grid_threads.json

Run it on an otherwise idle machine: it uses every core.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from memae.provenance import provenance


def one_run(dataset: str, normal: int, epochs: int, threads: int, root: str) -> float:
    """Seconds of one probe run with ``threads`` torch threads, in this process."""
    import torch

    from memae.data.protocols import one_class_split
    from memae.fast import keep_freed_memory
    from memae.reproduce import table1
    from memae.reproduce.methods import get_method

    torch.set_num_threads(threads)
    keep_freed_memory()
    X, y = table1.load_dataset(dataset, Path(root))
    split = one_class_split(X, y, normal, seed=0)
    cfg = {"detector": {**table1.SETTINGS[dataset]["detector"], "epochs": epochs}}
    start = time.perf_counter()
    get_method("MemAE").fn(split.train, split.val, split.test, 0, cfg)
    return time.perf_counter() - start


def side_by_side(n: int, args: tuple[Any, ...]) -> float:
    """Wall seconds for ``n`` single-thread runs started together."""
    with mp.get_context("spawn").Pool(n) as pool:
        start = time.perf_counter()
        pool.starmap(one_run, [args] * n)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="default: $MEMAE_DATA, else ~/.cache/memae/data")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "cifar10"))
    parser.add_argument("--class", dest="normal", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from memae.data.paths import data_dir

    root = str(data_dir(args.data_dir))
    cores = os.cpu_count() or 1
    together, alone = [], []
    ctx = mp.get_context("spawn")
    for _ in range(args.repeats):
        with ctx.Pool(1) as pool:  # a fresh process, as the side-by-side runs get
            start = time.perf_counter()
            pool.apply(one_run, (args.dataset, args.normal, args.epochs, cores, root))
            alone.append(time.perf_counter() - start)
        together.append(side_by_side(cores, (args.dataset, args.normal, args.epochs, 1, root)))
    per_hour = {
        f"1 run x {cores} threads": 3600 / statistics.median(alone),
        f"{cores} runs x 1 thread": 3600 * cores / statistics.median(together),
    }
    for name, rate in per_hour.items():
        print(f"{name}: {rate:.1f} runs/hour", flush=True)
    record = {
        "command": harness.command_line("benchmarks/grid_threads.py", argv or sys.argv[1:]),
        "config": {**harness.settings(args), "cores": cores},
        "seconds": {"one_run_all_threads": alone, "runs_side_by_side": together},
        "runs_per_hour": per_hour,
        "provenance": provenance(),
    }
    harness.write_json(args.out, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
