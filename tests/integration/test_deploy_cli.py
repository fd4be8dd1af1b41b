"""The deployment commands end to end: export, inspect, report."""

import json

import numpy as np
import pytest

from memae import MemAEDetector
from memae.cli import main


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[str, str, str]:
    """A tiny image checkpoint, its data file and 0/1 labels (the last third anomalous)."""
    folder = tmp_path_factory.mktemp("deploy")
    rng = np.random.default_rng(0)
    normal = rng.random((24, 1, 12, 12), dtype=np.float32) * 0.2
    anomalies = rng.random((12, 1, 12, 12), dtype=np.float32)
    X = np.concatenate([normal, anomalies])
    det = MemAEDetector(epochs=2, batch_size=8, memory_size=10, random_state=0, device="cpu").fit(normal)
    paths = folder / "m.memae", folder / "x.npy", folder / "y.npy"
    det.save(paths[0])
    np.save(paths[1], X)
    np.save(paths[2], np.r_[np.zeros(24), np.ones(12)].astype(int))
    return tuple(str(p) for p in paths)  # type: ignore[return-value]


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_export_writes_model_and_metadata(images, tmp_path, capsys, fmt: str, suffix: str) -> None:
    model, data, _ = images
    out = tmp_path / f"m{suffix}"
    assert main(["export", model, "--format", fmt, "--out", str(out), "--check-data", data]) == 0
    assert "scores match the checkpoint's on 36 samples" in capsys.readouterr().out
    meta = json.loads((tmp_path / f"m{suffix}.json").read_text())
    assert meta["format"] == fmt and meta["check"]["max_relative_difference"] <= 1e-4


def test_export_of_a_corrupt_checkpoint_is_one_line_error(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.memae"
    bad.write_bytes(b"\x00" * 64)
    assert main(["export", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("memae: error:") and "not a readable memae checkpoint" in err[0]
    )


def test_inspect_prints_diagnostics_and_writes_json_and_slots(images, tmp_path, capsys) -> None:
    model, data, _ = images
    assert main(["inspect", model, "--data", data, "--out", str(tmp_path), "--slots", "6"]) == 0
    out = capsys.readouterr().out
    assert "memory: 10 slots" in out and "dead slots" in out
    report = json.loads((tmp_path / "memory.json").read_text())
    assert report["n_queries"] == 36 and len(report["usage"]) == 10
    assert (tmp_path / "slots.png").read_bytes()[:4] == b"\x89PNG"


def test_inspect_with_data_of_another_shape_is_one_line_error(images, tmp_path, capsys) -> None:
    model, _, _ = images
    np.save(tmp_path / "rgb.npy", np.zeros((2, 3, 12, 12), np.float32))
    assert main(["inspect", model, "--data", str(tmp_path / "rgb.npy")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "memae: error: the detector was trained on 1-channel images of shape (N, 1, 12, 12), got "
        "3-channel images of shape (2, 3, 12, 12): convert them to 1 channel(s) (--channels 1)"
    ]


def test_report_writes_an_html_page(images, tmp_path, capsys) -> None:
    model, data, labels = images
    out = tmp_path / "report"
    assert main(["report", model, "--data", data, "--labels", labels, "--out", str(out)]) == 0
    assert f"wrote {out / 'index.html'}" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["metrics"]["auc"] > 0.5


def test_report_with_one_class_labels_is_one_line_error(images, tmp_path, capsys) -> None:
    model, data, _ = images
    np.save(tmp_path / "zeros.npy", np.zeros(36))
    argv = ["report", model, "--data", data, "--labels", str(tmp_path / "zeros.npy"), "--out", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only class 0; the AUC and the ROC curve need both" in err[0]
