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


def _npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_an_npy_declaring_more_than_it_holds_is_refused_before_allocating(tmp_path) -> None:
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_header((1 << 40, 1024)) + b"\x00" * 16)  # declares 8 PiB, holds 16 bytes
    with pytest.raises(
        DataFileError, match=r"huge\.npy declares an array of shape .* but holds only 16 bytes"
    ):
        load_array(path)


def test_an_npz_member_that_inflates_beyond_the_limit_is_refused(tmp_path, monkeypatch) -> None:
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((512, 1024)))  # 4 MiB of zeros, a few KiB on disk
    assert path.stat().st_size < 100_000
    monkeypatch.setenv("MEMAE_MAX_LOAD_BYTES", str(1 << 20))
    with pytest.raises(
        DataFileError, match=r"bomb\.npz: array 'x' inflates to 4,194,4\d\d bytes .*MEMAE_MAX_LOAD_BYTES"
    ):
        load_array(path)
    monkeypatch.setenv("MEMAE_MAX_LOAD_BYTES", str(1 << 23))
    assert load_array(path).shape == (512, 1024)


def test_an_npz_member_whose_header_lies_is_refused(tmp_path) -> None:
    import zipfile

    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", _npy_header((1 << 30,)) + b"\x00" * 64)
    with pytest.raises(DataFileError, match=r"liar\.npz \(array 'x'\) declares an array of shape"):
        load_array(path)


def test_npy_arrays_round_trip_in_both_orders(tmp_path) -> None:
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    for order in ("C", "F"):
        np.save(tmp_path / f"{order}.npy", np.asarray(array, order=order))
        np.savez_compressed(tmp_path / f"{order}.npz", a=np.asarray(array, order=order))
        for suffix in (".npy", ".npz"):
            got = load_array(tmp_path / f"{order}{suffix}")
            np.testing.assert_array_equal(got, array)
            assert got.dtype == np.int16
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    assert load_array(tmp_path / "empty.npy").shape == (0, 3)
