"""Running time per frame of the video configurations on this machine (SPEC §6, video).

    python benchmarks/video_runtime.py --config ped2-cpu --threads 1
    python benchmarks/video_runtime.py --config ped2-paper --max-frames 24   # slow on a CPU

Scores one Ped2 test video (model only, and end to end from the JPEG files) and adds a row
to ``results/video_runtime.json``; ``memae reproduce report`` puts the table in RESULTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from memae.data.paths import data_dir
from memae.data.video import ucsd_auto
from memae.video.config import load_experiment
from memae.video.experiment import load_video_model
from memae.video.runtime import measure_runtime, record_runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ped2-cpu")
    parser.add_argument("--checkpoint", help="time a trained model (default: untrained weights, same cost)")
    parser.add_argument("--data-dir")
    parser.add_argument("--video", type=int, default=0, help="index of the Ped2 test video (default 0)")
    parser.add_argument("--max-frames", type=int, help="score only the first frames (for slow set-ups)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up pass (slow set-ups)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--results-dir", default="results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint:
        trained = load_video_model(args.checkpoint)
        experiment, model = trained.experiment, trained.model
    else:
        experiment, model = load_experiment(args.config), None
    video = ucsd_auto(data_dir(args.data_dir) / "ucsd_ped2", 2, "test").videos[args.video]
    row = measure_runtime(
        experiment, video, model, args.device, args.max_frames, args.repeats, not args.no_warmup
    )
    key = f"{experiment.name} @ {row['device']} ({row['torch_threads']} threads)"
    path = record_runtime(Path(args.results_dir), key, row)
    print(
        f"{key}: model {row['model_seconds_per_frame']:.4f} s/frame, end to end "
        f"{row['end_to_end_seconds_per_frame']:.4f} s/frame "
        f"({row['end_to_end_frames_per_second']:.1f} frames/s) "
        f"over {row['frames']} frames; wrote {path}"
    )


if __name__ == "__main__":
    main()
