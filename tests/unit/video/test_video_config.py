from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from memae.checkpoint import CheckpointError
from memae.config import ModelConfig
from memae.video.clips import FrameStore
from memae.video.config import (
    FrameConfig,
    ScoringConfig,
    VideoExperiment,
    experiment_from_dict,
    list_experiments,
    load_experiment,
)
from memae.video.experiment import load_video_model, memory_usage, save_video_model, train_video_model
from memae.video.scoring import frame_errors


def test_shipped_paper_config_has_the_papers_settings() -> None:
    exp = load_experiment("ped2-paper")
    assert exp.frames.input_shape == (1, 16, 256, 256)
    assert exp.model.backbone == "video" and exp.model.width == 1.0
    assert exp.model.memory_size == 2000
    assert exp.model.shrink_threshold == pytest.approx(0.0025)
    assert exp.model.entropy_weight == pytest.approx(0.0002)
    assert exp.train.batch_size == 14 and exp.train.lr == pytest.approx(1e-4)
    assert {"ped2-paper", "ped2-cpu"} <= set(list_experiments())


def test_shipped_cpu_config_is_smaller() -> None:
    exp = load_experiment("ped2-cpu")
    assert exp.frames.height * exp.frames.width < 256 * 256
    assert exp.model.backbone == "video-small" and exp.train.device == "cpu"


def test_experiment_round_trips_through_its_dict() -> None:
    exp = load_experiment("ped2-cpu").with_model(variant="ae", memory_size=100)
    again = experiment_from_dict(exp.to_dict())
    assert again == exp


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown video experiment keys"):
        experiment_from_dict({"name": "x", "frame": {}})
    with pytest.raises(ValueError, match="input_shape comes from 'frames'"):
        experiment_from_dict({"model": {"input_shape": [1, 2, 3]}})
    with pytest.raises(ValueError, match="alignment"):
        ScoringConfig(alignment="start")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction"):
        ScoringConfig(reduction="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clip_len"):
        FrameConfig(clip_len=0)
    with pytest.raises(ValueError, match="does not match"):
        VideoExperiment("x", FrameConfig(8, 8, 4), ModelConfig(input_shape=(1, 4, 16, 16)))
    with pytest.raises(ValueError, match="shipped configs"):
        load_experiment("ped9")
    with pytest.raises(FileNotFoundError):
        load_experiment(tmp_path / "missing.yaml")


def _tiny_experiment(variant: str = "memae") -> VideoExperiment:
    return experiment_from_dict(
        {
            "name": "tiny",
            "frames": {"height": 8, "width": 8, "clip_len": 4, "train_stride": 2},
            "model": {"backbone": "video-small", "variant": variant, "memory_size": 10, "similarity": "dot"},
            "train": {"epochs": 1, "batch_size": 3, "lr": 1e-3, "validation_fraction": 0.0, "device": "cpu"},
        }
    )


def _store() -> FrameStore:
    gen = torch.Generator().manual_seed(1)
    frames = tuple(torch.rand(n, 8, 8, generator=gen) * 2 - 1 for n in (12, 10))
    return FrameStore(("a", "b"), frames, (None, None))


def test_training_is_seeded_and_leaves_the_global_rng_alone() -> None:
    store = _store()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    one = train_video_model(_tiny_experiment(), store, seed=3)
    assert torch.equal(torch.rand(1), before)
    two = train_video_model(_tiny_experiment(), store, seed=3)
    for a, b in zip(one.model.state_dict().values(), two.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert one.experiment.train.seed == 3
    assert one.experiment.model.shrink_threshold == pytest.approx(1 / 10)  # resolved: λ = 1/N


def test_save_load_gives_identical_scores(tmp_path: Path) -> None:
    store = _store()
    trained = train_video_model(_tiny_experiment(), store, seed=0)
    path = save_video_model(tmp_path / "m.memae", trained)
    loaded = load_video_model(path)
    assert loaded.experiment == trained.experiment
    _, before = frame_errors(trained.model, store.frames[0], 4)
    _, after = frame_errors(loaded.model, store.frames[0], 4)
    np.testing.assert_array_equal(before, after)


def test_loading_another_kind_of_checkpoint_is_refused(tmp_path: Path) -> None:
    from memae.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "x.memae", {"w": torch.zeros(1)}, {"kind": "detector"})
    with pytest.raises(CheckpointError, match="expected a video model"):
        load_video_model(tmp_path / "x.memae")


def test_memory_usage_reports_zero_reads() -> None:
    store = _store()
    trained = train_video_model(_tiny_experiment(), store, seed=0)
    usage = memory_usage(trained.model, store, 4)
    assert 0 <= usage["zero_read_fraction"] <= 1 and 0 < usage["slots_used_fraction"] <= 1
    # Every weight below λ: every read is zero.
    trained.model.memory.shrink_threshold = 0.99
    assert memory_usage(trained.model, store, 4)["zero_read_fraction"] == 1.0
    assert memory_usage(train_video_model(_tiny_experiment("ae"), store).model, store, 4) == {}


def test_time_budget_stops_after_the_epochs_that_fit() -> None:
    exp = _tiny_experiment().with_train(epochs=50)
    trained = train_video_model(exp, _store(), seed=0, time_budget=1e-6)
    assert trained.experiment.train.epochs == 1 == len(trained.history.train_loss)
    full = train_video_model(exp.with_train(epochs=2), _store(), seed=0, time_budget=1e6)
    assert full.experiment.train.epochs == 2


def test_runtime_is_measured_per_scored_frame_and_recorded(tmp_path: Path) -> None:
    import json

    from video_formats import frames_of, write_images

    from memae.data.video import VideoSource
    from memae.video.runtime import measure_runtime, record_runtime

    paths = write_images(tmp_path / "v", frames_of(9, 0), [f"{k:03d}.png" for k in range(9)])
    row = measure_runtime(_tiny_experiment(), VideoSource("v", tuple(paths)), device="cpu", max_frames=7)
    assert row["frames"] == 7 and row["clips"] == 7 - 4 + 1
    assert 0 < row["model_seconds_per_frame"] <= row["end_to_end_seconds_per_frame"]
    assert row["end_to_end_frames_per_second"] == pytest.approx(1 / row["end_to_end_seconds_per_frame"])
    record_runtime(tmp_path, "tiny @ cpu", row)
    record_runtime(tmp_path, "other", row)
    table = json.loads((tmp_path / "video_runtime.json").read_text())
    assert set(table) == {"tiny @ cpu", "other"} and "machine" in table["other"]


def test_a_run_recorded_before_a_scoring_field_existed_still_matches_its_config() -> None:
    from memae.reproduce.video import _same

    exp = load_experiment("ped2-cpu")
    old = exp.to_dict()
    del old["scoring"]["patch_size"]
    assert _same(old, exp.to_dict())
    assert not _same(old, exp.with_model(memory_size=100).to_dict())
    assert not _same({"frames": {"height": -1}}, exp.to_dict())
