"""MNIST zeros as an image folder in the MVTec AD layout, through ``memae train/score/report``.

    python benchmarks/mvtec_mnist.py --root /tmp/mnist-zeros --data-seed 0 --seeds 0 1 2

Builds, from the MNIST IDX files (``$MEMAE_DATA/mnist``), one category in the MVTec AD layout:

    ROOT/train/good/        800 zeros from the MNIST training split, as PNG files
    ROOT/test/good/         200 other zeros (from the test split)
    ROOT/test/digit/        200 other digits, 1 to 9
    ROOT/test/square/       200 other zeros with a bright square on their background
    ROOT/ground_truth/square/<name>_mask.png   the squares' masks

then runs the commands a user would (``memae train --data ROOT/train/good``, ``memae score
CKPT --data ROOT/test --maps``, ``memae report CKPT --data ROOT``) and PyOD's KNN, IForest and
AutoEncoder on the flattened pixels of the same files, once per model seed, and writes the
numbers (each run, and the mean and range over the seeds) with the commands, seeds, commit
and machine to ``results/mvtec_mnist.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

COUNTS = {"train": 800, "good": 200, "digit": 200, "square": 200}


def _mnist_uint8() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from memae.data.mnist import FILES, read_idx
    from memae.data.paths import data_dir, require

    folder = data_dir() / "mnist"
    arrays = {k: read_idx(require(folder / f, f"MNIST file {f}")) for k, f in FILES.items()}
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


def _square(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The image with a 5x5 to 8x8 square of 255 placed where the digit has no ink; its mask."""
    for _ in range(1000):
        side = int(rng.integers(5, 9))
        top, left = (int(v) for v in rng.integers(0, 28 - side + 1, size=2))
        if image[top : top + side, left : left + side].max() == 0:
            out, mask = image.copy(), np.zeros_like(image)
            out[top : top + side, left : left + side] = 255
            mask[top : top + side, left : left + side] = 255
            return out, mask
    raise ValueError("found no empty background for a square")


def build(root: Path, seed: int) -> dict[str, int]:
    """Write the folders (PNG files) under ``root``; returns the count per folder."""
    from PIL import Image

    train_x, train_y, test_x, test_y = _mnist_uint8()
    rng = np.random.default_rng(seed)
    zeros_train = rng.permutation(np.flatnonzero(train_y == 0))[: COUNTS["train"]]
    zeros_test = rng.permutation(np.flatnonzero(test_y == 0))
    good, squared = (
        zeros_test[: COUNTS["good"]],
        zeros_test[COUNTS["good"] : COUNTS["good"] + COUNTS["square"]],
    )
    digits = rng.permutation(np.flatnonzero(test_y != 0))[: COUNTS["digit"]]

    def save(folder: Path, images: np.ndarray) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{i:03d}.png")

    save(root / "train" / "good", train_x[zeros_train])
    save(root / "test" / "good", test_x[good])
    save(root / "test" / "digit", test_x[digits])
    pairs = [_square(test_x[i], rng) for i in squared]
    save(root / "test" / "square", np.stack([p[0] for p in pairs]))
    masks = root / "ground_truth" / "square"
    masks.mkdir(parents=True, exist_ok=True)
    for i, (_, mask) in enumerate(pairs):
        Image.fromarray(mask).save(masks / f"{i:03d}_mask.png")
    return {
        "train/good": len(zeros_train),
        "test/good": len(good),
        "test/digit": len(digits),
        "test/square": len(pairs),
    }


def _memae(argv: list[str]) -> float:
    """Run one ``memae`` command in this process; returns its seconds."""
    from memae.cli import main

    start = time.perf_counter()
    if main(argv) != 0:
        raise SystemExit(f"memae {shlex.join(argv)} failed")
    return time.perf_counter() - start


def _baselines(root: Path, seed: int) -> dict[str, Any]:
    """PyOD's KNN, IForest and AutoEncoder on the flattened pixels / 255, image AUROC per defect."""
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN

    from memae.data import read_data
    from memae.report_images import image_metrics

    train = read_data(root / "train" / "good")
    test = read_data(root / "test")
    flat_train = train.X.reshape(len(train.X), -1) / 255.0
    flat_test = test.X.reshape(len(test.X), -1) / 255.0
    models = {
        "PyOD KNN": lambda: KNN(),
        "PyOD IForest": lambda: IForest(random_state=seed),
        "PyOD AutoEncoder": lambda: AutoEncoder(random_state=seed, verbose=0, device="cpu"),
    }
    results = {}
    for name, make in models.items():
        import torch

        torch.manual_seed(seed)  # PyOD's AutoEncoder draws its initial weights from torch's global generator
        start = time.perf_counter()
        scores = make().fit(flat_train).decision_function(flat_test)
        entry = image_metrics(scores, test.labels, test.groups)
        entry["seconds"] = round(time.perf_counter() - start, 2)
        results[name] = entry
    return results


def run_memae(root: Path, seed: int, extra: list[str]) -> dict[str, Any]:
    """``memae train``, ``score`` and ``report`` with the model seeded by ``seed``; the numbers
    are read back from the report and the score file the commands wrote."""
    from memae.detector import MemAEDetector

    work = root / "runs" / "-".join(["seed", str(seed), *(a.lstrip("-") for a in extra)])
    model, scores, maps, report = work / "model.memae", work / "scores.csv", work / "maps", work / "report"
    train = root / "train" / "good"
    commands = {
        "train": ["train", "--data", str(train), "--random-state", str(seed), *extra, "--out", str(model)],
        "score": [
            "score",
            str(model),
            "--data",
            str(root / "test"),
            "--out",
            str(scores),
            "--maps",
            str(maps),
        ],
        "report": ["report", str(model), "--data", str(root), "--out", str(report)],
    }
    work.mkdir(parents=True, exist_ok=True)
    seconds = {name: round(_memae(argv), 2) for name, argv in commands.items()}
    numbers = json.loads((report / "report.json").read_text())
    with open(scores, newline="") as fh:
        rows = list(csv.DictReader(fh))
    detector = MemAEDetector.load(model)
    return {
        "seed": seed,
        "commands": {name: "memae " + shlex.join(argv) for name, argv in commands.items()},
        "seconds": seconds,
        "params": detector.get_params(),
        "backbone": detector.model_config_.backbone,
        "addressing": detector.model_config_.addressing,
        "preprocessing": detector.preprocessing_,
        "image_auroc": numbers["image_auroc"],
        "pixel_auroc": numbers.get("pixel_auroc"),
        "pro": numbers.get("pro"),
        "per_defect": numbers["per_defect"],
        "score_rows": len(rows),
        "score_columns": list(rows[0]),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and range over the seeds of each top-level and per-defect metric."""

    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}

    keys = ("image_auroc", "pixel_auroc", "pro")
    out: dict[str, Any] = {k: stats([r[k] for r in runs]) for k in keys if runs[0].get(k) is not None}
    for defect, entry in runs[0]["per_defect"].items():
        present = [k for k in keys if entry.get(k) is not None]
        out[defect] = {k: stats([r["per_defect"][defect][k] for r in runs]) for k in present}
    return out


def main() -> None:
    from memae.provenance import provenance

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder to build the category in")
    parser.add_argument("--data-seed", type=int, default=0, help="picks the images and the squares")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="model seeds")
    parser.add_argument("--out", default="results/mvtec_mnist.json")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument(
        "--backbone", help="train with this backbone instead of memae's default (e.g. mnist, the paper's net)"
    )
    args = parser.parse_args()

    root = Path(args.root)
    counts = build(root, args.data_seed)
    extra = ["--backbone", args.backbone] if args.backbone else []
    memae_runs = [run_memae(root, seed, extra) for seed in args.seeds]
    baseline_runs = {} if args.skip_baselines else {seed: _baselines(root, seed) for seed in args.seeds}
    baselines: dict[str, Any] = {}
    for name in next(iter(baseline_runs.values()), {}):
        runs = [{**baseline_runs[seed][name], "seed": seed} for seed in args.seeds]
        baselines[name] = {"summary": _summary(runs), "runs": runs}
    record = {
        **provenance(),
        "script": "python benchmarks/mvtec_mnist.py "
        + shlex.join(
            [
                "--root",
                str(root),
                "--data-seed",
                str(args.data_seed),
                "--seeds",
                *map(str, args.seeds),
                *extra,
            ]
        ),
        "data": {"source": "MNIST IDX files", "data_seed": args.data_seed, "counts": counts},
        "memae": {"summary": _summary(memae_runs), "runs": memae_runs},
        "baselines": baselines,
    }
    out = Path(args.out)
    harness.write_json(out, record)
    summary = {f"MemAE ({args.backbone or 'memae defaults'})": record["memae"]["summary"]}
    summary.update({name: entry["summary"] for name, entry in baselines.items()})
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
