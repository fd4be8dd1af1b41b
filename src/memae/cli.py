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


def _add_data_flags(parser: argparse.ArgumentParser, what: str, size_help: str) -> None:
    """``--data`` and how to read it: every command that reads data takes the same flags."""
    parser.add_argument(
        "--data",
        required=True,
        help=f"{what}: a table (.csv, .tsv, .parquet), an array (.npy, .npz), or image files / a folder",
    )
    parser.add_argument("--key", help="array name inside an .npz file")
    tables = parser.add_argument_group("tables")
    tables.add_argument(
        "--index-column", help="column naming the rows (default: the unnamed first column pandas writes)"
    )
    tables.add_argument(
        "--label-column",
        help="column of 0 (normal) / 1 (anomaly) labels, never a feature (train: only normal rows are used)",
    )
    tables.add_argument(
        "--normal-label",
        action="append",
        default=[],
        metavar="VALUE",
        help="a value of the label column that means normal (repeatable); the others are anomalies",
    )
    tables.add_argument(
        "--drop-columns", default="", metavar="A,B", help="comma-separated columns to leave out"
    )
    tables.add_argument("--delimiter", help="CSV delimiter (default: sniffed among , ; tab |)")
    group = parser.add_argument_group("image files (--data a folder or an image file)")
    group.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help=size_help)
    group.add_argument(
        "--channels", type=int, choices=(1, 3), help="convert every image to 1 (gray) or 3 (RGB) channels"
    )
    group.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="skip and list unreadable image files instead of stopping",
    )


def read_cli_data(
    args: argparse.Namespace, path: str | None = None, input_shape: Sequence[int] | None = None
) -> Any:
    """``--data`` (or ``path``) through :func:`memae.data.read_data` with the command's table
    and image options; images are brought to ``input_shape`` (a checkpoint's) unless
    ``--image-size`` says otherwise."""
    from memae.data import ImageOptions, TableOptions, read_data

    drop = tuple(c.strip() for c in (args.drop_columns or "").split(",") if c.strip())
    table = TableOptions(
        index_column=args.index_column,
        label_column=args.label_column,
        drop_columns=drop,
        normal_labels=tuple(args.normal_label or ()),
        delimiter=args.delimiter.encode().decode("unicode_escape") if args.delimiter else None,
    )
    size = args.image_size
    if size is None and input_shape is not None and len(input_shape) == 3:
        size = input_shape[1:]
    images = ImageOptions(
        image_size=None if size is None else (int(size[0]), int(size[1])),
        channels=args.channels,
        skip_unreadable=bool(args.skip_unreadable),
    )
    dataset = read_data(path or args.data, key=args.key, table=table, images=images)
    if dataset.skipped:
        print(
            f"skipped {len(dataset.skipped)} unreadable file(s): {', '.join(dataset.skipped)}",
            file=sys.stderr,
        )
    return dataset


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

    params = detector_params_from(args)
    # Under torchrun every rank trains its share (memae.distributed); rank 0 reports and saves.
    ctx = init_from_env()
    main_rank = ctx is None or ctx.is_main
    if ctx is not None and params.get("random_state") is None:
        params["random_state"] = shared_seed()
    params.setdefault("verbose", main_rank)
    state = Path(args.state or f"{args.out}.state")
    inputs = {"the data": args.data, "the --val-data": args.val_data, "the --config": args.config}
    check_outputs({"--out": args.out, "--state": state}, inputs)
    data = read_cli_data(args)
    X = data.X
    if data.labels is not None:
        normal = data.labels == 0
        if not normal.any():
            raise ValueError(f"{args.data}: every sample is labelled an anomaly; training needs normal ones")
        X = X[normal] if data.kind != "table" else X[normal].reset_index(drop=True)
        if main_rank and not normal.all():
            print(
                f"training on the {int(normal.sum())} normal samples; "
                f"left out {int((~normal).sum())} anomalies"
            )
    X_val = None
    if args.val_data:
        X_val = read_cli_data(args, args.val_data, X.shape[1:] if data.kind == "images" else None).X
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
    from memae.thresholds import ecdf_score

    inputs = {"the checkpoint": args.checkpoint, "the data": args.data}
    check_outputs({"--out": args.out}, inputs)
    check_output_folder("--maps", args.maps, ["*.png", "maps.json"], inputs)
    ctx = init_from_env()  # under torchrun each rank scores a shard; rank 0 writes
    detector = MemAEDetector.load(args.checkpoint, device=args.device)
    data = read_cli_data(args, input_shape=detector.input_shape_)
    if args.maps and data.kind != "images":
        raise ValueError(f"--maps needs image files as --data, got {args.data}")
    scores = detector.decision_function(data.X)
    if ctx is not None and not ctx.is_main:
        return 0
    decisions = detector.labels_from_scores(scores)
    calibrated = ecdf_score(detector._reference_scores(), scores)
    text = score_table(data, scores, calibrated, decisions)
    summary = f"scored {len(scores)} samples, {int(decisions.sum())} flagged anomalous"
    if data.labels is not None and len(set(data.labels.tolist())) == 2:
        from memae.metrics import roc_auc

        summary += f"; AUROC {roc_auc(data.labels, scores):.4f}"
    if args.maps:
        from memae.data.images import source_files
        from memae.report_images import write_maps

        maps = detector.anomaly_maps(data.X)
        write_maps(args.maps, data.ids, data.X, maps, source_files(data))
        summary += f"; anomaly maps in {args.maps}"
    if args.out:
        atomic_write(args.out, lambda p: Path(p).write_text(text, encoding="utf-8"))
        print(f"{summary}; wrote {args.out}")
    else:
        sys.stdout.write(text)
        print(summary, file=sys.stderr)
    return 0


def score_table(data: Any, scores: Any, calibrated: Any, decisions: Any) -> str:
    """The score file: one CSV row per sample, named by its identifier (a table's index
    column, an image's relative path) or its position, with the score, the calibrated score
    in [0, 1], the 0/1 decision and, when the data say so, the defect type (image folders)
    and the true label."""
    import csv
    import io

    names = {"table": "id", "images": "path"}
    id_name = names.get(data.kind, "index") if data.ids is not None else "index"
    ids = data.ids if data.ids is not None else range(len(scores))
    kinds = data.kind == "images" and data.groups is not None
    truth = ["defect_type"] * kinds + ["label"] * (data.labels is not None)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([id_name, "score", "calibrated", "anomaly", *truth])
    for i, (name, s, c, d) in enumerate(zip(ids, scores, calibrated, decisions, strict=True)):
        row = [name, f"{s:.8g}", f"{c:.6g}", int(d)]
        row += ([data.groups[i]] if kinds else []) + (
            [int(data.labels[i])] if data.labels is not None else []
        )
        writer.writerow(row)
    return buffer.getvalue()


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
    from memae.data import read_data
    from memae.detector import MemAEDetector
    from memae.export import SUFFIXES, export_detector

    out = args.out or str(Path(args.checkpoint).with_suffix(SUFFIXES[args.format]))
    check_outputs(
        {"--out": out, "the export's metadata file": f"{out}.json"},
        {"the checkpoint": args.checkpoint, "the --check-data": args.check_data},
    )
    detector = MemAEDetector.load(args.checkpoint)
    check = read_data(args.check_data, key=args.key).X if args.check_data else None
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

    inputs = {"the checkpoint": args.checkpoint, "the data": args.data}
    check_output_folder("--out", args.out, ["memory.json", "slots.png"], inputs)
    detector = MemAEDetector.load(args.checkpoint, device=args.device)
    report = inspect_memory(detector, read_cli_data(args, input_shape=detector.input_shape_).X)
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


@command("serve")
def _serve(args: argparse.Namespace) -> int:
    from memae.serve.cli import serve

    return serve(args)


@command("score-video")
def _score_video(args: argparse.Namespace) -> int:
    from memae.video.cli import score_video

    return score_video(args)


@command("report")
def _report(args: argparse.Namespace) -> int:
    from memae.data.images import mvtec_category
    from memae.detector import MemAEDetector
    from memae.io import load_array
    from memae.report import REPORT_FILES, write_report

    check_output_folder(
        "--out",
        args.out,
        REPORT_FILES,
        {"the checkpoint": args.checkpoint, "the data": args.data, "the labels": args.labels},
    )
    detector = MemAEDetector.load(args.checkpoint, device=args.device)
    title = f"memae report: {Path(args.checkpoint).name}"
    # an MVTec AD category folder (train/, test/, ground_truth/) is reported on its test images
    path_in = str(Path(args.data) / "test") if mvtec_category(args.data) else args.data
    data = read_cli_data(args, path_in, detector.input_shape_)
    if data.kind == "images":
        if args.labels:
            raise ValueError("--labels is for array data; image folders take their labels from the layout")
        from memae.report_images import write_image_report

        path = write_image_report(detector, data, args.out, title=f"{title} on {path_in}")
        print(f"wrote {path}")
        return 0
    labels = load_array(args.labels, args.labels_key) if args.labels else data.labels
    path = write_report(detector, data.X, args.out, labels=labels, title=title, ids=data.ids)
    print(f"wrote {path}")
    return 0


@command("info")
def _info(args: argparse.Namespace) -> int:
    if args.checkpoint:
        metadata = read_metadata(args.checkpoint)
        print(json.dumps(metadata, indent=2))
        if isinstance(metadata.get("table"), dict):
            from memae.preprocessing import TableEncoder

            # a readable table for people; standard output stays one JSON document for programs
            print(
                TableEncoder.from_dict(metadata["table"]).summary(metadata.get("scoring", {})),
                file=sys.stderr,
            )
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
    _add_data_flags(
        train,
        "training data (normal samples)",
        "resize every image to H x W (default: the first image's size)",
    )
    train.add_argument("--val-data", help="held-out normal data for validation (same format)")
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
    _add_data_flags(
        score, "data to score", "resize every image to H x W (default: the checkpoint's image size)"
    )
    score.add_argument("--out", help="CSV to write (default: standard output)")
    score.add_argument("--device", default="cpu")
    score.add_argument(
        "--maps", metavar="DIR", help="write each image's anomaly map and overlay under DIR (same paths)"
    )

    export = sub.add_parser(
        "export", help="export a checkpoint to ONNX or TorchScript, preprocessing and score inside"
    )
    export.add_argument("checkpoint")
    export.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    export.add_argument("--out", help="file to write (default: the checkpoint's name with .onnx / .pt)")
    export.add_argument("--reconstruction", action="store_true", help="also output the reconstruction")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    export.add_argument(
        "--check-data", help="samples (a table, .npy/.npz) to check parity on (default: synthetic ones)"
    )
    export.add_argument("--key", help="array name inside an .npz file")

    inspect_ = sub.add_parser(
        "inspect", help="memory diagnostics over a dataset: slot usage, entropy, dead slots, collapse"
    )
    inspect_.add_argument("checkpoint")
    _add_data_flags(
        inspect_,
        "data to inspect the memory on",
        "resize every image to H x W (default: the checkpoint's image size)",
    )
    inspect_.add_argument("--out", help="folder for memory.json (and slots.png for image models)")
    inspect_.add_argument("--slots", type=int, default=16, help="slots to decode in slots.png (default 16)")
    inspect_.add_argument("--device", default="cpu")

    report = sub.add_parser(
        "report", help="HTML report of a checkpoint on a dataset: metrics, figures, diagnostics"
    )
    report.add_argument("checkpoint")
    _add_data_flags(
        report,
        "data to report on (or an MVTec AD category folder: its test/)",
        "resize every image to H x W (default: the checkpoint's image size)",
    )
    report.add_argument(
        "--labels", help="0 (normal) / 1 (anomaly) per sample: .npy, .npz or .csv (or --label-column)"
    )
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

    from memae.serve.cli import add_parser as add_serve

    add_serve(sub)
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
