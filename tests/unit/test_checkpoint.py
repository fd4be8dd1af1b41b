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
    tensors_digest,
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


@pytest.mark.parametrize("version", [1, 0, -3, True, "2", 2.0, None])
def test_old_negative_or_non_integer_versions_are_refused(saved: str, tmp_path, version) -> None:
    # Version 1 carried no digests: a tampered file relabelled as 1 must not load unchecked.
    tensors, meta = load_checkpoint(saved)
    tensors["scoring.offset"] = tensors["scoring.offset"] + 1.0
    for key in ("metadata_sha256", "tensors_sha256"):
        del meta[key]
    meta["format_version"] = version
    path = tmp_path / "old.memae"
    save_file(tensors, str(path), metadata={"memae": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=r"old\.memae has checkpoint format version .*expected"):
        MemAEDetector.load(path)


def test_an_empty_tensor_has_a_digest_and_round_trips(tmp_path) -> None:
    path = tmp_path / "empty.memae"
    save_checkpoint(path, {"e": torch.zeros(0, dtype=torch.float64), "w": torch.ones(2)}, {"kind": "test"})
    tensors, _ = load_checkpoint(path)
    assert tensors["e"].shape == (0,) and tensors["e"].dtype == torch.float64
    assert tensors_digest({"e": torch.zeros(0)}) != tensors_digest({"e": torch.zeros(0, 1)})


def test_a_detector_without_validation_scores_saves_and_loads(tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    det = MemAEDetector(epochs=1, batch_size=2, validation_fraction=0, random_state=0, device="cpu").fit(X)
    assert det.validation_scores_.size == 0
    loaded = MemAEDetector.load(det.save(tmp_path / "small.memae"))
    np.testing.assert_array_equal(loaded.decision_function(X), det.decision_function(X))


def _sealed(tensors, meta, path) -> str:  # type: ignore[no-untyped-def]
    """A file whose digests match its (edited) content, as a forger would write it."""
    meta["tensors_sha256"] = tensors_digest(tensors)
    meta["metadata_sha256"] = metadata_digest(meta)
    save_file(tensors, str(path), metadata={"memae": json.dumps(meta)})
    return str(path)


def test_a_config_declaring_more_than_the_file_holds_is_refused_before_allocating(
    saved: str, tmp_path
) -> None:
    tensors, meta = load_checkpoint(saved)
    meta["model_config"]["memory_size"] = 400_000_000  # 3.2 GB of slots beside a small file
    path = _sealed(tensors, meta, tmp_path / "big.memae")
    with pytest.raises(CheckpointError, match=r"big\.memae does not match its own config: .*memory\.memory"):
        MemAEDetector.load(path)


def test_a_config_declaring_a_huge_sample_is_refused(saved: str, tmp_path) -> None:
    tensors, meta = load_checkpoint(saved)
    meta["model_config"]["input_shape"] = [1, 100_000, 100_000]
    path = _sealed(tensors, meta, tmp_path / "wide.memae")
    with pytest.raises(CheckpointError, match=r"wide\.memae declares input_shape .* expected at most"):
        MemAEDetector.load(path)


def test_a_missing_field_is_named_with_the_file(saved: str, tmp_path) -> None:
    tensors, meta = load_checkpoint(saved)
    del meta["scoring"]["preprocessing"]
    path = _sealed(tensors, meta, tmp_path / "nofield.memae")
    with pytest.raises(CheckpointError, match=r"nofield\.memae lacks the field 'preprocessing'"):
        MemAEDetector.load(path)


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_metadata_is_refused(saved: str, tmp_path, depth: int) -> None:
    tensors, meta = load_checkpoint(saved)
    raw = json.dumps(meta)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    path = tmp_path / "deep.memae"
    save_file(tensors, str(path), metadata={"memae": raw})
    with pytest.raises(CheckpointError, match=r"deep\.memae's memae metadata is nested .*at most 32 levels"):
        read_metadata(path)


def test_unknown_config_keys_in_a_checkpoint_are_named(saved: str, tmp_path) -> None:
    def extra_key(tensors, meta):  # type: ignore[no-untyped-def]
        meta["model_config"]["colour"] = "blue"

    with pytest.raises(CheckpointError, match=r"unknown ModelConfig keys \['colour'\]"):
        MemAEDetector.load(_rewrite(saved, tmp_path, extra_key))
