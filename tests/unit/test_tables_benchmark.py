"""The logic of the small-tables suite (benchmarks/tables.py) and of the detector's training
length for tables: splits, summaries and the size rule; nothing is timed."""

import numpy as np
import pytest

from memae.detector import TABLE_BATCH_RANGE, TABLE_EPOCH_RANGE, training_length
from tests.fixtures import load_benchmark


@pytest.fixture(scope="module")
def suite():
    return load_benchmark("tables")


def _task(suite, y: np.ndarray, normal: int, name: str = "toy"):
    X = np.arange(len(y) * 2, dtype=float).reshape(len(y), 2)
    return suite.Task(suite.Table(name, X, y, tuple(np.unique(y))), normal)


def test_split_trains_on_normal_rows_only_and_tests_on_the_rest(suite) -> None:
    y = np.repeat([0, 1, 2], [20, 7, 5])
    task = _task(suite, y, 0)
    train, test, labels = suite.split(task, seed=3)
    assert len(train) == 12 and len(test) == 8 + 12 == len(labels)
    assert labels.tolist() == [0] * 8 + [1] * 12
    train_rows = {tuple(r) for r in train}
    test_rows = [tuple(r) for r in test]
    assert not train_rows & set(test_rows)
    row_class = {tuple(r): c for r, c in zip(task.table.X, y, strict=True)}
    assert all(row_class[r] == 0 for r in train_rows)
    assert [row_class[r] != 0 for r in test_rows] == labels.astype(bool).tolist()
    again = suite.split(task, seed=3)
    np.testing.assert_array_equal(again[0], train)
    assert not np.array_equal(suite.split(task, seed=4)[0], train)


def test_summary_weighs_every_task_the_same_and_separates_check_tasks(suite) -> None:
    runs = [
        {"method": "m", "task": "wine:0", "seed": 0, "auc": 0.8, "fit_s": 1.0, "score_s": 0.0},
        {"method": "m", "task": "wine:0", "seed": 1, "auc": 0.6, "fit_s": 1.0, "score_s": 0.0},
        {"method": "m", "task": "iris:0", "seed": 0, "auc": 1.0, "fit_s": 3.0, "score_s": 0.0},
        {"method": "m", "task": "iris:1", "seed": 0, "auc": 0.5, "fit_s": 3.0, "score_s": 0.0},
    ]
    s = suite.summarise(runs, ["wine:0", "iris:0", "iris:1"])["m"]
    assert s["per_task"] == pytest.approx({"wine:0": 0.7, "iris:0": 1.0, "iris:1": 0.5})
    assert s["per_dataset"] == pytest.approx({"wine": 0.7, "iris": 0.75})
    assert s["mean_check"] == pytest.approx(0.7)  # wine is held back
    assert s["mean_tuning"] == pytest.approx(0.75)
    assert s["mean_all"] == pytest.approx((0.7 + 1.0 + 0.5) / 3)
    assert s["seconds_per_task"] == pytest.approx(2.0)


def test_training_length_follows_the_size_of_a_table() -> None:
    low_batch, high_batch = TABLE_BATCH_RANGE
    low_epochs, high_epochs = TABLE_EPOCH_RANGE
    small, large = training_length(30, table=True), training_length(400_000, table=True)
    assert small[0] == low_batch and large[0] == high_batch
    assert low_epochs <= large[1] <= small[1] <= high_epochs
    batches = [training_length(n, table=True)[0] for n in (10, 100, 1000, 10_000, 100_000)]
    assert batches == sorted(batches)
    # what the caller gives is kept; images and clips keep the fixed defaults
    assert training_length(500, table=True, batch_size=7, epochs=3) == (7, 3)
    assert training_length(500, table=False) == (64, 50)
