"""Hostile input and path accidents on the command line: each case ends in a result or one
line `memae: error: ...` (status 1), with no traceback and nothing of the user's changed."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from memae import MemAEDetector
from memae.cli import build_parser, describe, main


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    X = np.random.default_rng(0).normal(size=(24, 3)).astype(np.float32)
    np.save(folder / "x.npy", X)
    MemAEDetector(epochs=1, random_state=0, device="cpu").fit(X).save(folder / "model.pt")
    return {"folder": folder, "data": folder / "x.npy", "model": folder / "model.pt"}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _one_line_error(capsys, *parts: str) -> str:  # type: ignore[no-untyped-def]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("memae: error: "), err
    assert "Traceback" not in err[0]
    for part in parts:
        assert part in err[0], err[0]
    return err[0]


def test_export_to_torchscript_never_overwrites_a_checkpoint_named_pt(files, capsys) -> None:
    before = _snapshot(files["folder"])
    assert main(["export", str(files["model"]), "--format", "torchscript"]) == 1
    _one_line_error(capsys, "--out", "model.pt is the checkpoint", "refusing to overwrite it")
    assert _snapshot(files["folder"]) == before
    assert MemAEDetector.load(files["model"]).threshold_ > 0


@pytest.mark.parametrize(
    "extra, said",
    [
        (["--out", "{data}"], "--out {data} is the data"),
        (["--out", "{tmp}/m.memae", "--state", "{data}"], "--state {data} is the data"),
        (["--out", "{tmp}/m.memae", "--state", "{tmp}/m.memae"], "--state {tmp}/m.memae is --out"),
        (["--out", "{tmp}/m.memae", "--val-data", "{tmp}/m.memae.state"], "is the --val-data"),
    ],
)
def test_train_never_replaces_or_deletes_an_input(files, tmp_path, capsys, extra, said) -> None:
    np.save(tmp_path / "m.memae.state.npy", np.zeros((2, 3)))
    (tmp_path / "m.memae.state").write_bytes((tmp_path / "m.memae.state.npy").read_bytes())
    fill = {"data": str(files["data"]), "tmp": str(tmp_path)}
    argv = ["train", "--data", str(files["data"]), "--epochs", "1", *[a.format(**fill) for a in extra]]
    before, tmp_before = _snapshot(files["folder"]), _snapshot(tmp_path)
    assert main(argv) == 1
    _one_line_error(capsys, said.format(**fill))
    assert _snapshot(files["folder"]) == before and _snapshot(tmp_path) == tmp_before


def test_outputs_that_are_devices_fifos_or_links_are_refused(files, tmp_path, capsys) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "elsewhere.csv")
    score = ["score", str(files["model"]), "--data", str(files["data"]), "--out"]
    for out, kind in (
        ("/dev/null", "a character device"),
        (str(fifo), "a FIFO"),
        (str(link), "a symbolic link"),
    ):
        assert main([*score, out]) == 1
        _one_line_error(capsys, f"refusing to write {out}: it is {kind}")
    assert (
        main(["train", "--data", str(files["data"]), "--out", str(tmp_path / "m"), "--state", str(fifo)]) == 1
    )
    _one_line_error(capsys, "--state: refusing to write", "a FIFO")
    assert (
        stat.S_ISFIFO(fifo.lstat().st_mode)
        and link.is_symlink()
        and not (tmp_path / "elsewhere.csv").exists()
    )
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_report_and_inspect_refuse_a_folder_holding_an_input_of_the_same_name(
    files, tmp_path, capsys
) -> None:
    data = tmp_path / "report.json.npy"
    np.save(data, np.load(files["data"]))
    checkpoint = tmp_path / "memory.json"
    checkpoint.write_bytes(files["model"].read_bytes())
    before = _snapshot(tmp_path)
    assert main(["inspect", str(checkpoint), "--data", str(data), "--out", str(tmp_path)]) == 1
    _one_line_error(capsys, "would overwrite the checkpoint", "memory.json")
    assert (
        main(["report", str(files["model"]), "--data", str(files["data"]), "--out", str(files["data"])]) == 1
    )
    _one_line_error(capsys, "is a file; expected a folder")
    assert _snapshot(tmp_path) == before


def test_a_model_without_validation_scores_saves(files, tmp_path, capsys) -> None:
    np.save(tmp_path / "four.npy", np.random.default_rng(1).normal(size=(4, 3)))
    out = tmp_path / "small.memae"
    argv = ["train", "--data", str(tmp_path / "four.npy"), "--epochs", "1", "--batch-size", "2"]
    assert main([*argv, "--validation-fraction", "0", "--out", str(out), "--verbose", "false"]) == 0
    assert MemAEDetector.load(out).validation_scores_.size == 0


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--width", "inf"], "width must be a number, got 'inf' (str)"),
        (["--width", "1e999"], "width must be a finite number, got inf"),
        (["--variant", "[1,2]"], "variant must be a string, got [1, 2] (list)"),
        (["--device", "meta"], "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'meta'"),
        (["--memory-size", "1e400"], "memory_size must be an integer"),
        (["--lr", "1e3"], "training diverged in epoch"),
    ],
)
def test_bad_values_and_diverged_runs_are_one_line_and_save_nothing(
    files, tmp_path, capsys, flags, said
) -> None:
    out = tmp_path / "m.memae"
    argv = ["train", "--data", str(files["data"]), "--epochs", "2", "--verbose", "false", *flags]
    assert main([*argv, "--out", str(out)]) == 1
    _one_line_error(capsys, said)
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["m.memae.state"])
    assert not out.exists()


def test_malformed_yaml_names_the_file_and_line_or_the_flag(files, tmp_path, capsys) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("epochs: 2\nlr: [0.1\n")
    assert (
        main(["train", "--data", str(files["data"]), "--config", str(config), "--out", str(tmp_path / "m")])
        == 1
    )
    _one_line_error(capsys, f"{config} is not valid YAML (line 3, column 1)")
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", str(files["data"]), "--lr", "[0.1", "--out", str(tmp_path / "m")])
    assert info.value.code == 2
    assert "argument --lr: '[0.1' is not valid YAML" in capsys.readouterr().err


def test_deeply_nested_state_file_is_one_line(files, tmp_path, capsys) -> None:
    from safetensors.torch import save_file

    state = tmp_path / "m.state"
    depth = 50_000
    save_file({"w": torch.zeros(1)}, str(state), metadata={"memae": "[" * depth + "]" * depth})
    argv = ["train", "--data", str(files["data"]), "--epochs", "1", "--resume", "--state", str(state)]
    assert main([*argv, "--out", str(tmp_path / "m")]) == 1
    _one_line_error(capsys, f"{state}'s memae metadata is nested", "at most 32 levels")


def test_a_full_disk_while_saving_is_one_line_and_leaves_no_file(
    files, tmp_path, capsys, monkeypatch
) -> None:
    from safetensors import SafetensorError

    import memae.checkpoint

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(memae.checkpoint, "save_file", full)
    out = tmp_path / "m.memae"
    argv = ["train", "--data", str(files["data"]), "--epochs", "1", "--verbose", "false", "--out", str(out)]
    assert main(argv) == 1
    _one_line_error(capsys, "could not write", "StorageFull")
    assert list(tmp_path.iterdir()) == []


def test_any_failure_is_one_line_and_an_interrupt_is_130(files, capsys, monkeypatch) -> None:
    import memae.io

    for error in (
        MemoryError(),
        RuntimeError("a kernel failed"),
        KeyError("preprocessing"),
        RecursionError(),
    ):

        def fail(*args, error=error, **kwargs):  # type: ignore[no-untyped-def]
            raise error

        monkeypatch.setattr(memae.io, "load_array", fail)
        assert main(["score", str(files["model"]), "--data", str(files["data"])]) == 1
        _one_line_error(capsys, describe(error))
    assert describe(MemoryError()).startswith("out of memory")
    assert describe(RuntimeError("a kernel failed")) == "RuntimeError: a kernel failed"

    def interrupt(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(memae.io, "load_array", interrupt)
    assert main(["score", str(files["model"]), "--data", str(files["data"])]) == 130
    assert capsys.readouterr().err.strip() == "memae: interrupted"


def test_resume_says_what_it_does_and_only_once_the_state_is_checked(files, tmp_path, capsys) -> None:
    out, state = tmp_path / "m.memae", tmp_path / "m.state"
    base = ["train", "--data", str(files["data"]), "--verbose", "false", "--random-state", "0"]
    base += ["--out", str(out), "--state", str(state)]
    assert main([*base, "--epochs", "1", "--resume"]) == 0
    assert f"--resume: no training state at {state}; starting afresh" in capsys.readouterr().out
    X = np.load(files["data"])
    det = MemAEDetector(epochs=2, random_state=0, verbose=False)
    det.fit(X, training_state=state)  # leaves the state of its last epoch, as a killed run would
    assert state.exists()
    assert main([*base, "--epochs", "3", "--lr", "0.5", "--resume"]) == 1
    captured = capsys.readouterr()
    assert "resuming" not in captured.out
    assert "was written by a different training run" in captured.err


def test_help_opens_with_what_memae_is_and_verbose_says_its_default(capsys) -> None:
    text = build_parser().format_help()
    assert "memae: memory-augmented autoencoders (MemAE) for anomaly detection" in text
    assert "``" not in text
    for command in ("demo", "train", "score", "export", "inspect", "report", "info", "download", "reproduce"):
        assert command in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "default on the command line: true" in " ".join(capsys.readouterr().out.split())


def test_reproduce_takes_variant_names_and_refuses_broken_records(tmp_path, capsys) -> None:
    from memae.reproduce.methods import get_method

    assert get_method("memae").name == "MemAE" and get_method("memae-nonspar").name == "MemAE-nonSpar"
    assert get_method("ae-l1").name == "AE-ℓ1" and get_method("oc-svm").name == "OC-SVM"
    runs = tmp_path / "results" / "runs" / "table1" / "mnist"
    runs.mkdir(parents=True)
    doc = tmp_path / "RESULTS.md"
    argv = ["reproduce", "report", "--results-dir", str(tmp_path / "results"), "--doc", str(doc)]
    for content, said in (
        ("[]", "must be a JSON object, got list"),
        ('{"dataset": "mnist"}', "field 'method'"),
    ):
        (runs / "r.json").write_text(content)
        assert main(argv) == 1
        _one_line_error(capsys, f"run record {runs / 'r.json'}", said)
    (runs / "r.json").unlink()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "<table>" not in out and f"wrote {doc}" in out
