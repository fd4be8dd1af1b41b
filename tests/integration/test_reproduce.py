import json

import pytest

from memae.cli import main
from tests.fixtures import write_kddcup, write_mnist


def test_table1_grid_records_resumes_and_documents(tmp_path, capsys) -> None:
    write_mnist(tmp_path / "data", per_class=9)
    results, doc = tmp_path / "results", tmp_path / "RESULTS.md"
    argv = [
        "reproduce", "table1", "--data-dir", str(tmp_path / "data"), "--results-dir", str(results),
        "--doc", str(doc), "--datasets", "mnist", "--classes", "0", "1", "--seeds", "0",
        "--methods", "AE", "MemAE", "KDE", "--epochs", "1", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    records = sorted((results / "runs" / "table1" / "mnist").rglob("*.json"))
    assert len(records) == 6
    first = records[0].stat().st_mtime_ns
    assert main(argv) == 0  # every record exists: nothing reruns
    assert records[0].stat().st_mtime_ns == first
    summary = json.loads((results / "table1.json").read_text())
    assert set(summary["mnist"]) == {"AE", "MemAE", "KDE"}
    assert summary["mnist"]["MemAE"]["n_runs"] == 2
    text = doc.read_text()
    assert "| MemAE |" in text and "0.9751" in text  # ours beside the paper's

    # other epochs: the deep methods' records are stale, KDE's (no epochs) are not
    before = {p: p.read_bytes() for p in records}
    capsys.readouterr()
    assert main([*argv[:-2], "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "4 recorded run(s)" in err and "detector.epochs: 1 -> 2" in err and "KDE" not in err
    assert {p: p.read_bytes() for p in records} == before  # nothing ran, nothing was rewritten
    assert main([*argv[:-7], "--methods", "KDE", "--epochs", "2", "--no-progress"]) == 0


def test_table3_records_precision_recall_f1(tmp_path) -> None:
    write_kddcup(tmp_path / "data")
    results = tmp_path / "results"
    argv = [
        "reproduce", "table3", "--data-dir", str(tmp_path / "data"), "--results-dir", str(results),
        "--doc", str(tmp_path / "R.md"), "--seeds", "0", "1", "--methods", "MemAE", "OC-SVM",
        "--epochs", "2", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((results / "table3.json").read_text())
    assert set(summary["kddcup99"]["MemAE"]) == {"precision", "recall", "f1"}
    assert summary["kddcup99"]["OC-SVM"]["f1"]["n_runs"] == 2
    assert not (results / "table1.json").exists()  # no summaries of tables not run
    record = json.loads((results / "runs" / "table3" / "kddcup99" / "MemAE" / "seed0.json").read_text())
    by_label = record["by_label"]
    assert sum(c["n"] for c in by_label.values()) == record["n_test"]
    anomalies = by_label["normal."]
    assert anomalies["flagged"] / anomalies["n"] == pytest.approx(record["metrics"]["recall"])
    doc = (tmp_path / "R.md").read_text()
    assert "### Flagged test records by label" in doc
    assert "MemAE (2 runs)" in doc and "OC-SVM (2 runs)" in doc


def test_unknown_table_and_method_fail_clearly(tmp_path, capsys) -> None:
    assert main(["reproduce", "table9", "--results-dir", str(tmp_path)]) == 1
    assert "known tables" in capsys.readouterr().err
    assert main(["reproduce", "table3", "--methods", "GAN", "--results-dir", str(tmp_path)]) == 1
    assert "known methods" in capsys.readouterr().err


def test_figures_are_written_and_linked(tmp_path) -> None:
    write_mnist(tmp_path / "data", per_class=12)
    results, doc = tmp_path / "results", tmp_path / "docs" / "RESULTS.md"
    argv = [
        "reproduce", "figures", "--data-dir", str(tmp_path / "data"), "--results-dir", str(results),
        "--doc", str(doc), "--epochs", "1", "--set", "memory_size=10",
    ]  # fmt: skip
    assert main(argv) == 0
    figures = ("mnist_memory_slots.png", "mnist_ae_vs_memae_anomalies.png", "mnist_score_distributions.png")
    for name in figures:
        assert (tmp_path / "docs" / "figures" / name).stat().st_size > 0
    assert "figures/mnist_memory_slots.png" in doc.read_text()
    record = json.loads((results / "figures" / "mnist_figures.json").read_text())
    assert set(record["auc"]) == {"ae", "memae"} and record["config"]["detector"]["memory_size"] == 10
