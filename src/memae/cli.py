"""memae: memory-augmented autoencoders (MemAE) for anomaly detection on tables, images and video.

Every detector parameter is a flag (``--memory-size 100``); ``--config`` reads them from
YAML first. Any failure prints one line ``memae: error: ...`` and exits with status 1
(set MEMAE_TRACEBACK=1 to see the traceback too); an interrupt exits with status 130. No
command writes over one of its inputs (:mod:`memae.paths`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memae.checkpoint import atomic_write, read_metadata
from memae.io import SettingsError, load_settings, parse_settings
from memae.paths import check_output_folder, check_outputs

Handler = Callable[[argparse.Namespace], int]
_HANDLERS: dict[str, Handler] = {}


def _detector_params() -> dict[str, Any]:
    from memae.detector import MemAEDetector

    return {
        name: p.default
        for name, p in inspect.signature(MemAEDetector.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _scalar(text: str) -> Any:
    try:
        return parse_settings(text, repr(text))
    except SettingsError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _add_detector_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("detector parameters (override --config)")
    for name, default in _detector_params().items():
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"param_{name}",
            type=_scalar,
            default=None,
            metavar=type(default).__name__.upper() if default is not None else "VALUE",
            help=_FLAG_HELP.get(name, f"default: {default!r}"),
        )


#: flags whose command-line default differs from the detector's
_FLAG_HELP = {"verbose": "show a progress bar (default on the command line: true; --verbose false hides it)"}


def detector_params_from(args: argparse.Namespace) -> dict[str, Any]:
    """Detector parameters from ``--config`` YAML, overridden by explicit flags."""
    known = _detector_params()
    params: dict[str, Any] = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        loaded = load_settings(path)
        unknown = sorted(set(loaded) - set(known))
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; known keys: {sorted(known)}")
        params.update(loaded)
    for name in known:
        value = getattr(args, f"param_{name}", None)
        if value is not None:
            params[name] = value
    return params


def command(name: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        _HANDLERS[name] = fn
        return fn

    return wrap


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from memae.demo import DemoConfig, run_demo

    config = DemoConfig(**({"epochs": args.epochs} if args.epochs else {}))
    run_demo(args.out, config)
    return 0


@command("train")
def _train(args: argparse.Namespace) -> int:
    from memae.detector import MemAEDetector
    from memae.distributed import init_from_env, shared_seed
    from memae.io import load_array

    params = detector_params_from(args)
    # Under torchrun every rank trains its share (memae.distributed); rank 0 reports and saves.
    ctx = init_from_env()
    main_rank = ctx is None or ctx.is_main
    if ctx is not None and params.get("random_state") is None:
        params["random_state"] = shared_seed()
    params.setdefault("verbose", main_rank)
    state = Path(args.state or f"{args.out}.state")
    inputs = {"the data file": args.data, "the --val-data file": args.val_data, "the --config": args.config}
    check_outputs({"--out": args.out, "--state": state}, inputs)
    X = load_array(args.data, args.key)
    X_val = load_array(args.val_data, args.key) if args.val_data else None
    # the resumed epoch is said once the state is checked against this run (memae.resume)
    logging.getLogger("memae").setLevel(logging.INFO if main_rank else logging.WARNING)
    if main_rank and args.resume and not state.exists():
        print(f"--resume: no training state at {state}; starting afresh")
    elif main_rank and not args.resume and state.exists():
        print(f"starting afresh: discarding the training state at {state} (--resume continues it)")
    detector = MemAEDetector(**params).fit(
        X, X_val=X_val, training_state=state, resume=args.resume, checkpoint_every=args.checkpoint_every
    )
    if not main_rank:
        return 0
    path = detector.save(args.out)
    state.unlink(missing_ok=True)  # the finished model replaces the training state
    cfg = detector.model_config_
    print(
        f"trained {cfg.variant} ({cfg.backbone}) on {len(X)} samples; "
        f"final loss {detector.history_.train_loss[-1]:.5g}; "
        f"threshold {detector.threshold_:.5g}; saved {path}"
    )
    return 0


@command("score")
def _score(args: argparse.Namespace) -> int:
    from memae.detector import MemAEDetector
    from memae.distributed import init_from_env
    from memae.io import load_array

    check_outputs({"--out": args.out}, {"the checkpoint": args.checkpoint, "the data file": args.data})
    ctx = init_from_env()  # under torchrun each rank scores a shard; rank 0 writes
    detector = MemAEDetector.load(args.checkpoint, device=args.device)
    scores = detector.decision_function(load_array(args.data, args.key))
    if ctx is not None and not ctx.is_main:
        return 0
    labels = detector.labels_from_scores(scores)
    lines = [
        "index,score,label",
        *(f"{i},{s:.8g},{lab}" for i, (s, lab) in enumerate(zip(scores, labels, strict=True))),
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        atomic_write(args.out, lambda p: Path(p).write_text(text))
        print(f"scored {len(scores)} samples, {int(labels.sum())} flagged anomalous; wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


@command("reproduce")
def _reproduce(args: argparse.Namespace) -> int:
    from memae.reproduce.cli import handle

    return handle(args)


@command("download")
def _download(args: argparse.Namespace) -> int:
    from memae.data.download import download

    download(args.dataset, args.data_dir, args.mirror)
    return 0


@command("export")
def _export(args: argparse.Namespace) -> int:
    from memae.detector import MemAEDetector
    from memae.export import SUFFIXES, export_detector
    from memae.io import load_array

    out = args.out or str(Path(args.checkpoint).with_suffix(SUFFIXES[args.format]))
    check_outputs(
        {"--out": out, "the export's metadata file": f"{out}.json"},
        {"the checkpoint": args.checkpoint, "the --check-data file": args.check_data},
    )
    detector = MemAEDetector.load(args.checkpoint)
    check = load_array(args.check_data, args.key) if args.check_data else None
    result = export_detector(
        detector,
        out,
        format=args.format,
        reconstruction=args.reconstruction,
        opset=args.opset,
        check_data=check,
    )
    print(
        f"exported {args.format} to {result.model_path} (metadata {result.metadata_path}); "
        f"scores match the checkpoint's on {result.checked_samples} samples to "
        f"{result.max_relative_difference:.2g} relative"
    )
    return 0


@command("inspect")
def _inspect(args: argparse.Namespace) -> int:
    from memae.detector import MemAEDetector
    from memae.diagnostics import inspect_memory, slots_figure
    from memae.io import load_array

    inputs = {"the checkpoint": args.checkpoint, "the data file": args.data}
    check_output_folder("--out", args.out, ["memory.json", "slots.png"], inputs)
    detector = MemAEDetector.load(args.checkpoint, device=args.device)
    report = inspect_memory(detector, load_array(args.data, args.key))
    print(report.summary())
    if args.out:
        out = Path(args.out)
        text = json.dumps(report.to_dict(), indent=2)
        atomic_write(out / "memory.json", lambda p: Path(p).write_text(text, encoding="utf-8"))
        written = [out / "memory.json"]
        if len(detector.input_shape_) in (3, 4):
            written.append(slots_figure(detector, report, out / "slots.png", k=args.slots))
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


@command("train-video")
def _train_video(args: argparse.Namespace) -> int:
    from memae.video.cli import train_video

    return train_video(args)


@command("score-video")
def _score_video(args: argparse.Namespace) -> int:
    from memae.video.cli import score_video

    return score_video(args)


@command("report")
def _report(args: argparse.Namespace) -> int:
    from memae.detector import MemAEDetector
    from memae.io import load_array
    from memae.report import REPORT_FILES, write_report

    check_output_folder(
        "--out",
        args.out,
        REPORT_FILES,
        {"the checkpoint": args.checkpoint, "the data file": args.data, "the labels file": args.labels},
    )
    detector = MemAEDetector.load(args.checkpoint, device=args.device)
    X = load_array(args.data, args.key)
    labels = load_array(args.labels, args.labels_key) if args.labels else None
    path = write_report(
        detector, X, args.out, labels=labels, title=f"memae report: {Path(args.checkpoint).name}"
    )
    print(f"wrote {path}")
    return 0


@command("info")
def _info(args: argparse.Namespace) -> int:
    if args.checkpoint:
        print(json.dumps(read_metadata(args.checkpoint), indent=2))
        return 0
    import torch

    from memae import VARIANTS, __version__, list_backbones
    from memae.training import resolve_device

    print(f"memae {__version__}, torch {torch.__version__}, default device {resolve_device('auto')}")
    print("variants:  " + ", ".join(f"{k} ({v.title})" for k, v in VARIANTS.items()))
    print("backbones:")
    for name, text in list_backbones().items():
        print(f"  {name:<12} {text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from memae import __version__

    parser = argparse.ArgumentParser(prog="memae", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"memae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="train AE and MemAE on bundled 8x8 digits and write a report")
    demo.add_argument("--out", default="demo-report", help="report folder (default: demo-report)")
    demo.add_argument("--epochs", type=int, default=None, help="epochs per model")

    train = sub.add_parser("train", help="train a detector on an array file and save a checkpoint")
    train.add_argument("--data", required=True, help="training data: .npy, .npz or .csv")
    train.add_argument("--val-data", help="held-out normal data for validation (same format)")
    train.add_argument("--key", help="array name inside an .npz file")
    train.add_argument("--config", help="YAML file of detector parameters")
    train.add_argument("--out", required=True, help="checkpoint to write (e.g. model.memae)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the training state a killed run left (same data and parameters)",
    )
    train.add_argument("--state", help="training-state file, written every epoch (default: OUT.state)")
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="STEPS",
        help="also write the training state every STEPS optimiser steps (default: epochs only)",
    )
    _add_detector_flags(train)

    score = sub.add_parser("score", help="score an array file with a trained checkpoint")
    score.add_argument("checkpoint")
    score.add_argument("--data", required=True, help=".npy, .npz or .csv")
    score.add_argument("--key", help="array name inside an .npz file")
    score.add_argument("--out", help="CSV to write (default: standard output)")
    score.add_argument("--device", default="cpu")

    export = sub.add_parser(
        "export", help="export a checkpoint to ONNX or TorchScript, preprocessing and score inside"
    )
    export.add_argument("checkpoint")
    export.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    export.add_argument("--out", help="file to write (default: the checkpoint's name with .onnx / .pt)")
    export.add_argument("--reconstruction", action="store_true", help="also output the reconstruction")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    export.add_argument(
        "--check-data", help="samples (.npy/.npz/.csv) to check parity on (default: synthetic ones)"
    )
    export.add_argument("--key", help="array name inside an .npz file")

    inspect_ = sub.add_parser(
        "inspect", help="memory diagnostics over a dataset: slot usage, entropy, dead slots, collapse"
    )
    inspect_.add_argument("checkpoint")
    inspect_.add_argument("--data", required=True, help=".npy, .npz or .csv")
    inspect_.add_argument("--key", help="array name inside an .npz file")
    inspect_.add_argument("--out", help="folder for memory.json (and slots.png for image models)")
    inspect_.add_argument("--slots", type=int, default=16, help="slots to decode in slots.png (default 16)")
    inspect_.add_argument("--device", default="cpu")

    report = sub.add_parser(
        "report", help="HTML report of a checkpoint on a dataset: metrics, figures, diagnostics"
    )
    report.add_argument("checkpoint")
    report.add_argument("--data", required=True, help=".npy, .npz or .csv")
    report.add_argument("--key", help="array name inside an .npz data file")
    report.add_argument("--labels", help="0 (normal) / 1 (anomaly) per sample: .npy, .npz or .csv")
    report.add_argument("--labels-key", help="array name inside an .npz labels file")
    report.add_argument("--out", required=True, help="folder for index.html and its figures")
    report.add_argument("--device", default="cpu")

    info = sub.add_parser("info", help="show versions, variants and backbones, or a checkpoint's metadata")
    info.add_argument("checkpoint", nargs="?")

    download = sub.add_parser("download", help="fetch a dataset's canonical files and verify their checksums")
    download.add_argument("dataset", help="mnist, kddcup99 or cifar10")
    download.add_argument("--data-dir", help="data root (default: $MEMAE_DATA, else ~/.cache/memae/data)")
    download.add_argument("--mirror", help="base URL to fetch the same file names from instead")

    from memae.reproduce.cli import add_parser as add_reproduce

    add_reproduce(sub)

    from memae.video.cli import add_parsers as add_video

    add_video(sub)
    return parser


class _StdoutHandler(logging.Handler):
    """memae's progress lines (``resuming from ...``) on the standard output of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stdout)


def _show_progress_lines() -> None:
    logger = logging.getLogger("memae")
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        logger.addHandler(_StdoutHandler())
    logger.setLevel(logging.INFO)


def describe(err: BaseException) -> str:
    """One line for any failure: the message (which names the file or field), with the
    exception's kind where the message alone would not say what went wrong."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, MemoryError):
        return f"out of memory{': ' + text if text else ''}; use smaller data, batches or model"
    if isinstance(err, RecursionError):
        return f"input nested too deeply ({text})"
    if isinstance(err, KeyError):
        return f"missing key {text}"
    if isinstance(err, ValueError | TypeError | OSError) or type(err).__module__.startswith("memae"):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from memae.distributed import shutdown
    from memae.fast import keep_freed_memory

    keep_freed_memory()  # large tensors reuse freed memory instead of fresh page-faulted maps
    _show_progress_lines()
    try:
        code = _HANDLERS[args.command](args)
        shutdown()  # under torchrun: every rank leaves the process group together
        return code
    except KeyboardInterrupt:
        print("memae: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the one boundary: whatever failed, one line and status 1
        if os.environ.get("MEMAE_TRACEBACK"):
            traceback.print_exc()
        print(f"memae: error: {describe(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
