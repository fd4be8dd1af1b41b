"""Preprocessing fitted on the training data and stored with the model.

:class:`TableEncoder` turns a table (a pandas DataFrame, or a 2-D array whose columns are
named ``x0``, ``x1``, ...) into numbers, column by column, by the role it learnt for each:

* ``categorical`` (strings, pandas categories): one-hot, one feature per category seen in
  training; a category never seen is encoded as all zeros and counted in an
  :class:`UnseenCategoryWarning`, never a crash;
* ``binary`` (numbers that are only 0 and 1, booleans): left as 0/1;
* ``continuous``: the raw value, through a signed ``log1p`` where the column is
  non-negative and heavy-tailed (byte and packet counts), then scaled;
* ``constant`` (one value in training): centred on it, so any other value stands out.

:func:`fit_scaling` then learns the affine part (offset and scale per encoded feature, in
float64) for the continuous features only: binary and one-hot features stay 0/1. The
detector applies ``(slog1p(E) if log else E - offset) / scale``; ONNX/TorchScript export puts
that numeric part in the graph and the encoder's categories in the JSON beside it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from numbers import Number
from typing import Any, Literal

import numpy as np

Role = Literal["categorical", "binary", "continuous", "constant"]
Scaling = Literal["bounded", "standard", "robust", "minmax", "none"]
SCALINGS: tuple[str, ...] = ("bounded", "standard", "robust", "minmax", "none")
#: ``bounded`` scaling keeps every training value within this many units of the column's mean.
BOUND = 4.0
#: Scaled values are clipped here: far beyond any normal value, and safe in float32 networks.
CLIP = 1e4
#: A non-negative column goes through log1p when its skewness exceeds this and its maximum
#: is at least ``_LOG_MIN_MAX`` (so rates in [0, 1] stay linear).
_LOG_SKEW = 2.0
_LOG_MIN_MAX = 10.0
#: Integers up to this magnitude are floats exactly (2**53): encode_rows takes them as they are.
_EXACT_INT = 2**53


class UnseenCategoryWarning(UserWarning):
    """Values of a categorical column that training never saw (encoded as all zeros)."""


@dataclass(frozen=True)
class ColumnPlan:
    """What was learnt for one input column."""

    name: str
    role: Role
    categories: tuple[str, ...] = ()
    log: bool = False
    fill: float | str | None = None

    def describe(self) -> str:
        if self.role == "categorical":
            shown = ", ".join(self.categories[:6]) + (", ..." if len(self.categories) > 6 else "")
            text = f"one-hot, {len(self.categories)} categories ({shown})"
        elif self.role == "continuous":
            text = "signed log1p, then scaled" if self.log else "scaled"
        elif self.role == "binary":
            text = "0/1, kept"
        else:
            text = "constant in training, centred"
        return text + ("" if self.fill is None else f"; missing values filled with {self.fill!r}")


def slog1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: log1p for non-negative values, defined for every real."""
    return np.sign(x) * np.log1p(np.abs(x))


class TableEncoder:
    """Column roles, categories and log transforms learnt from a training table.

    Example:
        >>> enc = TableEncoder().fit(frame)          # frame: pandas DataFrame
        >>> E = enc.encode(frame)                     # (N, len(enc.feature_names_out_)) float64
        >>> [c.role for c in enc.columns_]

    ``log1p``: ``"auto"`` (non-negative, heavy-tailed continuous columns), ``"none"``, or the
    names of the columns to log. ``max_categories``: a string column with more categories is
    refused, naming it (an identifier, or a free-text column, is not a feature).
    ``impute``: ``None`` refuses missing values naming the column; ``"median"`` fills numbers
    with the training median and strings with their most frequent value.
    """

    def __init__(
        self,
        *,
        log1p: str | Sequence[str] = "auto",
        max_categories: int = 100,
        impute: str | None = None,
    ) -> None:
        self.log1p = log1p
        self.max_categories = max_categories
        self.impute = impute

    # --- fitting ------------------------------------------------------------------------

    def fit(self, X: Any) -> TableEncoder:
        """Learn every column's role from the training table ``X``."""
        if self.impute not in (None, "median"):
            raise ValueError(f"impute must be None or 'median', got {self.impute!r}")
        if isinstance(self.max_categories, bool) or not isinstance(self.max_categories, int):
            raise TypeError(f"max_categories must be an integer, got {self.max_categories!r}")
        if self.max_categories < 2:
            raise ValueError(f"max_categories must be at least 2, got {self.max_categories}")
        frame, named = _as_frame(X)
        logged = self._log_columns(frame)
        plans = [self._fit_column(name, frame[name], name in logged) for name in frame.columns]
        self._set_plans(plans, named)
        return self

    def _log_columns(self, frame: Any) -> set[str]:
        if isinstance(self.log1p, str):
            if self.log1p not in ("auto", "none"):
                raise ValueError(
                    f"log1p must be 'auto', 'none' or a list of column names, got {self.log1p!r}"
                )
            return set()
        names = [str(n) for n in self.log1p]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise ValueError(f"log1p names column(s) {missing} that the table does not have")
        return set(names)

    def _fit_column(self, name: str, values: Any, log: bool) -> ColumnPlan:
        import pandas as pd

        fill: float | str | None = None
        if _is_numeric(values):
            numbers = values.astype(np.float64).to_numpy()
            missing = np.isnan(numbers)
            if missing.any():
                if self.impute is None:
                    raise ValueError(
                        f"column {name!r} has {int(missing.sum())} missing value(s) (NaN); fill them, drop "
                        "the column, or pass impute='median' (--impute median)"
                    )
                if missing.all():
                    raise ValueError(f"column {name!r} holds no values at all (every one missing)")
                fill = float(np.median(numbers[~missing]))
                numbers = np.where(missing, fill, numbers)
            if not np.isfinite(numbers).all():
                raise ValueError(
                    f"column {name!r} has {int((~np.isfinite(numbers)).sum())} infinite value(s)"
                )
            distinct = np.unique(numbers)
            if log:
                if distinct.size < 2:
                    raise ValueError(f"log1p names column {name!r}, which is constant in training")
                return ColumnPlan(name, "continuous", log=True, fill=fill)
            if distinct.size == 1:
                return ColumnPlan(name, "constant", fill=fill)
            if distinct.size == 2 and distinct[0] == 0.0 and distinct[1] == 1.0:
                return ColumnPlan(name, "binary", fill=fill)
            return ColumnPlan(
                name, "continuous", log=self.log1p == "auto" and heavy_tailed(numbers), fill=fill
            )
        odd = [v for v in values.tolist() if not isinstance(v, (str, bytes, bool, Number, type(None)))]
        if odd:
            raise TypeError(
                f"column {name!r} holds a {type(odd[0]).__name__} ({odd[0]!r}): every argument must be "
                f"a string or a real number, not {type(odd[0]).__name__!r}"
            )
        text = _as_text(values)
        missing = values.isna().to_numpy()
        if missing.any():
            if self.impute is None:
                raise ValueError(
                    f"column {name!r} has {int(missing.sum())} missing value(s); fill them, drop the column, "
                    "or pass impute='median' (--impute median: the most frequent value for strings)"
                )
            fill = str(pd.Series(text[~missing]).mode().iloc[0])
            text = np.where(missing, fill, text)
        categories = tuple(sorted(set(text.tolist())))
        if len(categories) > self.max_categories:
            raise ValueError(
                f"column {name!r} has {len(categories)} distinct values, more than max_categories="
                f"{self.max_categories}: drop it (--drop-columns {name}), make it the index "
                "(--index-column) if it names the rows, or raise max_categories"
            )
        return ColumnPlan(name, "categorical", categories=categories, fill=fill)

    # --- encoding -----------------------------------------------------------------------

    def encode(self, X: Any, name: str = "X") -> np.ndarray:
        """``X`` as the encoded float64 features (one-hot, 0/1 and raw continuous values;
        log and scaling are applied after this). Columns are matched by name when ``X`` is
        a DataFrame and the encoder was fitted on one; a missing or extra column is an error
        naming it."""
        import pandas as pd

        frame = self._aligned(X, name)
        blocks = []
        for plan in self.columns_:
            values = frame[plan.name]
            if plan.role == "categorical":
                text = _as_text(values)
                missing = values.isna().to_numpy()
                if missing.any():
                    if plan.fill is None:
                        raise ValueError(f"column {plan.name!r} has {int(missing.sum())} missing value(s)")
                    text = np.where(missing, plan.fill, text)
                codes = pd.Index(list(plan.categories)).get_indexer(text)  # -1: a category not seen
                unseen = codes < 0
                if unseen.any():
                    examples = sorted(set(text[unseen].tolist()))[:5]
                    warnings.warn(
                        f"column {plan.name!r}: {int(unseen.sum())} value(s) never seen in training "
                        f"(e.g. {examples}) are encoded as all zeros",
                        UnseenCategoryWarning,
                        stacklevel=3,
                    )
                block = np.zeros((len(frame), len(plan.categories)))
                rows = np.nonzero(~unseen)[0]
                block[rows, codes[~unseen]] = 1.0
                blocks.append(block)
                continue
            numbers = pd.to_numeric(values, errors="coerce").astype(np.float64).to_numpy()
            bad = np.isnan(numbers) & values.notna().to_numpy()
            if bad.any():
                row = int(np.nonzero(bad)[0][0])
                raise ValueError(
                    f"column {plan.name!r} held numbers in training, got {values.iloc[row]!r} at row {row}"
                )
            missing = np.isnan(numbers)
            if missing.any():
                if plan.fill is None:
                    raise ValueError(
                        f"column {plan.name!r} has {int(missing.sum())} missing value(s) (NaN); the model "
                        "was trained without impute"
                    )
                numbers = np.where(missing, plan.fill, numbers)
            if np.isinf(numbers).any():
                raise ValueError(f"column {plan.name!r} has {int(np.isinf(numbers).sum())} infinite value(s)")
            blocks.append(numbers[:, None])
        return np.hstack(blocks)

    def encode_rows(self, rows: Sequence[Any]) -> np.ndarray | None:
        """Rows of plain Python values — dicts keyed by column name (an encoder fitted on
        named columns) or lists in training order, as JSON gives them — encoded as
        :meth:`encode` encodes the DataFrame of them, without building one: numbers (not
        booleans) as they are, strings one-hot.

        ``None`` when a row is not of that plain kind (a missing, extra or non-finite value, a
        number given as text, a category never seen or not a string): :meth:`encode` on the
        DataFrame then handles it or names what is wrong. A server takes this way for each
        request's rows: building a DataFrame costs more than scoring them.
        """
        width = len(self.columns_)
        out = np.zeros((len(rows), len(self.feature_names_out_)))
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                if not self.named_ or len(row) != width:
                    return None
                try:
                    values = [row[plan.name] for plan in self.columns_]
                except KeyError:
                    return None
            elif isinstance(row, list | tuple) and len(row) == width:
                values = row
            else:
                return None
            for (start, codes), value in zip(self._row_slots, values, strict=True):
                if codes is not None:
                    code = codes.get(value) if type(value) is str else None
                    if code is None:
                        return None
                    out[i, start + code] = 1.0
                elif (type(value) is float and math.isfinite(value)) or (
                    type(value) is int and abs(value) <= _EXACT_INT
                ):
                    out[i, start] = value
                else:
                    return None
        return out

    def _aligned(self, X: Any, name: str) -> Any:
        frame, named = _as_frame(X, name)
        expected = [c.name for c in self.columns_]
        if named and self.named_:
            missing = [c for c in expected if c not in frame.columns]
            extra = [c for c in frame.columns if c not in expected]
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing column(s) {missing}")
                if extra:
                    parts.append(f"unexpected column(s) {extra}")
                raise ValueError(f"{name} does not have the training columns: {'; '.join(parts)}")
            return frame[expected]
        if frame.shape[1] != len(expected):
            raise ValueError(
                f"{name} has {frame.shape[1]} features, but MemAEDetector is expecting {len(expected)} "
                f"features as input ({_preview(expected)})"
            )
        frame.columns = expected
        return frame

    def summary(self, scoring: dict[str, Any] | None = None) -> str:
        """A table of the columns and what was done to each (``memae info`` prints it)."""
        scaling = (scoring or {}).get("preprocessing", "?")
        width = max(len(c.name) for c in self.columns_)
        lines = [
            f"columns: {self.n_features_in_} in, {len(self.feature_names_out_)} features to the model "
            f"(continuous columns scaled: {scaling})"
        ]
        lines += [f"  {c.name:<{width}}  {c.role:<11}  {c.describe()}" for c in self.columns_]
        return "\n".join(lines)

    # --- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (a checkpoint stores it; :meth:`from_dict` restores it)."""
        return {
            "params": {
                "log1p": self.log1p if isinstance(self.log1p, str) else list(self.log1p),
                "max_categories": self.max_categories,
                "impute": self.impute,
            },
            "named": self.named_,
            "columns": [{**asdict(c), "categories": list(c.categories)} for c in self.columns_],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TableEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict`'s output (names the bad field)."""
        try:
            params = state["params"]
            encoder = cls(
                log1p=params["log1p"], max_categories=int(params["max_categories"]), impute=params["impute"]
            )
            plans = []
            for column in state["columns"]:
                role = column["role"]
                if role not in ("categorical", "binary", "continuous", "constant"):
                    raise ValueError(f"unknown column role {role!r}")
                plans.append(
                    ColumnPlan(
                        str(column["name"]),
                        role,
                        tuple(str(c) for c in column["categories"]),
                        bool(column["log"]),
                        column["fill"],
                    )
                )
            named = bool(state["named"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"table preprocessing state is incomplete or malformed: {err!r}") from err
        encoder._set_plans(plans, named)
        return encoder

    def _set_plans(self, plans: list[ColumnPlan], named: bool) -> None:
        self.columns_: tuple[ColumnPlan, ...] = tuple(plans)
        self.named_ = named
        self.feature_names_in_ = np.array([c.name for c in plans], dtype=object)
        self.n_features_in_ = len(plans)
        out, continuous, log = [], [], []
        for plan in plans:
            names = (
                [f"{plan.name}={c}" for c in plan.categories] if plan.role == "categorical" else [plan.name]
            )
            out += names
            continuous += [plan.role in ("continuous", "constant")] * len(names)
            log += [plan.log] * len(names)
        self.feature_names_out_ = np.array(out, dtype=object)
        # encode_rows' map of each column to its first feature (and its categories' offsets)
        slots, start = [], 0
        for plan in plans:
            codes = {c: k for k, c in enumerate(plan.categories)} if plan.role == "categorical" else None
            slots.append((start, codes))
            start += len(plan.categories) if codes is not None else 1
        self._row_slots: tuple[tuple[int, dict[str, int] | None], ...] = tuple(slots)
        self.continuous_mask_ = np.array(continuous, dtype=bool)
        self.log_mask_ = np.array(log, dtype=bool)


def fit_scaling(
    encoded: np.ndarray, continuous: np.ndarray, log: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Offset and scale (float64) per encoded feature: learnt on the continuous features
    (after their log), 0 and 1 for the 0/1 features. Constant features get scale 1.

    ``method``: ``standard`` (mean, standard deviation), ``bounded`` (mean, and the standard
    deviation or a :data:`BOUND`-th of the range, whichever is larger: every training value
    then lies within ±``BOUND`` of the mean; most columns, whose range exceeds four standard
    deviations, are scaled by their range, and a column that is nearly constant with rare
    spikes, such as a count of failed logins, no longer turns each spike into a value of
    100; a column spread evenly keeps its standard deviation),
    ``robust`` (median, interquartile range; the standard deviation where the IQR is 0),
    ``minmax`` (minimum, range) or ``none`` (0 and 1). Statistics are taken on values divided
    by the column's largest magnitude, so a fill value of 1e20 (or 1e300) never makes a scale infinite.
    """
    if method not in SCALINGS:
        raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, got {method!r}")
    n = encoded.shape[1]
    offset, scale = np.zeros(n), np.ones(n)
    for j in np.nonzero(continuous)[0]:
        x = slog1p(encoded[:, j]) if log[j] else encoded[:, j]
        if method == "none":
            continue
        magnitude = float(np.max(np.abs(x)))
        if magnitude == 0.0:
            continue
        u = x / magnitude
        if method in ("standard", "bounded"):
            center, spread = u.mean(), u.std()
            if method == "bounded":
                spread = max(spread, (u.max() - u.min()) / BOUND)
        elif method == "robust":
            q25, center, q75 = np.percentile(u, [25, 50, 75])
            spread = q75 - q25 if q75 > q25 else u.std()
        else:
            center, spread = u.min(), u.max() - u.min()
        offset[j] = center * magnitude
        spread *= magnitude
        scale[j] = spread if spread > 0 and np.isfinite(spread) else 1.0
    return offset, scale


def apply_scaling(
    encoded: np.ndarray, log: np.ndarray | None, offset: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """The model's input: signed log1p where ``log``, then ``(x - offset) / scale``, clipped to
    ±:data:`CLIP` (float32)."""
    x = np.asarray(encoded, dtype=np.float64)
    if log is not None and log.any():
        x = np.where(log, slog1p(x), x)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (x - offset) / scale
    return np.clip(scaled, -CLIP, CLIP).astype(np.float32)


def _as_frame(X: Any, name: str = "X") -> tuple[Any, bool]:
    """``X`` as a DataFrame and whether its column names are its own."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        frame = X.copy(deep=False)
        frame.columns = [str(c) for c in frame.columns]
        return frame.reset_index(drop=True).infer_objects(), True
    from memae.validation import dense_array

    array = dense_array(X, name)
    if array.ndim != 2:
        hint = ". Reshape your data: X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one sample"
        raise ValueError(
            f"{name} must be 2-D (N, features), got {array.ndim}-D shape {array.shape}"
            + (hint if array.ndim == 1 else "")
        )
    if np.iscomplexobj(array):
        raise ValueError(
            f"{name} must hold real numbers, got dtype {array.dtype}: Complex data not supported"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: got shape {array.shape}, expected at least one sample")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={array.shape}) while a minimum of 1 is required.")
    frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
    return frame.infer_objects(), False  # numbers held as Python objects become numeric columns


def _is_numeric(values: Any) -> bool:
    import pandas as pd

    return (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)) and not isinstance(
        values.dtype, pd.CategoricalDtype
    )


def _as_text(values: Any) -> np.ndarray:
    return np.array([str(v) for v in values.tolist()], dtype=object)


def heavy_tailed(x: np.ndarray) -> bool:
    """Whether a column goes through log1p under ``log1p="auto"``: non-negative, reaching at
    least 10 (so rates in [0, 1] stay linear), with a skewness above 2 (bytes, counts)."""
    if x.min() < 0 or x.max() < _LOG_MIN_MAX:
        return False
    u = x / x.max()
    sd = u.std()
    if sd == 0:
        return False
    skew = float(np.mean(((u - u.mean()) / sd) ** 3))
    return skew > _LOG_SKEW


def _preview(names: list[str]) -> str:
    return ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
