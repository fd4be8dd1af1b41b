import json
from pathlib import Path

import numpy as np
import pytest

from memae.reproduce.records import (
    RunKey,
    check_settings,
    load_records,
    per_class,
    record_exists,
    summarise,
    write_record,
)


def _write(tmp_path, method: str, seed: int, cls: int | None, value: float, table: str = "t") -> None:
    write_record(tmp_path, RunKey(table, "d", method, seed, cls), {"auc": value}, {"lr": 1.0}, 1.5)


def test_record_holds_provenance_and_is_found(tmp_path) -> None:
    key = RunKey("table1", "mnist", "MemAE w/o shrinkage", 2, 7)
    path = write_record(tmp_path, key, {"auc": 0.9}, {"epochs": 3}, 12.345)
    assert path.name == "class7-seed2.json" and "MemAE_w_o_shrinkage" in str(path)
    assert record_exists(tmp_path, key)
    record = json.loads(path.read_text())
    for field in ("commit", "machine", "memae_version", "config", "seed", "wall_seconds"):
        assert field in record
    assert record["metrics"] == {"auc": 0.9}


def test_non_finite_metrics_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="not finite"):
        write_record(tmp_path, RunKey("t", "d", "m", 0), {"auc": float("nan")}, {}, 1.0)


def test_one_class_summary_is_over_seeds_of_class_means(tmp_path) -> None:
    values = {(0, 0): 0.8, (0, 1): 1.0, (1, 0): 0.6, (1, 1): 0.8}
    for (seed, cls), v in values.items():
        _write(tmp_path, "M", seed, cls, v)
    _write(tmp_path, "M", 2, 0, 0.1)  # seed 2 is incomplete and left out
    summary = summarise(load_records(tmp_path, "t"))
    stats = summary["d"]["M"]
    assert stats["mean"] == pytest.approx(np.mean([0.9, 0.7]))
    assert stats["std"] == pytest.approx(np.std([0.9, 0.7]))
    assert stats["n_runs"] == 4 and stats["n_classes"] == 2
    assert per_class(load_records(tmp_path, "t"))["d"]["M"][0] == pytest.approx(np.mean([0.8, 0.6, 0.1]))


def test_multi_metric_summary_has_one_entry_per_metric(tmp_path) -> None:
    for seed, f1 in enumerate([0.9, 0.8]):
        write_record(tmp_path, RunKey("t3", "kdd", "M", seed), {"f1": f1, "precision": 1.0}, {}, 1.0)
    summary = summarise(load_records(tmp_path, "t3"))
    assert summary["kdd"]["M"]["f1"] == {"mean": pytest.approx(0.85), "std": pytest.approx(0.05), "n_runs": 2}
    assert summary["kdd"]["M"]["precision"]["mean"] == 1.0


def test_check_settings_names_stale_records_and_ignores_irrelevant_keys(tmp_path) -> None:
    key, fresh, missing = RunKey("t", "d", "M", 0), RunKey("t", "d", "N", 0), RunKey("t", "d", "M", 1)
    write_record(tmp_path, key, {"auc": 0.5}, {"detector": {"epochs": 3}, "protocol": {"k": [1, 2]}}, 1.0)
    write_record(tmp_path, fresh, {"auc": 0.5}, {"detector": {"epochs": 3}, "protocol": {"k": [1, 2]}}, 1.0)
    same = {"detector": {"epochs": 3}, "protocol": {"k": (1, 2)}}  # tuples are recorded as lists
    check_settings(tmp_path, [(key, same), (fresh, same), (missing, {"anything": 1})])
    other = {"detector": {"epochs": 5}, "protocol": {"k": (1, 2)}}
    with pytest.raises(ValueError, match=r"(?s)1 recorded run.*detector\.epochs: 3 -> 5") as err:
        check_settings(tmp_path, [(key, other), (fresh, same)])
    assert "seed0.json" in str(err.value) and "nothing was run" in str(err.value)
    # a method that does not read the detector's settings is not stale for them
    check_settings(tmp_path, [(key, other)], lambda k, config: {"protocol": config["protocol"]})


def test_wall_time_table_gives_each_method_its_median_and_total() -> None:
    from memae.reproduce.tables import wall_time_table

    records = [{"dataset": "mnist", "method": "AE", "wall_seconds": s} for s in (10.0, 30.0, 20.0)] + [
        {"dataset": "mnist", "method": "KDE", "wall_seconds": 3600.0},
        {"dataset": "mnist", "method": "X"},
    ]
    lines = wall_time_table(records)
    assert "| mnist | AE | 3 | 20 | 0.02 |" in lines
    assert "| mnist | KDE | 1 | 3600 | 1.00 |" in lines
    assert not any("| X |" in line for line in lines)
    assert wall_time_table([]) == []


def test_table_cells_show_a_spread_only_over_several_seeds() -> None:
    from memae.reproduce.tables import _fmt

    assert _fmt({"mean": 0.9, "std": 0.0, "n_runs": 10, "n_classes": 10}) == "0.9000 (1 seed × 10 classes)"
    three_seeds = {"mean": 0.9, "std": 0.01, "n_runs": 30, "n_classes": 10}
    assert _fmt(three_seeds) == "0.9000 ± 0.0100 (3 seeds × 10 classes)"
    assert _fmt({"mean": 0.9, "std": 0.02, "n_runs": 20}) == "0.9000 ± 0.0200 (20 runs)"
    assert _fmt({"mean": 0.9, "std": 0.0, "n_runs": 1}) == "0.9000 (1 run)"
    assert _fmt(None) == "–"


def test_pilots_section_sets_each_folder_beside_the_grid(tmp_path) -> None:
    import memae.reproduce.table1  # noqa: F401 - registers table1
    from memae.reproduce.tables import pilots_markdown

    def record(results, cls: int, auc: float, detector: dict, method: str = "MemAE") -> None:
        key = RunKey("table1", "mnist", method, 0, cls)
        write_record(results, key, {"auc": auc}, {"detector": detector, "name": "x"}, 1.0)

    for cls, auc in ((2, 0.9), (8, 0.8)):
        record(tmp_path, cls, auc, {"epochs": 100})
        record(tmp_path / "sweeps" / "lam", cls, auc - 0.1, {"epochs": 100, "shrink_threshold": 0.03})
    record(tmp_path / "sweeps" / "alone", 5, 0.5, {"epochs": 100})
    # KDE reads no detector setting: a pilot of it made beside other epochs differs in nothing
    record(tmp_path, 3, 0.7, {"epochs": 100}, "KDE")
    record(tmp_path / "sweeps" / "kde", 3, 0.8, {"epochs": 5}, "KDE")
    text = pilots_markdown(tmp_path)
    lam = next(line for line in text.splitlines() if "`lam`" in line)
    assert "| 2 (classes 2, 8; seeds 0) | auc | 0.7500 | 1 | 0.8500 |" in lam  # 1 s a run
    assert "`detector.shrink_threshold: (default) -> 0.03`" in lam
    kde = next(line for line in text.splitlines() if "`kde`" in line)
    assert kde.endswith("| 0.8000 | 1 | 0.7000 | same |")
    alone = next(line for line in text.splitlines() if "`alone`" in line)
    assert alone.endswith("| 0.5000 | 1 | – | – |")
    assert pilots_markdown(tmp_path / "nothing") == ""


def test_a_pilot_results_folder_gets_its_own_document() -> None:
    import argparse

    from memae.reproduce.cli import doc_path

    def args(results: str, doc: str | None = None) -> argparse.Namespace:
        return argparse.Namespace(results_dir=results, doc=doc)

    assert doc_path(args("results")) == Path("docs/RESULTS.md")
    assert doc_path(args("results/sweeps/pilot")) == Path("results/sweeps/pilot/RESULTS.md")
    assert doc_path(args("results/sweeps/pilot", "out/R.md")) == Path("out/R.md")
