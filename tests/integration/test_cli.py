import json

import numpy as np
import pytest

from memae.cli import main


@pytest.fixture
def data(tmp_path) -> str:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).normal(size=(80, 4)).astype(np.float32))
    return str(path)


def test_train_score_info_round_trip(tmp_path, data: str, capsys) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text("variant: memae-nonspar\nepochs: 2\nrandom_state: 0\n")
    model = tmp_path / "m.memae"
    assert main(["train", "--data", data, "--config", str(config), "--epochs", "3", "--out", str(model)]) == 0
    meta_out = capsys.readouterr()
    assert "trained memae-nonspar" in meta_out.out
    assert main(["info", str(model)]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["params"]["epochs"] == 3  # the flag overrides the YAML
    assert meta["model_config"]["variant"] == "memae-nonspar"
    scores = tmp_path / "scores.csv"
    assert main(["score", str(model), "--data", data, "--out", str(scores)]) == 0
    rows = scores.read_text().splitlines()
    assert rows[0] == "index,score,calibrated,anomaly" and len(rows) == 81


def test_csv_input_with_header(tmp_path) -> None:
    csv = tmp_path / "x.csv"
    rows = np.random.default_rng(0).normal(size=(30, 3))
    csv.write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in rows))
    assert main(["train", "--data", str(csv), "--epochs", "1", "--out", str(tmp_path / "m.memae")]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["score", "missing.memae", "--data", "x.npy"], "no checkpoint file"),
        (["train", "--data", "missing.npy", "--out", "m.memae"], "no data file"),
        (["train", "--data", "{data}", "--variant", "vae", "--out", "m.memae"], "unknown variant"),
        (["train", "--data", "{data}", "--config", "{bad_config}", "--out", "m.memae"], "unknown keys"),
    ],
)
def test_errors_exit_nonzero_with_one_line(tmp_path, data: str, capsys, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("epochz: 3\n")
    argv = [a.format(data=data, bad_config=bad_config) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("memae: error:") and message in err[0]
    assert not (tmp_path / "m.memae").exists()


def test_help_and_info_run(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert main(["info"]) == 0
    assert "video-small" in capsys.readouterr().out
