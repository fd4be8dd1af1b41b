"""``memae train-video`` and ``memae score-video``: the video faces of the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from memae.checkpoint import atomic_write
from memae.paths import check_output_folder, check_outputs


def add_parsers(sub: Any) -> None:
    """Add the two sub-commands to the ``memae`` sub-parsers."""
    train = sub.add_parser(
        "train-video",
        help="train a video model (a dataset's training split, or your own normal videos)",
        description="Train on the normal clips of a benchmark dataset or of your own videos / frame folders.",
    )
    train.add_argument(
        "--config", default="ped2-cpu", help="shipped config name or YAML file (default: ped2-cpu)"
    )
    src = train.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="ucsd_ped2, ucsd_ped1, avenue or shanghaitech (under the data root)")
    src.add_argument("--videos", nargs="+", help="your normal training videos or frame folders")
    train.add_argument("--data-dir", help="data root (default: $MEMAE_DATA, else ~/.cache/memae/data)")
    train.add_argument("--variant", help="variant to train (default: the config's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, help="override the config's epochs")
    train.add_argument("--device", help="override the config's device (cpu, cuda, auto)")
    train.add_argument("--out", required=True, help="checkpoint to write (e.g. ped2.memae)")

    score = sub.add_parser(
        "score-video",
        help="score a video file or frame folder with a trained video model",
        description="Writes scores.csv (per frame), scores.png and error-map overlays of the most "
        "anomalous frames.",
    )
    score.add_argument("checkpoint", help="a model written by `memae train-video`")
    score.add_argument("video", help="a video file (anything FFmpeg reads) or a folder of frame images")
    score.add_argument("--out", required=True, help="folder for scores.csv, scores.png and overlays/")
    score.add_argument(
        "--overlays",
        type=int,
        default=8,
        help="error-map overlays of the K most anomalous frames, at the video's own resolution",
    )
    score.add_argument(
        "--threshold",
        type=float,
        help="flag frames whose clip error e_u exceeds this (raw error units; default: the threshold "
        "learnt from the training videos)",
    )
    score.add_argument("--device", default="cpu")


def train_video(args: argparse.Namespace) -> int:
    from memae.data.paths import data_dir
    from memae.data.video import user_video
    from memae.reproduce.video import video_sets
    from memae.video.clips import FrameStore
    from memae.video.config import load_experiment
    from memae.video.experiment import learn_video_threshold, save_video_model, train_video_model

    inputs = {"the --config file": args.config, **{f"the video {v}": v for v in args.videos or []}}
    check_outputs({"--out": args.out}, inputs)
    experiment = load_experiment(args.config)
    if args.variant:
        experiment = experiment.with_model(variant=args.variant)
    if args.epochs:
        experiment = experiment.with_train(epochs=args.epochs)
    if args.device:
        experiment = experiment.with_train(device=args.device)
    experiment = experiment.with_train(progress=True)
    videos = (
        video_sets(args.dataset, data_dir(args.data_dir))[0].videos
        if args.dataset
        else [user_video(p) for p in args.videos]
    )
    store = FrameStore.decode(videos, experiment.frames.size, workers=2)
    print(
        f"decoded {store.n_frames} frames of {len(store)} videos; training {experiment.train.epochs} epochs"
    )
    trained = train_video_model(experiment, store, seed=args.seed)
    trained = learn_video_threshold(trained, store, next(trained.model.parameters()).device)
    path = save_video_model(args.out, trained)
    print(
        f"trained {experiment.model.variant} ({experiment.name}) on {store.n_frames} frames of "
        f"{len(store)} videos in {trained.train_seconds:.0f} s; final loss "
        f"{trained.history.train_loss[-1]:.5g}; threshold {trained.threshold:.5g} (99th percentile "
        f"of the training frames' errors); saved {path}"
    )
    return 0


def score_video(args: argparse.Namespace) -> int:
    from PIL import Image

    from memae.data.video import frames_at, to_unit_range, user_video
    from memae.video.clips import FrameStore
    from memae.video.experiment import load_video_model
    from memae.video.figures import overlay, score_plot
    from memae.video.scoring import error_maps, normality

    inputs = {"the checkpoint": args.checkpoint, "the video": args.video}
    check_output_folder("--out", args.out, ["scores.csv", "scores.png"], inputs)
    trained = load_video_model(args.checkpoint, device=args.device)
    experiment = trained.experiment
    clip_len = experiment.frames.clip_len
    source = user_video(args.video)
    store = FrameStore.decode([source], experiment.frames.size)
    frames = store.frames[0]
    if len(frames) < clip_len:
        raise ValueError(f"{args.video} has {len(frames)} frames; the model needs at least {clip_len}")
    index, errors = trained.frame_errors(frames, args.device)
    p = normality(errors)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threshold = args.threshold if args.threshold is not None else trained.threshold
    flagged = errors > threshold if threshold is not None else np.zeros(len(errors), bool)
    lines = ["frame,error,normality,anomaly_score,flagged"]
    lines += [
        f"{u},{e:.8g},{q:.6f},{1 - q:.6f},{int(f)}"
        for u, e, q, f in zip(index, errors, p, flagged, strict=True)
    ]
    atomic_write(out / "scores.csv", lambda t: Path(t).write_text("\n".join(lines) + "\n"))
    score_plot(
        index,
        errors,
        out / "scores.png",
        threshold=threshold,
        title=f"{store.names[0]}: clip reconstruction error per frame ({experiment.name})",
    )
    top = sorted(np.argsort(errors)[::-1][: max(args.overlays, 0)].tolist())
    if top:
        chosen = [int(index[i]) for i in top]
        maps, _ = error_maps(trained.model, frames, chosen, clip_len, args.device)
        vmax = float(np.percentile(maps, 99.5)) or 1.0
        originals = frames_at(source, chosen)  # the error maps go over the frames as recorded
        (out / "overlays").mkdir(exist_ok=True)
        for u, m in zip(chosen, maps, strict=True):
            frame = originals[u]
            heat = Image.fromarray(m.astype(np.float32))  # mode "F"
            heat = heat.resize((frame.shape[1], frame.shape[0]), Image.Resampling.BILINEAR)
            image = Image.fromarray(overlay(to_unit_range(frame), np.asarray(heat), vmax))
            image.save(out / "overlays" / f"frame{u:06d}.png")
    print(
        f"scored {len(errors)} frames of {store.names[0]}; wrote {out / 'scores.csv'}, "
        f"{out / 'scores.png'} and {len(top)} overlays"
        + (
            f"; {int(flagged.sum())} frames over the threshold {threshold:.5g}"
            if threshold is not None
            else "; no threshold (the checkpoint has none: give --threshold)"
        )
    )
    return 0


__all__ = ["add_parsers", "score_video", "train_video"]
