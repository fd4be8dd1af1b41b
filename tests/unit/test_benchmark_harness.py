"""The benchmarks' shared record writer."""

import json

import pytest

from tests.fixtures import load_benchmark

harness = load_benchmark("harness")


def test_a_record_is_written_whole_and_a_refused_one_leaves_the_previous(tmp_path):
    out = tmp_path / "records" / "bench.json"
    harness.write_json(out, {"speedup": 1.5})
    assert json.loads(out.read_text()) == {"speedup": 1.5}

    with pytest.raises(TypeError):
        harness.write_json(out, {"speedup": object()})
    assert json.loads(out.read_text()) == {"speedup": 1.5}
    assert sorted(p.name for p in out.parent.iterdir()) == ["bench.json"]
