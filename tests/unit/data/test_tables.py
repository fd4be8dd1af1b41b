"""Reading tables as users hold them: every case a result or one clear error."""

import numpy as np
import pytest

from memae.data import TableOptions, read_data
from memae.io import DataFileError

pd = pytest.importorskip("pandas")


def _write(tmp_path, text: str, name: str = "t.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_header_is_detected_and_string_columns_are_kept(tmp_path) -> None:
    path = _write(tmp_path, "duration,protocol,bytes\n0,tcp,181\n2,udp,239\n")
    data = read_data(path)
    assert data.kind == "table" and list(data.X.columns) == ["duration", "protocol", "bytes"]
    assert data.X["protocol"].tolist() == ["tcp", "udp"] and len(data) == 2


def test_a_numeric_first_row_is_data_not_a_header(tmp_path) -> None:
    data = read_data(_write(tmp_path, "1,2,3\n4,5,6\n"))
    assert len(data) == 2 and list(data.X.columns) == ["x0", "x1", "x2"]
    assert data.X.iloc[0].tolist() == [1, 2, 3]


def test_string_rows_without_header_keep_their_first_row(tmp_path) -> None:
    # the raw KDDCUP99 file: strings in some columns, numbers in others, no header
    data = read_data(_write(tmp_path, "0,tcp,http,181\n0,udp,smtp,239\n1,tcp,ftp,5\n"))
    assert len(data) == 3 and data.X.iloc[0, 1] == "tcp"


def test_byte_order_mark_without_header_loses_no_row(tmp_path) -> None:
    data = read_data(_write(tmp_path, "1.5,2\n3,4\n", encoding="utf-8-sig"))
    assert len(data) == 2 and data.X.iloc[0, 0] == 1.5


def test_byte_order_mark_with_header_names_the_first_column_cleanly(tmp_path) -> None:
    data = read_data(_write(tmp_path, "a,b\n1,2\n", encoding="utf-8-sig"))
    assert list(data.X.columns) == ["a", "b"]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path, sep) -> None:
    data = read_data(_write(tmp_path, f"a{sep}b{sep}c\n1{sep}x{sep}3.5\n2{sep}y{sep}4\n"))
    assert list(data.X.columns) == ["a", "b", "c"] and data.X["c"].tolist() == [3.5, 4.0]


def test_quoted_fields_hold_delimiters(tmp_path) -> None:
    data = read_data(_write(tmp_path, 'name,v\n"a, b",1\n"c",2\n'))
    assert data.X["name"].tolist() == ["a, b", "c"]


def test_pandas_index_column_with_a_header_of_numbers_is_recognised(tmp_path) -> None:
    frame = pd.DataFrame(np.arange(12.0).reshape(4, 3))  # column names 0, 1, 2
    frame.index = ["r1", "r2", "r3", "r4"]
    frame.to_csv(tmp_path / "t.csv")
    data = read_data(tmp_path / "t.csv")
    assert list(data.X.columns) == ["0", "1", "2"] and data.ids == ("r1", "r2", "r3", "r4")
    assert data.X.iloc[0].tolist() == [0.0, 1.0, 2.0]


def test_index_label_and_dropped_columns_by_option(tmp_path) -> None:
    path = _write(tmp_path, "id,a,junk,y\nq,1,z,normal\nw,2,z,attack\ne,3,z,normal\n")
    options = TableOptions(
        index_column="id", label_column="y", drop_columns=("junk",), normal_labels=("normal",)
    )
    data = read_data(path, table=options)
    assert list(data.X.columns) == ["a"] and data.ids == ("q", "w", "e")
    assert data.labels.tolist() == [0, 1, 0] and data.groups == ("normal", "attack", "normal")


def test_a_label_column_of_strings_needs_the_normal_values(tmp_path) -> None:
    path = _write(tmp_path, "a,y\n1,normal\n2,attack\n")
    with pytest.raises(ValueError, match=r"label column 'y' must hold 0 \(normal\) / 1 \(anomaly\)"):
        read_data(path, table=TableOptions(label_column="y"))


def test_a_named_column_that_is_missing_is_named(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"has no column\(s\) \['id'\]; its columns are \['a', 'b'\]"):
        read_data(_write(tmp_path, "a,b\n1,2\n"), table=TableOptions(index_column="id"))


def test_parquet_round_trip(tmp_path) -> None:
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"proto": ["tcp", "udp"], "bytes": [1.0, 2e9]})
    frame.to_parquet(tmp_path / "t.parquet")
    data = read_data(tmp_path / "t.parquet")
    assert data.X.equals(frame)


def test_corrupt_parquet_and_empty_csv_are_named(tmp_path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataFileError, match=r"bad.parquet is not a readable Parquet file"):
        read_data(tmp_path / "bad.parquet")
    with pytest.raises(DataFileError, match=r"e.csv is empty"):
        read_data(_write(tmp_path, "\n\n", name="e.csv"))


def test_a_table_that_is_not_utf8_is_named(tmp_path) -> None:
    (tmp_path / "l.csv").write_bytes("a,b\n\xe9,1\n".encode("utf-16"))
    with pytest.raises(DataFileError, match=r"l.csv is not a UTF-8 text table"):
        read_data(tmp_path / "l.csv")


def test_dataframes_and_arrays_go_through_the_same_door() -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    assert read_data(frame).kind == "table"
    assert read_data(np.zeros((2, 3))).kind == "array"


def test_gzip_compressed_csv_is_read_like_the_plain_one(tmp_path) -> None:
    import gzip

    with gzip.open(tmp_path / "t.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write("a;proto\n1;tcp\n2;udp\n")
    data = read_data(tmp_path / "t.csv.gz")
    assert list(data.X.columns) == ["a", "proto"] and data.X["proto"].tolist() == ["tcp", "udp"]
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DataFileError, match=r"bad.csv.gz is not a readable compressed table"):
        read_data(tmp_path / "bad.csv.gz")
