import warnings

import numpy as np
import pytest
import yaml

from memae.io import DataFileError, load_array, load_yaml


@pytest.fixture
def good(tmp_path) -> dict[str, bytes]:
    np.save(tmp_path / "a.npy", np.arange(12.0).reshape(4, 3))
    np.savez(tmp_path / "a.npz", x=np.arange(12.0).reshape(4, 3))
    return {s: (tmp_path / f"a{s}").read_bytes() for s in (".npy", ".npz")}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("cut.npy", lambda g: g[".npy"][: len(g[".npy"]) // 2], "not a readable .npy file"),
        ("cut-header.npy", lambda g: g[".npy"][:20], "not a readable .npy file"),
        ("garbage.npy", lambda g: b"hello world" * 10, "pickled \\(object\\) data or is not an array file"),
        ("cut.npz", lambda g: g[".npz"][: len(g[".npz"]) // 2], "not a readable .npz file"),
        ("flipped.npz", lambda g: _flip_member_byte(g[".npz"]), "not a readable .npz file"),
        ("binary.csv", lambda g: b"\xff\xfe\x00\x01", "not a text .csv file"),
        ("words.csv", lambda g: b"1,2,3\n4,x,6\n", "must hold numbers only"),
        ("ragged.csv", lambda g: b"1,2,3\n4,5\n", "must hold numbers only"),
        ("table.parquet", lambda g: b"PAR1", "unsupported data file 'table.parquet'"),
    ],
)
def test_corrupt_or_foreign_files_raise_naming_the_file(tmp_path, good, name, content, message) -> None:
    path = tmp_path / name
    path.write_bytes(content(good))
    with pytest.raises(DataFileError, match=message) as info:
        load_array(path)
    assert name in str(info.value)
    assert isinstance(info.value, ValueError)


def _flip_member_byte(data: bytes) -> bytes:
    # the array's bytes sit near the end of the single member; a flip breaks its CRC-32
    corrupt = bytearray(data)
    corrupt[len(data) - 150] ^= 0xFF
    return bytes(corrupt)


def test_object_arrays_are_never_unpickled(tmp_path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="pickled"):
        load_array(path)


def test_missing_file_and_npz_keys_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no data file at"):
        load_array(tmp_path / "nope.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.ones(2))
    with pytest.raises(DataFileError, match=r"holds arrays \['a', 'b'\]; name one with --key"):
        load_array(tmp_path / "two.npz")
    with pytest.raises(DataFileError, match="has no array 'c'"):
        load_array(tmp_path / "two.npz", key="c")
    np.testing.assert_array_equal(load_array(tmp_path / "two.npz", key="b"), np.ones(2))


def test_empty_csv_loads_as_an_empty_array_that_the_detector_refuses(tmp_path) -> None:
    from memae.validation import as_float_array

    path = tmp_path / "empty.csv"
    path.write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        array = load_array(path)
    with pytest.raises(ValueError, match="X is empty"):
        as_float_array(array)


def test_yaml_reads_exponent_floats_as_numbers() -> None:
    loaded = load_yaml("lr: 3e-4\nwd: 1E5\nplain: 1.5e-3\nepochs: 10\nname: 3e4x\nnone: null\n")
    assert loaded == {"lr": 3e-4, "wd": 1e5, "plain": 1.5e-3, "epochs": 10, "name": "3e4x", "none": None}
    assert isinstance(loaded["epochs"], int)
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']")


def test_command_line_overrides_take_exponent_floats() -> None:
    from memae.cli import build_parser, detector_params_from
    from memae.reproduce.cli import _overrides

    assert _overrides(["lr=3e-4", "similarity=dot"]) == {"lr": 3e-4, "similarity": "dot"}
    args = build_parser().parse_args(["train", "--data", "x.npy", "--out", "m.memae", "--lr", "3e-4"])
    assert detector_params_from(args)["lr"] == 3e-4
