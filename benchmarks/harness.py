"""Timing side by side: interleaved repetitions, medians, paired ratios, peak memory, FLOPs.

Absolute times on a shared machine mean little; the ratio of two implementations timed in
turns within the same run does. :func:`interleave` runs every implementation once per
repetition, rotating the order so none is always first, and :func:`summarise` reports the
median time of each and the median of the per-repetition ratios against the reference.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from memae.paths import atomic_write


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleave(
    units: dict[str, Callable[[], Any]],
    repeats: int,
    device: torch.device,
    warmup: int = 1,
    prepare: Callable[[str], Any] | None = None,
    min_seconds: float = 0.2,
) -> tuple[dict[str, list[float]], int]:
    """Wall-clock seconds of each unit, ``repeats`` times, in rotating order.

    ``prepare(name)`` runs untimed before every timed call of unit ``name``. A unit whose
    first timed call is shorter than ``min_seconds`` is called ``loops`` times per timing
    (the same ``loops`` for every unit, so throughputs compare); returns the times (of
    ``loops`` calls each) and ``loops``.
    """
    names = list(units)
    prepare = prepare or (lambda name: None)
    for _ in range(warmup):
        for name in names:
            prepare(name)
            units[name]()
    synchronize(device)
    fastest = float("inf")
    for name in names:
        prepare(name)
        start = time.perf_counter()
        units[name]()
        synchronize(device)
        fastest = min(fastest, time.perf_counter() - start)
    loops = max(1, math.ceil(min_seconds / max(fastest, 1e-9))) if fastest < min_seconds else 1
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        if r % 2:
            order.reverse()
        for name in order:
            prepare(name)
            gc.collect()
            synchronize(device)
            start = time.perf_counter()
            for _ in range(loops):
                units[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times, loops


def summarise(times: dict[str, list[float]], reference: str, items: float) -> dict[str, dict[str, Any]]:
    """Per unit: the times, their median, throughput (``items`` per median second) and, against
    ``reference``, the median of the paired per-repetition speed-ups."""
    out = {}
    for name, ts in times.items():
        ratios = [r / t for r, t in zip(times[reference], ts, strict=True)]
        out[name] = {
            "times_s": ts,
            "median_s": statistics.median(ts),
            "throughput": items / statistics.median(ts),
            "speedup": statistics.median(ratios),
            "speedup_min": min(ratios),
            "speedup_max": max(ratios),
        }
    return out


def peak_memory(fn: Callable[[], Any], device: torch.device, calls: int = 3) -> int:
    """Bytes allocated on top of what was live before, at the peak of one call of ``fn``:
    the least over ``calls`` calls, so that one-time allocations (caches the first call of a
    shape fills) do not count, only what every call needs.

    CUDA: the caching allocator's statistics. CPU: the running total the CPU allocator
    reports with every allocation and free to the torch profiler (its trace's
    ``Total Allocated``).
    """
    return min(_peak_of_one_call(fn, device) for _ in range(calls))


def _peak_of_one_call(fn: Callable[[], Any], device: torch.device) -> int:
    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(path))
        trace = json.loads(path.read_text())
    cpu_events = (e for e in trace["traceEvents"] if e.get("name") == "[memory]")
    events = sorted((e for e in cpu_events if e["args"].get("Device Type") == 0), key=lambda e: e["ts"])
    if not events:
        return 0
    before = events[0]["args"]["Total Allocated"] - events[0]["args"]["Bytes"]
    return int(max(e["args"]["Total Allocated"] for e in events) - before)


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of the matrix products and convolutions in one call."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, repeats: int = 5) -> dict[str, Any]:
    """The best FLOP/s of square matrix products: this machine's practical ceiling."""
    best: dict[str, Any] = {"flops_per_s": 0.0}
    for n in (1024, 2048) if device.type == "cpu" else (4096, 8192):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        synchronize(device)
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            synchronize(device)
            rate = 2 * n**3 / (time.perf_counter() - start)
            if rate > best["flops_per_s"]:
                best = {"flops_per_s": rate, "n": n, "dtype": str(dtype).removeprefix("torch.")}
    return best


def write_json(path: str | Path, record: Any, indent: int = 2) -> Path:
    """Write a benchmark's record as JSON, atomically: an interrupted or failed write leaves
    the previous record (if any) whole, never half a file."""
    text = json.dumps(record, indent=indent) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


#: What a record writes for a data folder given on the command line: the setting that
#: finds it on any machine, never the folder's path on the machine that ran it.
DATA_SETTING = "$MEMAE_DATA"


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command that made a record, with ``--data-dir``'s value as :data:`DATA_SETTING`."""
    words, hide = ["python", script], False
    for word in argv:
        if hide:
            word, hide = DATA_SETTING, False
        elif word == "--data-dir":
            hide = True
        elif word.startswith("--data-dir="):
            word = f"--data-dir={DATA_SETTING}"
        words.append(word)
    return " ".join(words)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """A script's options for its record, with a given data folder as :data:`DATA_SETTING`."""
    options = vars(args).copy()
    if options.get("data_dir") is not None:
        options["data_dir"] = DATA_SETTING
    return options
