import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from memae import MemAEDetector
from memae.checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    metadata_digest,
    read_metadata,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> str:
    X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    det = MemAEDetector(epochs=1, random_state=0, device="cpu").fit(X)
    return str(det.save(tmp_path_factory.mktemp("ckpt") / "model.memae"))


class _Exploit:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("touch pwned-by-checkpoint",))


def test_pickled_payload_is_refused_without_running_it(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.memae"
    path.write_bytes(pickle.dumps(_Exploit()))
    torch.save({"x": _Exploit()}, tmp_path / "evil2.memae")
    for bad in (path, tmp_path / "evil2.memae"):
        with pytest.raises(CheckpointError):
            MemAEDetector.load(bad)
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def test_truncated_checkpoint_is_refused(saved: str, tmp_path) -> None:
    data = Path(saved).read_bytes()
    cut = tmp_path / "cut.memae"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable memae checkpoint"):
        MemAEDetector.load(cut)


def _rewrite(saved: str, tmp_path, edit) -> str:  # type: ignore[no-untyped-def]
    tensors, meta = load_checkpoint(saved)
    edit(tensors, meta)
    meta["metadata_sha256"] = metadata_digest(meta)  # a well-formed file that says something else
    out = tmp_path / "edited.memae"
    save_file(tensors, str(out), metadata={"memae": json.dumps(meta)})
    return str(out)


def test_newer_format_is_refused_with_upgrade_hint(saved: str, tmp_path) -> None:
    path = _rewrite(saved, tmp_path, lambda t, m: m.update(format_version=99))
    with pytest.raises(CheckpointError, match="upgrade memae"):
        MemAEDetector.load(path)


def test_mismatched_backbone_is_refused(saved: str, tmp_path) -> None:
    def other_backbone(tensors, meta):  # type: ignore[no-untyped-def]
        meta["model_config"]["backbone"] = "kddcup"

    with pytest.raises(CheckpointError, match="does not match"):
        MemAEDetector.load(_rewrite(saved, tmp_path, other_backbone))


def test_mismatched_input_shape_is_refused(saved: str, tmp_path) -> None:
    def other_shape(tensors, meta):  # type: ignore[no-untyped-def]
        meta["model_config"]["input_shape"] = [9]

    with pytest.raises(CheckpointError, match="does not match"):
        MemAEDetector.load(_rewrite(saved, tmp_path, other_shape))


def test_plain_safetensors_without_metadata_is_refused(tmp_path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="without memae metadata"):
        load_checkpoint(path)


def test_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint file at"):
        load_checkpoint(tmp_path / "nope.memae")


def test_interrupted_write_keeps_the_previous_file(saved: str, tmp_path) -> None:
    path = tmp_path / "model.memae"
    save_checkpoint(path, {"w": torch.ones(3)}, {"kind": "test"})

    def crash(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    torch.testing.assert_close(load_file(str(path))["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.memae"]


def test_a_flipped_byte_never_loads_as_a_different_model(saved: str, tmp_path) -> None:
    data = Path(saved).read_bytes()
    tensors, meta = load_checkpoint(saved)
    header_end = 8 + int.from_bytes(data[:8], "little")
    positions = sorted({*range(0, len(data), 53), 1, 9, header_end - 1, header_end, len(data) - 1})
    refused = 0
    for position in positions:
        corrupt = bytearray(data)
        corrupt[position] ^= 0x01
        path = tmp_path / "flipped.memae"
        path.write_bytes(bytes(corrupt))
        try:
            got_tensors, got_meta = load_checkpoint(path)
        except CheckpointError:
            refused += 1
            continue
        # A flip can only load where it changes nothing: the last digit of a long float in
        # the JSON that parses to the same double.
        assert got_meta == meta, position
        assert got_tensors.keys() == tensors.keys()
        for name, tensor in tensors.items():
            torch.testing.assert_close(got_tensors[name], tensor, rtol=0, atol=0)
    assert refused >= len(positions) - 3


def test_a_version_2_file_without_digests_is_refused(saved: str, tmp_path) -> None:
    tensors, meta = load_checkpoint(saved)
    del meta["tensors_sha256"]
    path = tmp_path / "stripped.memae"
    save_file(tensors, str(path), metadata={"memae": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="lack the digests"):
        load_checkpoint(path)


def test_tensor_corruption_in_the_middle_is_named(saved: str, tmp_path) -> None:
    data = bytearray(Path(saved).read_bytes())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "middle.memae"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is corrupt: its tensors do not match"):
        load_checkpoint(path)


def test_edited_metadata_is_refused(saved: str, tmp_path) -> None:
    tensors, meta = load_checkpoint(saved)
    meta["scoring"]["threshold"] = 0.0  # an edit that keeps the JSON valid
    path = tmp_path / "edited.memae"
    save_file(tensors, str(path), metadata={"memae": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="is corrupt: its metadata do not match"):
        read_metadata(path)


def test_read_metadata_does_not_need_the_tensors(saved: str) -> None:
    meta = read_metadata(saved)
    assert meta["kind"] == "detector" and len(meta["tensors_sha256"]) == 64


def test_version_1_checkpoints_without_digests_still_load(saved: str, tmp_path) -> None:
    tensors, meta = load_checkpoint(saved)
    for key in ("metadata_sha256", "tensors_sha256"):
        del meta[key]
    meta["format_version"] = 1
    path = tmp_path / "old.memae"
    save_file(tensors, str(path), metadata={"memae": json.dumps(meta)})
    assert MemAEDetector.load(path).threshold_ == MemAEDetector.load(saved).threshold_


def test_unknown_config_keys_in_a_checkpoint_are_named(saved: str, tmp_path) -> None:
    def extra_key(tensors, meta):  # type: ignore[no-untyped-def]
        meta["model_config"]["colour"] = "blue"

    with pytest.raises(CheckpointError, match=r"unknown ModelConfig keys \['colour'\]"):
        MemAEDetector.load(_rewrite(saved, tmp_path, extra_key))
