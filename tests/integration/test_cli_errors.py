"""Every CLI command answers bad input with one line `memae: error: ...` and exit status 1."""

import numpy as np
import pytest

from memae import MemAEDetector
from memae.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("cli-errors")
    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    det = MemAEDetector(epochs=1, random_state=0, device="cpu").fit(X)
    paths = {
        "model": folder / "m.memae",
        "data": folder / "x.npy",
        "corrupt": folder / "corrupt.npz",
        "nan": folder / "nan.npy",
        "rank3": folder / "rank3.npy",
        "list_config": folder / "list.yaml",
        "text": folder / "x.txt",
    }
    det.save(paths["model"])
    np.save(paths["data"], X)
    paths["corrupt"].write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    np.save(paths["nan"], np.full((4, 3), np.nan))
    np.save(paths["rank3"], np.zeros((4, 3, 2)))
    paths["list_config"].write_text("- epochs\n- 3\n")
    paths["text"].write_text("1 2 3\n")
    return {k: str(v) for k, v in paths.items()}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["score", "{model}", "--data", "{corrupt}"], "corrupt.npz is not a readable .npz file"),
        (["score", "{model}", "--data", "{nan}"], "column 'x0' has 4 missing value(s) (NaN)"),
        (["score", "{model}", "--data", "{rank3}"], "got 3-D shape (4, 3, 2)"),
        (["score", "{model}", "--data", "{text}"], "unsupported data file 'x.txt'"),
        (["score", "{data}", "--data", "{data}"], "not a readable memae checkpoint"),
        (
            ["train", "--data", "{data}", "--config", "{list_config}", "--out", "{out}"],
            "YAML mapping",
        ),
        (
            ["train", "--data", "{data}", "--config", "{tmp}/none.yaml", "--out", "{out}"],
            "no config file",
        ),
        (
            ["train", "--data", "{data}", "--epochs", "1.5", "--out", "{out}"],
            "epochs must be an integer",
        ),
        (["train", "--data", "{data}", "--threshold", "fixed", "--out", "{out}"], "threshold_value"),
        (["train", "--data", "{data}", "--device", "tpu", "--out", "{out}"], "device must be"),
        (["inspect", "{model}", "--data", "{rank3}"], "got 3-D shape"),
        (
            ["export", "{model}", "--check-data", "{nan}", "--out", "{tmp}/m.onnx"],
            "column 'x0' has 4 missing value(s)",
        ),
        (
            ["report", "{model}", "--data", "{data}", "--labels", "{rank3}", "--out", "{tmp}"],
            "expected 20 labels",
        ),
    ],
)
def test_bad_input_is_one_line_error(files, tmp_path, capsys, argv: list[str], message: str) -> None:
    argv = [a.format(tmp=tmp_path, out=tmp_path / "m.memae", **files) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("memae: error:"), err
    assert message in err[0]
    assert not (tmp_path / "m.memae").exists() and not (tmp_path / "index.html").exists()


def test_compile_without_a_cpp_compiler_is_one_line_error(files, tmp_path, capsys) -> None:
    from torch._inductor import config as inductor_config

    argv = ["train", "--data", files["data"], "--epochs", "1", "--compile", "true", "--device", "cpu"]
    with inductor_config.patch({"cpp.cxx": ("no-such-c++-compiler",)}):
        assert main([*argv, "--out", str(tmp_path / "m.memae")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("memae: error: compile=True: torch.compile needs a C++")
    assert list(tmp_path.iterdir()) == []  # no checkpoint, no training state
