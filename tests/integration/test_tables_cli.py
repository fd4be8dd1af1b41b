"""A table as users hold it, through the command line: train, score, info, report, inspect."""

import json

import numpy as np
import pytest

from memae.cli import main

pd = pytest.importorskip("pandas")


def _records(n: int, seed: int, anomalies: int = 0) -> "pd.DataFrame":
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "host": [f"h{seed}-{i}" for i in range(n)],
            "protocol": rng.choice(["tcp", "udp"], n),
            "bytes": np.round(rng.lognormal(5, 2, n)),
            "logged_in": rng.integers(0, 2, n),
            "label": ["normal"] * n,
        }
    )
    if anomalies:
        frame.loc[: anomalies - 1, "bytes"] = 1e9  # far outside the training range
        frame.loc[: anomalies - 1, "label"] = "attack"
    return frame


@pytest.fixture
def files(tmp_path):
    _records(120, seed=0).to_csv(tmp_path / "train.csv", index=False)
    test = _records(30, seed=1, anomalies=5)
    test.loc[5, "protocol"] = "icmp"  # a category never seen in training
    test.to_csv(tmp_path / "test.csv", sep=";", index=False)
    return tmp_path


def test_train_score_info_report_on_csv_with_string_columns(files, capsys) -> None:
    model = files / "m.memae"
    table = ["--index-column", "host", "--label-column", "label", "--normal-label", "normal"]
    assert (
        main(
            [
                "train",
                "--data",
                str(files / "train.csv"),
                *table,
                "--epochs",
                "3",
                "--random-state",
                "0",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr()
    meta = json.loads(out.out)
    assert [c["name"] for c in meta["table"]["columns"]] == ["protocol", "bytes", "logged_in"]
    assert "protocol" in out.err and "one-hot, 2 categories (tcp, udp)" in out.err
    assert "signed log1p, then scaled" in out.err

    scores = files / "scores.csv"
    with pytest.warns(UserWarning, match="never seen in training"):
        assert (
            main(["score", str(model), "--data", str(files / "test.csv"), *table, "--out", str(scores)]) == 0
        )
    written = pd.read_csv(scores)
    assert list(written.columns) == ["id", "score", "calibrated", "anomaly", "label"]
    assert written["id"].tolist()[:2] == ["h1-0", "h1-1"] and len(written) == 30
    assert written["label"].sum() == 5 and written.loc[:4, "anomaly"].all()
    assert ((written["calibrated"] >= 0) & (written["calibrated"] <= 1)).all()

    report = files / "report"
    assert main(["report", str(model), "--data", str(files / "test.csv"), *table, "--out", str(report)]) == 0
    numbers = json.loads((report / "report.json").read_text())
    assert numbers["metrics"]["auc"] == pytest.approx(1.0)
    assert (report / "examples-most-anomalous.png").stat().st_size > 0


def test_parquet_scores_like_the_csv(files) -> None:
    pytest.importorskip("pyarrow")
    model = files / "m.memae"
    assert (
        main(
            [
                "train",
                "--data",
                str(files / "train.csv"),
                "--drop-columns",
                "host,label",
                "--epochs",
                "2",
                "--random-state",
                "0",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    frame = pd.read_csv(files / "train.csv").drop(columns=["host", "label"])
    frame.to_parquet(files / "t.parquet")
    frame.to_csv(files / "t.csv", index=False)
    for name in ("t.parquet", "t.csv"):
        assert (
            main(["score", str(model), "--data", str(files / name), "--out", str(files / f"{name}.out")]) == 0
        )
    a, b = (pd.read_csv(files / f"{n}.out") for n in ("t.parquet", "t.csv"))
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-6)


def test_a_missing_column_at_scoring_is_one_line(files, capsys) -> None:
    model = files / "m.memae"
    assert (
        main(
            [
                "train",
                "--data",
                str(files / "train.csv"),
                "--drop-columns",
                "host,label",
                "--epochs",
                "1",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    pd.read_csv(files / "train.csv").drop(columns=["bytes"]).to_csv(files / "bad.csv", index=False)
    capsys.readouterr()
    assert main(["score", str(model), "--data", str(files / "bad.csv"), "--drop-columns", "host,label"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["memae: error: X does not have the training columns: missing column(s) ['bytes']"]
