"""UCSD-Ped2 with the paper's configuration on one GPU, within a time budget.

    python benchmarks/gpu_ped2.py --data-dir DATA --budget 540 --results-dir results/gpu

``--device cpu`` runs the same steps on the CPU, for a dry run of the script on a small
config (``--config``) before a GPU's minutes are spent on it; the tests do that.

Decodes Ped2 at 256×256 once, trains ``ped2-paper`` MemAE (or ``--variant``) for as many
epochs as fit in the budget (the config asks for 60; the epochs that ran are recorded),
scores all 2,010 test frames, and writes the same records and JSON as
``memae reproduce table2`` (``<results-dir>/runs/table2/...``, ``<results-dir>/table2.json``)
plus the running time per frame (model only and end to end) in
``<results-dir>/video_runtime.json``. A short budget gives a partly trained model: the
record's ``config.train.epochs`` and ``train_seconds`` say how far it got.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from memae.config import get_variant
from memae.data.paths import data_dir
from memae.reproduce.records import RunKey, write_record
from memae.reproduce.tables import write_summary
from memae.reproduce.video import TABLE2, authors_alignment_auc, stores, video_sets
from memae.video.config import load_experiment
from memae.video.experiment import memory_usage, save_video_model, train_video_model
from memae.video.runtime import measure_runtime, record_runtime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--config", default="ped2-paper")
    parser.add_argument("--variant", default="memae")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for the whole script")
    parser.add_argument("--results-dir", default="results/gpu")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script is for a GPU machine (see benchmarks/video_runtime.py)")
    torch.backends.cudnn.benchmark = True
    root = data_dir(args.data_dir)
    results = Path(args.results_dir)
    experiment = load_experiment(args.config).with_model(variant=get_variant(args.variant).name)
    experiment = experiment.with_train(device=device)

    train, test = stores("ucsd_ped2", root, experiment.frames.size, workers=8)
    decoded = time.perf_counter() - start
    print(f"decoded {train.n_frames} + {test.n_frames} frames in {decoded:.0f} s", flush=True)

    # Keep ~90 s for scoring 2,010 frames and ~45 s for the timing runs.
    budget = args.budget - (time.perf_counter() - start) - 135.0
    trained = train_video_model(experiment, train, seed=args.seed, time_budget=max(budget, 1.0))
    print(
        f"trained {trained.experiment.train.epochs} epochs in {trained.train_seconds:.0f} s; "
        f"loss {trained.history.train_loss[-1]:.5g}",
        flush=True,
    )
    t0 = time.perf_counter()
    evaluation = trained.evaluate(test, device)
    eval_seconds = time.perf_counter() - t0
    auc = evaluation.auc()
    key = RunKey("table2", "ucsd_ped2", get_variant(args.variant).title, args.seed)
    write_record(
        results,
        key,
        {"auc": auc},
        trained.experiment.to_dict(),
        time.perf_counter() - start,
        {
            "config_name": experiment.name,
            "epochs_run": trained.experiment.train.epochs,
            "epochs_asked": experiment.train.epochs,
            "time_budget_seconds": args.budget,
            "auc_authors_alignment": authors_alignment_auc(evaluation, experiment.frames.clip_len),
            "auc_raw_errors": evaluation.raw_auc(),
            "memory_usage": memory_usage(trained.model, test, experiment.frames.clip_len),
            "train_seconds": round(trained.train_seconds, 2),
            "eval_seconds": round(eval_seconds, 2),
            "eval_seconds_per_frame": eval_seconds / evaluation.n_frames,
        },
    )
    write_summary(results, TABLE2)
    checkpoint = f"{experiment.name}-{args.variant}-seed{args.seed}.memae"
    save_video_model(results / "checkpoints" / checkpoint, trained)
    print(
        f"Ped2 frame AUC {auc:.4f} ({evaluation.n_scored} frames); scoring took {eval_seconds:.0f} s",
        flush=True,
    )

    video = video_sets("ucsd_ped2", root)[1].videos[0]
    row = measure_runtime(trained.experiment, video, trained.model, device, repeats=2)
    record_runtime(results, f"{experiment.name} @ {row['device']}", row)
    print(
        f"model {row['model_seconds_per_frame']:.4f} s/frame, end to end "
        f"{row['end_to_end_seconds_per_frame']:.4f} s/frame; total {time.perf_counter() - start:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
