import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from memae.reproduce.paired import agreement, paired_test, verdict
from memae.reproduce.records import RunKey, write_record
from memae.reproduce.tables import TABLES, RowSet, TableSpec, render_table, write_summary
from memae.reproduce.video import READINGS, TABLE2


def _rec(method: str, seed: int, value: float, normal_class: int | None = None) -> dict:
    return {
        "dataset": "d",
        "method": method,
        "seed": seed,
        "normal_class": normal_class,
        "metrics": {"auc": value},
    }


def test_pairs_by_class_and_seed_and_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    ae = rng.uniform(0.5, 0.9, size=(4, 3))
    memae = ae + rng.normal(0.01, 0.02, size=(4, 3))
    records = [_rec("AE", s, ae[c, s], c) for c in range(4) for s in range(3)]
    records += [_rec("MemAE", s, memae[c, s], c) for c in range(4) for s in range(3)]
    records += [_rec("MemAE", 7, 0.1, 0), _rec("KDE", 0, 0.9, 0)]  # no partner: left out
    test = paired_test(records[::-1], "d", "auc")
    assert test is not None and test.n_pairs == 12 and test.n_classes == 4 and test.n_seeds == 3
    d = (memae - ae).ravel()
    assert test.difference == pytest.approx(d.mean())
    assert test.p_value == pytest.approx(stats.wilcoxon(memae.ravel(), ae.ravel()).pvalue)
    half = stats.t.ppf(0.975, 11) * d.std(ddof=1) / np.sqrt(12)
    assert (test.ci_low, test.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert (test.wins, test.losses) == (int((d > 0).sum()), int((d < 0).sum()))
    assert paired_test(records, "other", "auc") is None


def test_agreement_with_the_paper() -> None:
    up = [_rec("AE", s, 0.5 + s / 100) for s in range(8)] + [_rec("MemAE", s, 0.6 + s / 90) for s in range(8)]
    test = paired_test(up, "d", "auc")
    assert test is not None and test.p_value is not None and test.p_value < 0.05 and test.n_classes is None
    assert agreement(test, 0.02) == "agrees" and agreement(test, -0.02) == "disagrees"
    assert "we disagree with the paper" in verdict(test, -0.02)
    few = paired_test(up[:3] + up[8:11], "d", "auc")
    assert few is not None and agreement(few, 0.02) == "not confirmed"
    assert "cannot go below p = 0.25" in verdict(few, 0.02)
    tied = paired_test(
        [_rec("AE", 0, 0.5), _rec("MemAE", 0, 0.5), _rec("AE", 1, 0.6), _rec("MemAE", 1, 0.6)], "d", "auc"
    )
    assert tied is not None and tied.p_value is None and agreement(tied, 0.02) == "not confirmed"


def _video_record(results: Path, method: str, seed: int, alignment: str, auc: float, authors: float) -> None:
    config = {"scoring": {"alignment": alignment}}
    write_record(
        results,
        RunKey("table2", "ucsd_ped2", method, seed),
        {"auc": auc},
        config,
        1.0,
        extra={"auc_authors_alignment": authors},
    )


def test_video_tables_read_the_authors_alignment_first_and_keep_center(tmp_path: Path) -> None:
    for seed in range(3):
        _video_record(tmp_path, "AE", seed, "center", 0.80 + seed / 100, 0.82 + seed / 100)
        _video_record(tmp_path, "MemAE", seed, "center", 0.81 + seed / 100, 0.85 + seed / 100)
    _video_record(tmp_path, "MemAE", 3, "authors", 0.90, 0.90)  # no centred AUC to give
    summary = write_summary(tmp_path, TABLE2)
    assert summary == json.loads((tmp_path / "table2.json").read_text())
    assert summary["ucsd_ped2"]["MemAE"]["n_runs"] == 4
    assert summary["ucsd_ped2"]["MemAE"]["mean"] == pytest.approx(np.mean([0.85, 0.86, 0.87, 0.90]))
    center = json.loads((tmp_path / "table2.center.json").read_text())
    assert center["ucsd_ped2"]["MemAE"]["n_runs"] == 3
    assert center["ucsd_ped2"]["AE"]["mean"] == pytest.approx(0.81)
    assert [r.name for r in READINGS] == ["authors", "center"]
    text = render_table(tmp_path, TABLE2)
    assert text.index("Rows under `authors`") < text.index("Rows under `center`")
    assert "| ucsd_ped2 | auc | 3 seed pairs | +0.0300 |" in text
    assert "| ucsd_ped2 | auc | 3 seed pairs | +0.0100 |" in text


def _tiny_table(monkeypatch, row_set: RowSet) -> TableSpec:  # type: ignore[no-untyped-def]
    """A registered one-metric table ``tiny`` on dataset ``d`` with one row set."""
    spec = TableSpec(
        name="tiny",
        title="Tiny",
        metrics=("auc",),
        paper={"d": {"KDE": 0.7, "AE": 0.8, "MemAE": 0.9}},
        run=lambda options: None,
        row_sets=(row_set,),
    )
    monkeypatch.setitem(TABLES, "tiny", spec)
    return spec


def test_a_row_set_gets_rows_a_paired_test_and_a_summary_of_its_own(tmp_path: Path, monkeypatch) -> None:
    from memae.reproduce import tables

    spec = _tiny_table(monkeypatch, RowSet("wide", "the wide net.", ("wide-seed0", "wide-seeds-1-2")))

    def record(results: Path, method: str, seed: int, cls: int, auc: float) -> None:
        write_record(results, RunKey("tiny", "d", method, seed, cls), {"auc": auc}, {}, 1.0)

    for cls in range(3):
        record(tmp_path, "AE", 0, cls, 0.80)
        record(tmp_path, "MemAE", 0, cls, 0.81)
        record(tmp_path, "KDE", 0, cls, 0.70)
        for seed, folder in ((0, "wide-seed0"), (1, "wide-seeds-1-2"), (2, "wide-seeds-1-2")):
            record(tmp_path / "sweeps" / folder, "AE", seed, cls, 0.60 + cls / 100)
            record(tmp_path / "sweeps" / folder, "MemAE", seed, cls, 0.90 + cls / 100 + seed / 1000)

    summary = write_summary(tmp_path, spec)
    assert summary["d"]["MemAE"]["mean"] == pytest.approx(0.81)
    kept = json.loads((tmp_path / "tiny.wide.json").read_text())
    assert kept["d"]["MemAE"]["n_runs"] == 9 and kept["d"]["AE"]["mean"] == pytest.approx(0.61)

    text = render_table(tmp_path, spec)
    own, wide = text.split("Row set `wide`", 1)
    assert "`results/sweeps/wide-seed0`, `results/sweeps/wide-seeds-1-2`" in wide.splitlines()[0]
    rows = wide.split("Per-class")[0]
    assert "| KDE |" not in rows and "| MemAE | 0.9110 ± 0.0008 (3 seeds × 3 classes) | 0.9000 |" in rows
    assert "| d | auc | 9 class × seed pairs (3 classes, 3 seeds) | +0.3010 |" in rows
    # |0.61 - 0.8| and |0.911 - 0.9| against |0.8 - 0.8| and |0.81 - 0.9|
    distance = "(mean |ours − paper| of auc over AE, MemAE): the table's rows 0.0450, this row set 0.1005."
    assert distance in rows
    assert "| KDE | 0.7000 (1 seed × 3 classes) | 0.7000 |" in own
    # the row set against the table's runs of the same class and seed (seed 0: 3 pairs each)
    assert "| d | AE | 3 | 0.8000 | 0.6100 | -0.1900 [-0.2148, -0.1652] | 0.25 | 0 / 3 |" in rows
    assert rows.index("| d | AE | 3 |") < rows.index("| d | MemAE | 3 | 0.8100 | 0.9100 | +0.1000")
    assert "Per-class AUC on d, row set `wide` (mean over seeds):" in text

    summary_rows = [
        line for line in tables.memory_summary(tmp_path).splitlines() if line.startswith("| tiny")
    ]
    assert [line.split(" | ")[0] for line in summary_rows] == ["| tiny", "| tiny, row set `wide`"]
    assert "| 9 | 0.9110 / 0.9000 | +0.3010" in summary_rows[1]


def test_a_partial_row_set_is_also_measured_against_the_tables_same_runs(tmp_path: Path, monkeypatch) -> None:
    spec = _tiny_table(monkeypatch, RowSet("part", "one class so far.", ("part",)))
    for cls, (ae, memae) in enumerate([(0.70, 0.75), (0.80, 0.85), (0.90, 0.95)]):
        write_record(tmp_path, RunKey("tiny", "d", "AE", 0, cls), {"auc": ae}, {}, 1.0)
        write_record(tmp_path, RunKey("tiny", "d", "MemAE", 0, cls), {"auc": memae}, {}, 1.0)
    write_record(tmp_path / "sweeps" / "part", RunKey("tiny", "d", "AE", 0, 0), {"auc": 0.72}, {}, 1.0)
    write_record(tmp_path / "sweeps" / "part", RunKey("tiny", "d", "MemAE", 0, 0), {"auc": 0.80}, {}, 1.0)
    for cls in range(3):  # a method the row set has in full is compared on the same runs too
        write_record(tmp_path, RunKey("tiny", "d", "KDE", 0, cls), {"auc": 0.70}, {}, 1.0)
        write_record(tmp_path / "sweeps" / "part", RunKey("tiny", "d", "KDE", 0, cls), {"auc": 0.60}, {}, 1.0)

    text = render_table(tmp_path, spec)
    # KDE, AE, MemAE: all classes |0| |0| |0.05|; class 0 (and all of KDE's) |0| |0.1| |0.15|;
    # the row set |0.1| |0.08| |0.1|
    assert (
        "the table's rows 0.0167 (0.0833 on this row set's classes and seeds), this row set 0.0933." in text
    )
