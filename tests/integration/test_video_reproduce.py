"""Tables 2 and 4, the memory sweep and Figs 4-6 end to end on a tiny Ped2-layout dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from memae.reproduce.records import load_records
from memae.reproduce.tables import RunOptions, write_results_doc
from memae.reproduce.video import (
    TABLE2,
    TABLE4,
    run_memory_sweep,
    run_table2,
    run_table4,
    scoring_ablation,
)

TEST_GT = [(5, 9), (1, 4)]


def _write_ped2(root: Path) -> Path:
    rng = np.random.default_rng(0)
    base = root / "ucsd_ped2"
    y, x = np.mgrid[:16, :24]
    for split, n_videos in (("training", 2), ("testing", 2)):
        for v in range(1, n_videos + 1):
            folder = base / "ped2" / split / "frames" / f"{v:02d}"
            folder.mkdir(parents=True)
            for k in range(12):
                frame = 60 + 2 * x + y + 3 * k + rng.integers(0, 4, (16, 24))
                if split == "testing" and TEST_GT[v - 1][0] <= k + 1 <= TEST_GT[v - 1][1]:
                    frame[4:10, 6:14] = 250  # the anomaly: a bright block
                Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8)).convert("RGB").save(
                    folder / f"{k:03d}.jpg"
                )
    test = base / "UCSDped2" / "Test"
    test.mkdir(parents=True)
    (test / "UCSDped2.m").write_text(
        "TestVideoFile = {};\n"
        + "".join(f"TestVideoFile{{end+1}}.gt_frame = [{s}:{e}];\n" for s, e in TEST_GT)
    )
    for v, (s, e) in enumerate(TEST_GT, 1):
        masks = test / f"Test{v:03d}_gt"
        masks.mkdir()
        for k in range(12):
            mask = np.zeros((16, 24), np.uint8)
            if s <= k + 1 <= e:
                mask[4:10, 6:14] = 255
            Image.fromarray(mask).save(masks / f"{k + 1:03d}.png")
    return root


@pytest.fixture
def options(tmp_path: Path) -> RunOptions:
    config = {
        "name": "tiny",
        "frames": {"height": 8, "width": 8, "clip_len": 4, "train_stride": 1},
        "model": {"backbone": "video-small", "memory_size": 10, "similarity": "dot"},
        "train": {"epochs": 1, "batch_size": 6, "lr": 1e-3, "validation_fraction": 0.0, "device": "cpu"},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    return RunOptions(
        results_dir=tmp_path / "results",
        data_dir=_write_ped2(tmp_path / "data"),
        seeds=[0],
        progress=False,
        overrides={"config": str(tmp_path / "tiny.yaml"), "figures_dir": str(tmp_path / "docs" / "figures")},
    )


def test_video_tables_sweep_and_figures(options: RunOptions, tmp_path: Path) -> None:
    run_table2(options)
    summary = json.loads((options.results_dir / "table2.json").read_text())
    assert set(summary["ucsd_ped2"]) == {"AE", "MemAE-nonSpar", "MemAE"}
    for stats in summary["ucsd_ped2"].values():
        assert stats["n_runs"] == 1 and 0 <= stats["mean"] <= 1
    record = next(r for r in load_records(options.results_dir, "table2") if r["method"] == "MemAE")
    assert record["scoring"] == {
        "alignment": "center",
        "reduction": "l2",
        "frames_scored": 24,
        "frames_total": 24,
    }
    assert len(record["frame_scores"]["01"]["errors"]) == 12
    assert record["config"]["frames"]["height"] == 8 and record["config_name"] == "tiny"
    assert 0 <= record["memory_usage"]["zero_read_fraction"] <= 1

    # Resumable: a second call trains nothing and leaves the records as they were.
    before = {p: p.stat().st_mtime_ns for p in (options.results_dir / "runs").rglob("*.json")}
    run_table2(options)
    assert before == {p: p.stat().st_mtime_ns for p in (options.results_dir / "runs").rglob("*.json")}

    # Another config on the same results: refused, nothing rewritten.
    other = dict(options.overrides, config=str(tmp_path / "tiny-2ep.yaml"))
    config = yaml.safe_load((tmp_path / "tiny.yaml").read_text())
    config["train"]["epochs"] = 2
    (tmp_path / "tiny-2ep.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"3 recorded run\(s\).*train\.epochs: 1 -> 2"):
        run_table2(RunOptions(**{**options.__dict__, "overrides": other}))
    assert before == {p: p.stat().st_mtime_ns for p in (options.results_dir / "runs").rglob("*.json")}

    run_table4(options)
    table4 = load_records(options.results_dir, "table4")
    assert len(table4) == 6
    reused = {r["method"] for r in table4 if "reused_from" in r}
    assert reused == {"AE", "MemAE-nonSpar", "MemAE"}
    t2 = {(r["method"], r["seed"]): r["metrics"]["auc"] for r in load_records(options.results_dir, "table2")}
    for r in table4:
        if r["method"] in reused:
            assert r["metrics"]["auc"] == t2[(r["method"], r["seed"])]

    sweep = RunOptions(
        results_dir=options.results_dir,
        data_dir=options.data_dir,
        seeds=[0],
        progress=False,
        overrides={**options.overrides, "memory_sizes": [4, 10]},
    )
    run_memory_sweep(sweep)
    sizes = {r["config"]["model"]["memory_size"]: r for r in load_records(options.results_dir, "fig4_memory")}
    assert set(sizes) == {4, 10} and "reused_from" in sizes[10] and "reused_from" not in sizes[4]
    run_table4(options)  # regenerates the figures, now with the sweep

    # Re-scoring the checkpoints under the named options reproduces the recorded AUC and
    # the authors' alignment figure for the same option.
    ablation = scoring_ablation(options.results_dir, options.data_dir, patch_sizes=(4,))
    for r in load_records(options.results_dir, "table2"):
        row = ablation[f"ucsd_ped2 {r['method']} seed {r['seed']}"]
        assert row["center / l2"] == pytest.approx(r["metrics"]["auc"], abs=1e-6)
        assert row["authors [8:-7] / l2"] == pytest.approx(r["auc_authors_alignment"], abs=1e-6)
        assert row["center / l2 / no per-video min-max"] == pytest.approx(r["auc_raw_errors"], abs=1e-6)
        assert "center / patch-max 4px" in row

    figures = Path(options.overrides["figures_dir"])
    for name in ("fig4_memory_size.png", "fig5_ped2_normality.png", "fig6_ped2_error_maps.png"):
        assert (figures / name).stat().st_size > 1000
    doc = write_results_doc(options.results_dir, tmp_path / "docs" / "RESULTS.md").read_text()
    assert TABLE2.title in doc and TABLE4.title in doc
    assert "AUC (authors' [8:-7])" in doc and "| 4 |" in doc and "| center / patch-max 4px |" in doc


def test_gpu_ped2_script_dry_runs_on_the_cpu(options: RunOptions, tmp_path: Path) -> None:
    """``benchmarks/gpu_ped2.py`` has only minutes of a GPU when it gets one: its steps (decode,
    train within the budget, score, records, checkpoint, running time) run here on a tiny
    config with ``--device cpu``."""
    from tests.fixtures import load_benchmark

    script = load_benchmark("gpu_ped2")
    results = tmp_path / "gpu"
    script.main(
        [
            "--device",
            "cpu",
            "--data-dir",
            str(options.data_dir),
            "--config",
            options.overrides["config"],
            "--budget",
            "600",
            "--results-dir",
            str(results),
        ]
    )
    (record,) = load_records(results, "table2")
    assert record["method"] == "MemAE" and record["epochs_run"] == 1
    assert 0.0 <= record["metrics"]["auc"] <= 1.0
    assert set(json.loads((results / "table2.json").read_text())["ucsd_ped2"]) == {"MemAE"}
    runtime = json.loads((results / "video_runtime.json").read_text())
    assert any(key.startswith("tiny @ cpu") for key in runtime)
    assert (results / "checkpoints" / "tiny-memae-seed0.memae").is_file()
