"""KDDCUP99, the 10 % file (``kddcup.data_10_percent.gz`` + ``kddcup.names``), and the DAGMM
protocol of Table 3 (SPEC §6)."""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from memae.data.paths import data_dir, require

DATA_FILE = "kddcup.data_10_percent.gz"
NAMES_FILE = "kddcup.names"
ANOMALY_LABEL = "normal."


@dataclass(frozen=True)
class KDDData:
    """Encoded records: features (N, d) float64, 1 = anomaly (``normal.`` traffic), the raw
    label strings, the names of the encoded columns and which of them are continuous (a
    column the names file calls continuous that holds more than the values 0 and 1)."""

    X: np.ndarray
    y: np.ndarray
    labels: np.ndarray
    columns: tuple[str, ...]
    continuous: np.ndarray


def read_names(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(feature, "continuous" | "symbolic")`` pairs from ``kddcup.names`` (CRLF or LF)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines()[1:]:
        line = line.strip()
        if not line:
            continue
        if ":" not in line:
            raise ValueError(f"{path}: expected 'name: type.' lines, got {line!r}")
        name, kind = (s.strip().rstrip(".") for s in line.split(":", 1))
        if kind not in ("continuous", "symbolic"):
            raise ValueError(f"{path}: feature {name!r} has unknown type {kind!r}")
        rows.append((name, kind))
    return rows


def load_kddcup(
    root: str | os.PathLike[str] | None = None, binary: Literal["keep", "one-hot"] = "keep"
) -> KDDData:
    """Read and one-hot encode the 10 % file.

    The three symbolic columns with many values (protocol_type, service, flag) are one-hot
    encoded. ``binary`` decides the four 0/1 columns the names file also calls symbolic
    (land, logged_in, is_host_login, is_guest_login): ``"keep"`` leaves them as one column
    each (118 features on this file), ``"one-hot"`` encodes them too (121: is_host_login
    takes a single value in the 10 % file).
    """
    if binary not in ("keep", "one-hot"):
        raise ValueError(f"binary must be 'keep' or 'one-hot', got {binary!r}")
    folder = data_dir(root) / "kddcup99"
    names = read_names(require(folder / NAMES_FILE, "KDDCUP99 feature list kddcup.names"))
    path = require(folder / DATA_FILE, f"KDDCUP99 file {DATA_FILE}")
    try:
        with gzip.open(path, "rb") as fh:
            rows = list(csv.reader(io.TextIOWrapper(fh, encoding="ascii")))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a readable gzip of KDDCUP99 records: {err}") from err
    width = len(names) + 1
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise ValueError(f"{path}: line {bad + 1} has {len(rows[bad])} fields, expected {width}")
    fields = list(zip(*rows, strict=True))  # one tuple of strings per column
    columns: list[str] = []
    blocks: list[np.ndarray] = []
    continuous: list[bool] = []
    for (name, kind), values in zip(names, fields, strict=False):
        if kind == "continuous" or (binary == "keep" and set(values) <= {"0", "1"}):
            block = np.array(values, dtype=np.float64)[:, None]
            blocks.append(block)
            columns.append(name)
            continuous.append(kind == "continuous" and not set(np.unique(block).tolist()) <= {0.0, 1.0})
        else:
            index = {c: i for i, c in enumerate(sorted(set(values)))}
            codes = np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
            blocks.append(np.eye(len(index))[codes])
            columns += [f"{name}={c}" for c in index]
            continuous += [False] * len(index)
    labels = np.array(fields[-1])
    return KDDData(
        np.hstack(blocks),
        (labels == ANOMALY_LABEL).astype(np.int64),
        labels,
        tuple(columns),
        np.array(continuous, dtype=bool),
    )


class KDDSplit(NamedTuple):
    """One run of the DAGMM protocol: scaled training records of the normal (attack) class,
    the scaled test half, its labels (1 = anomaly) and its raw label strings."""

    train: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    train_all: np.ndarray
    test_names: np.ndarray


def dagmm_split(
    data: KDDData,
    *,
    seed: int,
    test_fraction: float = 0.5,
    scaling: Literal["minmax", "standard", "robust"] = "minmax",
    scale_columns: Literal["all", "continuous"] = "continuous",
    log1p: bool = True,
) -> KDDSplit:
    """Random 50/50 split; the scaler is fitted on the whole training half; the model trains
    on the training half's normal class (the attacks) only.

    ``scale_columns="continuous"`` scales only the continuous columns and leaves the one-hot
    and 0/1 columns as they are (GOAD's and the common PyTorch DAGMM loaders do this);
    ``"all"`` scales every column (a rare one-hot column then becomes a ~200σ value).
    ``log1p`` sends the non-negative heavy-tailed continuous columns (bytes, counts) through
    ``log1p`` first, by the rule :class:`memae.preprocessing.TableEncoder` uses on users'
    tables. Both are the statistics of :func:`memae.preprocessing.fit_scaling`.
    """
    from memae.preprocessing import apply_scaling, fit_scaling, heavy_tailed

    if scaling not in ("minmax", "standard", "robust"):
        raise ValueError(f"scaling must be 'minmax', 'standard' or 'robust', got {scaling!r}")
    if scale_columns not in ("all", "continuous"):
        raise ValueError(f"scale_columns must be 'all' or 'continuous', got {scale_columns!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.X))
    n_test = round(test_fraction * len(order))
    test_idx, train_idx = order[:n_test], order[n_test:]
    train = data.X[train_idx]
    scaled = data.continuous if scale_columns == "continuous" else np.ones(train.shape[1], dtype=bool)
    logged = np.array(
        [bool(log1p and c and heavy_tailed(train[:, j])) for j, c in enumerate(data.continuous)]
    )
    offset, spread = fit_scaling(train, scaled, logged, scaling)

    def scale(x: np.ndarray) -> np.ndarray:
        return apply_scaling(x, logged, offset, spread)

    train_normal = train[data.y[train_idx] == 0]
    return KDDSplit(
        scale(train_normal), scale(data.X[test_idx]), data.y[test_idx], scale(train), data.labels[test_idx]
    )


def flagged_by_label(names: np.ndarray, flagged: np.ndarray) -> dict[str, dict[str, int]]:
    """``{label: {"n": test records, "flagged": how many were flagged}}``: the recall of the
    anomaly class (``normal.``) and, for every attack type, its false positives."""
    names, flagged = np.asarray(names), np.asarray(flagged, dtype=bool)
    if names.shape != flagged.shape:
        raise ValueError(f"expected one flag per label, got {flagged.shape} flags for {names.shape} labels")
    return {
        str(label): {"n": int((names == label).sum()), "flagged": int(flagged[names == label].sum())}
        for label in np.unique(names)
    }


def top_fraction_threshold(
    test_scores: np.ndarray,
    fraction: float = 0.2,
    population: Literal["test", "train+test"] = "test",
    train_scores: np.ndarray | None = None,
) -> float:
    """The score above which the top ``fraction`` is flagged anomalous.

    ``population="test"`` takes the percentile over the test scores alone (our default);
    ``"train+test"`` over training and test scores together (DAGMM's released code).
    """
    if population == "test":
        pool = test_scores
    elif population == "train+test":
        if train_scores is None:
            raise ValueError("population 'train+test' needs the training scores")
        pool = np.concatenate([train_scores, test_scores])
    else:
        raise ValueError(f"population must be 'test' or 'train+test', got {population!r}")
    return float(np.percentile(pool, 100 * (1 - fraction)))
