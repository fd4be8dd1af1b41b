"""Request bodies as the model's input: the same tensors as the detector's own preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from memae.detector import MemAEDetector
from memae.serve.config import Limits
from memae.serve.inputs import RequestError, batch_join, json_samples, prepared, read_json


@pytest.fixture(scope="module")
def detector() -> MemAEDetector:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.lognormal(size=64), "b": rng.normal(size=64), "proto": rng.choice(["tcp", "udp"], 64)}
    )
    return MemAEDetector(epochs=1, batch_size=32, impute="median", random_state=0).fit(frame)


def test_plain_rows_come_prepared_as_the_detector_prepares_their_frame(detector) -> None:
    rows = [{"a": 1.5, "b": -2, "proto": "udp"}, {"proto": "tcp", "b": 0.25, "a": 30.0}]
    samples = json_samples(detector, rows, Limits())
    assert samples.data is not None
    model_input = batch_join(detector)([samples.data]).numpy()
    np.testing.assert_array_equal(model_input, detector.preprocess(pd.DataFrame.from_records(rows)))
    by_position = json_samples(detector, [[1.5, -2, "udp"], [30.0, 0.25, "tcp"]], Limits())
    np.testing.assert_array_equal(by_position.data, samples.data)
    # a batch of requests is scaled in one call: the same numbers, row by row
    joined = batch_join(detector)([by_position.data, samples.data[:1]]).numpy()
    np.testing.assert_array_equal(joined, np.concatenate([model_input, model_input[:1]]))


def test_other_rows_take_the_dataframe_path(detector) -> None:
    rows = [{"a": "1.5", "b": 2, "proto": "udp"}]  # a number as text
    samples = json_samples(detector, rows, Limits())
    assert samples.data is None
    np.testing.assert_array_equal(
        batch_join(detector)([prepared(detector, samples).data]).numpy(),
        detector.preprocess(pd.DataFrame.from_records(rows)),
    )


def test_a_request_without_a_column_is_refused_naming_it_even_with_impute(detector) -> None:
    samples = json_samples(detector, [{"a": 1.0, "proto": "tcp"}], Limits())
    with pytest.raises(RequestError, match=r"missing column\(s\) \['b'\]") as err:
        prepared(detector, samples)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[1, 2]", "got a list"),
        (b'{"rows": []}', "got an object with keys ['rows']"),
        (b'"text"', "got a JSON string"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_a_body_of_another_shape_is_named(detector, body, words) -> None:
    with pytest.raises(RequestError, match=r'expected a JSON object \{"data"|not valid JSON') as err:
        read_json(detector, body, Limits())
    assert words in err.value.message and err.value.status == 400


def test_the_maps_flag_is_read_from_the_body(detector) -> None:
    body = json.dumps({"data": [[1.0, 2.0, "tcp"]], "maps": True}).encode()
    samples, maps = read_json(detector, body, Limits())
    assert maps is True and samples.data is not None and samples.data.shape == (1, 4)  # one-hot proto
