"""Tables as users hold them: ``.csv``/``.tsv`` and ``.parquet`` files and pandas DataFrames.

Reading is pandas' (and pyarrow's for Parquet); this module only decides what pandas
cannot know: whether the first row is a header (a first row of numbers is data, never
silently eaten), which delimiter a CSV uses (``,``, ``;``, tab or ``|``, sniffed by the
standard library's :class:`csv.Sniffer`), which column names the rows (an option, or the
unnamed first column that ``DataFrame.to_csv()`` writes), which holds the labels and which
to drop. The columns themselves are turned into model inputs by the fitted
:class:`memae.preprocessing.TableEncoder`, not here.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np

from memae.data.reader import Dataset, TableOptions
from memae.io import DataFileError, _is_number

SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")  # and .csv.gz / .tsv.gz
_SNIFF_BYTES = 65536
_SNIFF_ROWS = 50
_DELIMITERS = ",;\t|"


def is_frame(obj: Any) -> bool:
    """Whether ``obj`` is a pandas DataFrame (without importing pandas when it is not loaded)."""
    import sys

    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def is_compressed_text(path: Path) -> bool:
    """``table.csv.gz`` or ``table.tsv.gz``: a gzip-compressed CSV that pandas reads as it is."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    return len(suffixes) == 2 and suffixes[1] == ".gz" and suffixes[0] in (".csv", ".tsv")


def read_table(path: Path, options: TableOptions) -> Dataset:
    """Read a CSV/TSV or Parquet file into a :class:`Dataset` of kind ``"table"``."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError as err:
            raise DataFileError(
                f"reading {path.name} needs pyarrow: pip install 'memae[parquet]' (or pyarrow)"
            ) from err
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises its own exception types for a corrupt file
            raise DataFileError(f"{path} is not a readable Parquet file: {err}") from err
        return from_frame(frame, options, str(path))
    return from_frame(_read_csv(path, options), options, str(path))


def _read_csv(path: Path, options: TableOptions) -> Any:
    import pandas as pd

    opener = gzip.open if is_compressed_text(path) else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:  # utf-8-sig drops a byte-order mark
            sample = fh.read(_SNIFF_BYTES)
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path} is not a UTF-8 text table: {err}") from err
    except (OSError, EOFError) as err:
        raise DataFileError(f"{path} is not a readable compressed table: {err}") from err
    if not sample.strip():
        raise DataFileError(f"{path} is empty: expected a table with at least one row")
    delimiter = options.delimiter or _sniff_delimiter(sample, path)
    rows = list(csv.reader(io.StringIO(sample), delimiter=delimiter))
    if len(sample) == _SNIFF_BYTES and len(rows) > 1:
        rows = rows[:-1]  # the last row of a cut sample may be partial
    rows = [r for r in rows if any(cell.strip() for cell in r)][:_SNIFF_ROWS]
    header = options.header if options.header is not None else _has_header(rows)
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            header=0 if header else None,
            encoding="utf-8-sig",
            skipinitialspace=True,
            skip_blank_lines=True,
            low_memory=False,
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as err:
        raise DataFileError(f"{path} is not a readable table: {err}") from err
    if not header:
        frame.columns = [f"x{i}" for i in range(frame.shape[1])]
    return frame


def _sniff_delimiter(sample: str, path: Path) -> str:
    lines = [line for line in sample.splitlines() if line.strip()][:_SNIFF_ROWS]
    if len(lines) > 1 and len(sample) == _SNIFF_BYTES:
        lines = lines[:-1]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in _DELIMITERS}
        best = max(counts, key=counts.__getitem__)
        if counts[best] == 0 and len(lines[0].split()) > 1:
            raise DataFileError(
                f"{path}: cannot tell its delimiter (expected ',', ';', tab or '|'); name it with --delimiter"
            ) from None
        return best if counts[best] else ","


def _has_header(rows: list[list[str]]) -> bool:
    """A header is a first row that differs in kind from the rows below it: a name where a
    column holds numbers, or an empty cell (the index column pandas writes) where it holds
    values. A first row of numbers is therefore data. With a single row, a row that is not
    all numbers is a header."""
    if not rows:
        return False
    first = [c.strip() for c in rows[0]]
    body = rows[1:]
    if not body:
        return not all(_is_number(c) for c in first if c)
    for j, cell in enumerate(first):
        column = [r[j].strip() for r in body if j < len(r)]
        if not column:
            continue
        if not cell and all(column):
            return True
        if cell and not _is_number(cell) and all(_is_number(v) for v in column if v):
            return True
    if all(not _is_number(c) for c in first if c) and not any(
        _is_number(r[j].strip()) for r in body for j in range(len(r))
    ):
        # every cell a string: fall back to the standard library's header heuristic
        try:
            return csv.Sniffer().has_header("\n".join(",".join(r) for r in rows))
        except csv.Error:
            return False
    return False


def from_frame(frame: Any, options: TableOptions, source: str) -> Dataset:
    """A DataFrame with its index, label and dropped columns taken out, as a :class:`Dataset`."""
    frame = frame.copy(deep=False)
    frame.columns = [str(c) for c in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise ValueError(f"{source}: column names must be unique, got {duplicated} more than once")
    named = [c for c in (options.index_column, options.label_column, *options.drop_columns) if c]
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise ValueError(f"{source} has no column(s) {missing}; its columns are {list(frame.columns)}")
    ids = None
    index_column = options.index_column or _pandas_index_column(frame)
    if index_column is not None:
        ids = tuple(str(v) for v in frame[index_column].tolist())
        frame = frame.drop(columns=[index_column])
    labels = groups = None
    if options.label_column:
        values = frame[options.label_column]
        labels, groups = _labels(values, options.normal_labels, source, options.label_column)
        frame = frame.drop(columns=[options.label_column])
    if options.drop_columns:
        frame = frame.drop(columns=list(options.drop_columns))
    if frame.shape[1] == 0:
        raise ValueError(f"{source} has no feature columns left (after the index, label and dropped columns)")
    if len(frame) == 0:
        raise ValueError(f"{source} has no rows: expected at least one sample")
    return Dataset(frame.reset_index(drop=True), "table", source, ids=ids, labels=labels, groups=groups)


def _pandas_index_column(frame: Any) -> str | None:
    """The unnamed first column that ``DataFrame.to_csv()`` writes for the index."""
    first = frame.columns[0]
    if first in ("", "Unnamed: 0") and frame.shape[1] > 1:
        return first
    return None


def _labels(
    values: Any, normal: tuple[str, ...], source: str, column: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """0 normal / 1 anomaly from a label column: 0/1 (or booleans) as they are, or any values
    with ``normal`` naming those that mean normal."""
    if values.isna().any():
        raise ValueError(f"{source}: label column {column!r} has {int(values.isna().sum())} empty value(s)")
    names = tuple(str(v) for v in values.tolist())
    if normal:
        if not set(normal) & set(names):
            raise ValueError(
                f"{source}: none of the normal labels {sorted(normal)} occur in column {column!r} "
                f"(it holds {sorted(set(names))[:10]})"
            )
        return np.array([0 if n in normal else 1 for n in names]), names
    distinct = set(values.tolist())
    if distinct <= {0, 1}:  # booleans compare equal to 0 and 1
        return values.astype(int).to_numpy(), names
    raise ValueError(
        f"{source}: label column {column!r} must hold 0 (normal) / 1 (anomaly), got values "
        f"{sorted(map(str, distinct))[:10]}; name the normal ones with --normal-label"
    )
