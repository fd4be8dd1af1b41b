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


def test_a_record_names_the_data_setting_not_this_machines_folder():
    import argparse

    argv = ["--data-dir", "/srv/data", "--out", "r.json", "--data-dir=/mnt/x"]
    command = harness.command_line("benchmarks/b.py", argv)
    assert command == "python benchmarks/b.py --data-dir $MEMAE_DATA --out r.json --data-dir=$MEMAE_DATA"
    args = argparse.Namespace(data_dir="/srv/data", seed=0)
    assert harness.settings(args) == {"data_dir": "$MEMAE_DATA", "seed": 0}
    assert args.data_dir == "/srv/data"  # the script's own options are left as they were
    assert harness.settings(argparse.Namespace(data_dir=None))["data_dir"] is None
