"""The fitted table preprocessing: column roles, encoding, scaling, and the detector on tables."""

import numpy as np
import pytest

from memae import MemAEDetector
from memae.preprocessing import BOUND, TableEncoder, UnseenCategoryWarning, apply_scaling, fit_scaling

pd = pytest.importorskip("pandas")
FAST = {"epochs": 2, "batch_size": 16, "random_state": 0, "device": "cpu"}


def _table(n: int = 60, seed: int = 0) -> "pd.DataFrame":
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "proto": rng.choice(["tcp", "udp", "icmp"], n),
            "flag": rng.integers(0, 2, n),
            "bytes": np.round(rng.lognormal(4, 2.5, n)),
            "rate": rng.random(n),
            "zero": np.zeros(n),
        }
    )


def test_roles_are_learnt_per_column() -> None:
    enc = TableEncoder().fit(_table())
    roles = {c.name: (c.role, c.log) for c in enc.columns_}
    assert roles == {
        "proto": ("categorical", False),
        "flag": ("binary", False),
        "bytes": ("continuous", True),
        "rate": ("continuous", False),
        "zero": ("constant", False),
    }
    assert enc.feature_names_out_.tolist() == [
        "proto=icmp",
        "proto=tcp",
        "proto=udp",
        "flag",
        "bytes",
        "rate",
        "zero",
    ]
    encoded = enc.encode(_table())
    assert set(np.unique(encoded[:, :4])) <= {0.0, 1.0} and (encoded[:, :3].sum(axis=1) == 1).all()


def test_one_hot_and_binary_features_stay_0_1_after_scaling() -> None:
    frame = _table()
    enc = TableEncoder().fit(frame)
    encoded = enc.encode(frame)
    for method in ("bounded", "standard", "robust", "minmax"):
        offset, scale = fit_scaling(encoded, enc.continuous_mask_, enc.log_mask_, method)
        x = apply_scaling(encoded, enc.log_mask_, offset, scale)
        np.testing.assert_array_equal(x[:, :4], encoded[:, :4])
        assert abs(float(np.median(x[:, 4]))) < 2  # the log-scaled bytes sit near 0


def test_bounded_scaling_keeps_training_spikes_within_the_bound() -> None:
    rng = np.random.default_rng(0)
    spikes = np.zeros(2000)
    spikes[:3] = [1.0, 2.0, 5.0]  # a count that is almost always 0 (failed logins)
    frame = pd.DataFrame({"uniform": rng.uniform(size=2000), "spikes": spikes})
    enc = TableEncoder(log1p="none").fit(frame)
    encoded = enc.encode(frame)
    mask, log = enc.continuous_mask_, enc.log_mask_
    standard = apply_scaling(encoded, log, *fit_scaling(encoded, mask, log, "standard"))
    bounded = apply_scaling(encoded, log, *fit_scaling(encoded, mask, log, "bounded"))
    # a uniform column spans 3.5 standard deviations: within the bound, scaled as by standard
    np.testing.assert_allclose(bounded[:, 0], standard[:, 0], rtol=1e-6)
    # the spike column: 40 standard deviations under standard scaling, at most BOUND here
    # (its scale is a BOUND-th of its range)
    assert np.abs(standard[:, 1]).max() > 40
    assert np.abs(bounded[:, 1]).max() <= BOUND + 1e-6
    # a value beyond the training range still grows with it
    offset, scale = fit_scaling(encoded, mask, log, "bounded")
    far = apply_scaling(np.array([[0.5, 100.0]]), log, offset, scale)
    assert far[0, 1] > 10 * BOUND


def test_tables_default_to_bounded_scaling() -> None:
    frame = pd.DataFrame({"a": np.r_[np.zeros(60), 9.0], "b": np.arange(61.0)})
    det = MemAEDetector(**FAST).fit(frame)
    assert det.preprocessing_ == "bounded"
    with pytest.raises(ValueError, match="'bounded' is for tables"):
        MemAEDetector(preprocessing="bounded", **FAST).fit(np.zeros((8, 1, 4, 4), np.float32))


def test_unseen_category_is_all_zeros_and_counted() -> None:
    enc = TableEncoder().fit(_table())
    test = _table(4, seed=1)
    test.loc[[0, 2], "proto"] = "sctp"
    with pytest.warns(UnseenCategoryWarning, match=r"column 'proto': 2 value\(s\) never seen in training"):
        encoded = enc.encode(test)
    assert encoded[[0, 2], :3].sum() == 0 and (encoded[[1, 3], :3].sum(axis=1) == 1).all()


def test_too_many_categories_are_refused_naming_the_column() -> None:
    frame = _table().assign(session=[f"s{i}" for i in range(60)])
    with pytest.raises(
        ValueError, match=r"column 'session' has 60 distinct values, more than max_categories=50"
    ):
        TableEncoder(max_categories=50).fit(frame)


def test_reordered_columns_are_realigned_and_missing_or_extra_named() -> None:
    frame = _table()
    det = MemAEDetector(**FAST).fit(frame)
    shuffled = frame[["rate", "zero", "bytes", "proto", "flag"]]
    np.testing.assert_array_equal(det.decision_function(shuffled), det.decision_function(frame))
    assert det.feature_names_in_.tolist() == list(frame.columns) and det.n_features_in_ == 5
    with pytest.raises(
        ValueError, match=r"missing column\(s\) \['rate'\]; unexpected column\(s\) \['speed'\]"
    ):
        det.decision_function(frame.rename(columns={"rate": "speed"}))


def test_huge_fill_value_keeps_every_scale_finite() -> None:
    rng = np.random.default_rng(0)
    column = rng.normal(size=200)
    column[7] = 1e20  # a fill value for "unknown"
    frame = pd.DataFrame({"a": column, "b": rng.normal(size=200)})
    enc = TableEncoder(log1p="none").fit(frame)
    encoded = enc.encode(frame)
    for method in ("bounded", "standard", "robust", "minmax"):
        offset, scale = fit_scaling(encoded, enc.continuous_mask_, enc.log_mask_, method)
        assert np.isfinite(offset).all() and np.isfinite(scale).all() and (scale > 0).all()
    # robust statistics ignore the fill value: column a keeps its unit spread
    offset, scale = fit_scaling(encoded, enc.continuous_mask_, enc.log_mask_, "robust")
    assert 0.5 < scale[0] < 3
    det = MemAEDetector(preprocessing="robust", log1p="none", **FAST).fit(frame)
    scores = det.decision_function(pd.DataFrame({"a": [0.0, 1e20], "b": [0.0, 0.0]}))
    assert np.isfinite(scores).all() and scores[1] > scores[0]


def test_nan_is_an_error_naming_the_column_unless_imputed() -> None:
    frame = _table()
    frame.loc[3, "rate"] = np.nan
    with pytest.raises(ValueError, match=r"column 'rate' has 1 missing value\(s\) \(NaN\).*impute='median'"):
        MemAEDetector(**FAST).fit(frame)
    det = MemAEDetector(impute="median", **FAST).fit(frame)
    fill = next(c.fill for c in det.table_.columns_ if c.name == "rate")
    assert fill == pytest.approx(float(frame["rate"].median()))
    assert np.isfinite(det.decision_function(frame)).all()


def test_constant_column_is_centred_so_a_change_stands_out() -> None:
    frame = _table()
    det = MemAEDetector(**FAST).fit(frame)
    changed = frame.assign(zero=5.0)
    assert (det.decision_function(changed) > det.decision_function(frame)).all()


def test_explicit_log1p_columns_and_none() -> None:
    frame = _table()
    assert not TableEncoder(log1p="none").fit(frame).log_mask_.any()
    enc = TableEncoder(log1p=["rate"]).fit(frame)
    assert [c.name for c in enc.columns_ if c.log] == ["rate"]
    with pytest.raises(ValueError, match=r"log1p names column\(s\) \['speed'\]"):
        TableEncoder(log1p=["speed"]).fit(frame)


def test_a_string_value_in_a_numeric_column_is_named() -> None:
    enc = TableEncoder().fit(_table())
    bad = _table(3, seed=2).astype({"rate": object})
    bad.loc[1, "rate"] = "fast"
    with pytest.raises(ValueError, match=r"column 'rate' held numbers in training, got 'fast' at row 1"):
        enc.encode(bad)


def test_a_table_model_round_trips_through_its_checkpoint(tmp_path) -> None:
    frame = _table()
    det = MemAEDetector(**FAST).fit(frame)
    det.save(tmp_path / "m.memae")
    same = MemAEDetector.load(tmp_path / "m.memae")
    np.testing.assert_array_equal(same.decision_function(frame), det.decision_function(frame))
    assert same.table_.to_dict() == det.table_.to_dict() and same.feature_names_in_.tolist() == list(
        frame.columns
    )
    assert same.scale_.dtype == np.float64


def test_numpy_arrays_are_tables_with_positional_columns() -> None:
    X = np.random.default_rng(0).normal(size=(40, 3))
    det = MemAEDetector(**FAST).fit(X)
    assert det.n_features_in_ == 3 and not hasattr(det, "feature_names_in_")
    np.testing.assert_array_equal(
        det.decision_function(pd.DataFrame(X, columns=list("abc"))), det.decision_function(X)
    )


def _records(frame: "pd.DataFrame") -> list[dict]:
    """Rows as JSON gives them: plain Python ints, floats and strings."""
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def test_plain_rows_encode_as_the_dataframe_of_them() -> None:
    enc = TableEncoder().fit(_table())
    test = _table(9, seed=2)
    rows = _records(test)
    rows[0]["rate"] = 3  # an int where training had floats
    rows[1] = dict(reversed(list(rows[1].items())))  # keys in another order
    expected = enc.encode(pd.DataFrame.from_records(rows))
    np.testing.assert_array_equal(enc.encode_rows(rows), expected)
    lists = [[row[c] for c in test.columns] for row in rows]
    np.testing.assert_array_equal(enc.encode_rows(lists), expected)
    np.testing.assert_array_equal(enc.encode_rows(lists), enc.encode(np.asarray(lists, dtype=object)))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"rate": "0.5"}, "a number given as text"),
        ({"rate": None}, "a missing value"),
        ({"rate": float("nan")}, "not a number"),
        ({"rate": float("inf")}, "infinite"),
        ({"flag": True}, "a boolean"),
        ({"bytes": 2**60}, "an integer beyond float precision"),
        ({"proto": "sctp"}, "a category never seen (warned about by encode)"),
        ({"proto": 3}, "a category that is not a string"),
        ({"extra": 1.0}, "an extra column"),
    ],
)
def test_rows_out_of_the_plain_kind_are_left_to_encode(change, why) -> None:
    enc = TableEncoder().fit(_table())
    rows = _records(_table(3, seed=3))
    rows[1].update(change)
    assert enc.encode_rows(rows) is None, why
    del rows[1]["proto"]
    assert enc.encode_rows(rows) is None, "a missing column"
    assert enc.encode_rows([[1.0, 2.0]]) is None, "a list row of another length"
    assert TableEncoder().fit(_table().to_numpy()).encode_rows(_records(_table(2))) is None, (
        "names, unnamed fit"
    )
