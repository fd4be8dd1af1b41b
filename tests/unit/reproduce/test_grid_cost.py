import json
from pathlib import Path

import pytest

from memae.reproduce.table1 import (
    AUC_TIME,
    GRID_COST,
    GRID_THREADS,
    auc_time_markdown,
    grid_cost_markdown,
    grid_threads_markdown,
)
from tests.fixtures import load_benchmark


@pytest.fixture(scope="module")
def grid_cost():  # type: ignore[no-untyped-def]
    return load_benchmark("grid_cost")


def _record(path: Path, dataset: str, method: str, seconds: float) -> None:
    path = path / dataset / method / f"class0-seed{int(seconds)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"wall_seconds": seconds}))


def test_projection_divides_each_measured_method_by_its_speedup(grid_cost, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _record(tmp_path, "mnist", "MemAE", 3600)
    _record(tmp_path, "mnist", "MemAE", 1800)
    _record(tmp_path, "mnist", "OC-SVM", 360)
    hours = grid_cost.recorded_hours(tmp_path)
    assert hours == {"mnist": {"MemAE": 1.5, "OC-SVM": 0.1}}
    unit = {"speedup": 1.5, "speedup_min": 1.2, "speedup_max": 1.8}
    probes = {"mnist": {"class": 2, "epochs": 3, "methods": {"MemAE": {"channels-last": unit}}}}
    projection = grid_cost.project(hours, probes)
    assert projection["recorded_h"] == pytest.approx(1.6)
    assert projection["projected_h"] == pytest.approx(1.0 + 0.1)  # OC-SVM was not probed: as recorded
    assert projection["ratio"] == pytest.approx(1.6 / 1.1)

    results = tmp_path / "results"
    assert grid_cost_markdown(results) == ""  # no record, no section
    results.mkdir()
    record = {
        "command": "python benchmarks/grid_cost.py --out results/grid_cost.json",
        "provenance": {"commit": "0123456789abcdef"},
        "probes": probes,
        "projection": projection,
    }
    (results / GRID_COST).write_text(json.dumps(record))
    text = grid_cost_markdown(results)
    assert "Projected: 1.60 → 1.10 core-hours (1.45x)" in text
    assert "| mnist | MemAE | class 2, 3 epoch(s) | 1.50x (1.20-1.80) | 1.50 | 1.00 |" in text
    assert "OC-SVM" not in text and "results/grid_cost.json" in text


def test_threads_section_names_both_layouts(tmp_path: Path) -> None:
    assert grid_threads_markdown(tmp_path) == ""
    record = {
        "command": "python benchmarks/grid_threads.py --out results/grid_threads.json",
        "config": {"epochs": 5, "dataset": "mnist"},
        "runs_per_hour": {"1 run x 2 threads": 250.4, "2 runs x 1 thread": 470.6},
        "provenance": {"commit": "0123456789abcdef"},
    }
    (tmp_path / GRID_THREADS).write_text(json.dumps(record))
    text = grid_threads_markdown(tmp_path)
    assert "1 run x 2 threads: 250 runs/hour, 2 runs x 1 thread: 471 runs/hour" in text
    assert "a 5-epoch MemAE probe on mnist" in text


def test_auc_time_section_pairs_each_variant_with_the_grid(tmp_path: Path) -> None:
    assert auc_time_markdown(tmp_path) == ""
    summary = {
        "grid": {"changes": {}, "auc": 0.95, "auc_change": 0.0, "time_ratio": 1.0, "epochs_trained": 100},
        "half the epochs": {
            "changes": {"epochs": 50},
            "auc": 0.94,
            "auc_change": -0.01,
            "time_ratio": 0.52,
            "epochs_trained": 50,
        },
    }
    record = {
        "command": "python benchmarks/auc_time.py --out results/auc_time.json",
        "config": {"variant": "memae"},
        "datasets": {"mnist": {"classes": [3, 7], "seed": 0, "summary": summary}},
        "provenance": {"commit": "0123456789abcdef"},
    }
    (tmp_path / AUC_TIME).write_text(json.dumps(record))
    text = auc_time_markdown(tmp_path)
    assert "| mnist | 3, 7 (seed 0) | grid | – | 100 | 0.9500 | +0.0000 | 1.00x |" in text
    assert "| mnist | 3, 7 (seed 0) | half the epochs | `epochs=50` | 50 | 0.9400 | -0.0100 | 0.52x |" in text
    assert "results/auc_time.json" in text and "0123456789ab" in text
    assert "Variants in at most half the grid's time: none." in text  # 0.52x is not half
