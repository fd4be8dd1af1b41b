"""memae against the plain reference (benchmarks/reference.py), side by side, as ratios.

    python benchmarks/run.py --out results/performance_cpu.json
    python benchmarks/report.py results/performance_cpu.json --out docs/PERFORMANCE.md

Suites (``--suites``):

* ``train``: training throughput (samples/s) of every backbone on in-memory tensors: the
  reference loop against :func:`memae.training.fit_model` (channels-last for 2-D conv nets
  on the CPU by default), conv nets trained with the other layout (``memae-contiguous`` /
  ``memae+channels_last``), and compiled steps (``TrainConfig.compile``, opt-in).
* ``score``: scoring throughput of every backbone: the reference's eval-mode ``no_grad``
  forward against :func:`memae.training.score`.
* ``memory``: the memory module alone, forward + backward with the entropy term (and the same
  under ``torch.compile``).
* ``video``: end to end on JPEG frame files: scoring frames/s (decode + model + scores) and
  training clips/s (decode + loader + steps), the reference's loader re-reading the 16
  frames of every clip against memae's decode-once frame store.
* ``peak``: this machine's matrix-multiply FLOP/s, to put achieved FLOP/s in proportion.

Every implementation is timed in turn within each repetition (:mod:`harness`); the record
holds every time, the medians, the paired speed-ups, the peak memory of one step, the
FLOPs, the configuration, the seeds, the commit and the machine.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import reference as ref

from memae.config import ModelConfig, TrainConfig, get_variant
from memae.data.video import VideoSource
from memae.fast import inference_model, keep_freed_memory, train_channels_last
from memae.nn import MemoryModule, build_model
from memae.nn.fused import addressing_entropy
from memae.nn.model import MemAE
from memae.provenance import provenance
from memae.training import fit_model, score
from memae.video.clips import ClipDataset, FrameStore
from memae.video.scoring import frame_errors

SCHEMA = 1
#: The issue's targets: speed-up of memae over the reference, per kind of workload.
SUITES = ("peak", "memory", "train", "score", "video")
TARGETS = {"image": 1.2, "tabular": 1.2, "video-train": 1.3, "video-score": 2.0, "memory": 2.0}


@dataclass(frozen=True)
class Workload:
    backbone: str
    shape: tuple[int, ...]
    kind: str  # image | tabular | video
    train_batch: int
    train_steps: int
    score_batch: int
    score_samples: int
    width: float = 1.0

    @property
    def reduction(self) -> str:
        return "l2" if self.kind == "video" else "mse"


CPU_WORKLOADS = [
    Workload("mnist", (1, 28, 28), "image", 64, 8, 256, 1024),
    Workload("cifar10", (3, 32, 32), "image", 64, 4, 256, 512),
    Workload("conv", (3, 64, 64), "image", 32, 4, 128, 256),
    Workload("kddcup", (120,), "tabular", 1024, 8, 4096, 16384),
    Workload("mlp", (32,), "tabular", 256, 8, 4096, 16384),
    Workload("video-small", (1, 16, 256, 256), "video", 2, 2, 2, 4),
    Workload("video", (1, 16, 256, 256), "video", 1, 1, 1, 2),
]
GPU_WORKLOADS = [
    Workload("mnist", (1, 28, 28), "image", 256, 16, 4096, 32768),
    Workload("cifar10", (3, 32, 32), "image", 256, 16, 4096, 32768),
    Workload("conv", (3, 64, 64), "image", 128, 16, 1024, 8192),
    Workload("kddcup", (120,), "tabular", 1024, 32, 65536, 262144),
    Workload("mlp", (32,), "tabular", 1024, 32, 65536, 262144),
    Workload("video-small", (1, 16, 256, 256), "video", 14, 4, 32, 128),
    Workload("video", (1, 16, 256, 256), "video", 14, 4, 16, 64),
]


def _models(w: Workload, device: torch.device, seed: int) -> tuple[MemAE, ModelConfig, ref.RefMemAE]:
    torch.manual_seed(seed)
    model, config = build_model(ModelConfig(w.shape, backbone=w.backbone, width=w.width))
    variant = get_variant(config.variant)
    reference = ref.RefMemAE(
        w.shape,
        w.backbone,
        mem_dim=config.memory_size,
        shrink_thres=config.shrink_threshold if variant.shrinkage else 0.0,
        similarity=config.similarity,
        width=w.width,
        addressing=config.addressing,
    )
    reference.load_memae_state(model.state_dict())
    return model.to(device), config, reference.to(device)


def allocator(name: str) -> None:
    """The reference runs with glibc's steady-state malloc settings, memae with what the
    ``memae`` command sets (:func:`memae.fast.keep_freed_memory`)."""
    keep_freed_memory(not name.startswith("reference"))


def _timed(
    units: dict[str, Callable[[], Any]], repeats: int, device: torch.device, items: float
) -> dict[str, dict[str, Any]]:
    """Interleaved timings summarised against the reference; ``items`` per unit call."""
    times, loops = harness.interleave(units, repeats, device, prepare=allocator)
    summary = harness.summarise(times, "reference", items * loops)
    for s in summary.values():
        s["loops"] = loops
    return summary


def _trainings(
    model: MemAE, train: TrainConfig, device: torch.device
) -> dict[str, tuple[MemAE, TrainConfig]]:
    """memae as the library trains it (``channels_last="auto"``) and, for conv nets, a copy
    trained with the other layout: ``memae-contiguous`` where the default is channels-last
    (2-D conv nets on the CPU), ``memae+channels_last`` where it is not."""
    out = {"memae": (model, train)}
    if train_channels_last("auto", model, device):
        out["memae-contiguous"] = (copy.deepcopy(model), dataclasses.replace(train, channels_last=False))
    elif _has_convs(model):
        out["memae+channels_last"] = (copy.deepcopy(model), dataclasses.replace(train, channels_last=True))
    return out


def _has_convs(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())


def _entry(suite: str, name: str, kind: str, config: dict[str, Any], units: dict[str, Any]) -> dict[str, Any]:
    target = TARGETS.get({"train": "video-train" if kind == "video" else kind}.get(suite, suite))
    best = max((k for k in units if k != "reference"), key=lambda k: units[k]["speedup"])
    return {
        "suite": suite,
        "name": name,
        "kind": kind,
        "config": config,
        "units": units,
        "best": best,
        "target": target,
        "met": None if target is None else bool(units[best]["speedup"] >= target),
    }


# --- suites -----------------------------------------------------------------------------


def train_suite(w: Workload, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    model, config, reference = _models(w, device, args.seed)
    n = w.train_batch * w.train_steps
    data = torch.randn(n, *w.shape, generator=torch.Generator().manual_seed(args.seed))
    train = TrainConfig(
        epochs=1,
        batch_size=w.train_batch,
        lr=1e-4,
        validation_fraction=0.0,
        seed=args.seed,
        device=str(device),
    )
    ref_opt = torch.optim.Adam(reference.parameters(), lr=1e-4)
    ref_loader = DataLoader(
        TensorDataset(data),
        batch_size=w.train_batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )

    def run_reference() -> None:
        reference.train()
        for (x,) in ref_loader:
            ref.train_step(reference, ref_opt, x.to(device), config.entropy_weight)

    runs = _trainings(model, train, device)
    runs["memae+compile"] = (copy.deepcopy(model), dataclasses.replace(train, compile=True))  # opt-in
    models = {name: m for name, (m, _) in runs.items()}
    trains = {name: t for name, (_, t) in runs.items()}
    units: dict[str, Callable[[], Any]] = {"reference": run_reference}
    for name, m in models.items():
        units[name] = lambda m=m, t=trains[name]: fit_model(m, config, t, TensorDataset(data))
    summary = _timed(units, args.repeats, device, n)

    one = data[: w.train_batch].to(device)
    flops = harness.count_flops(lambda: ref.train_step(reference, ref_opt, one, config.entropy_weight))
    for s in summary.values():
        s["flops_per_s"] = flops * w.train_steps * s["loops"] / s["median_s"]
    summary["reference"]["peak_bytes"] = harness.peak_memory(
        lambda: run_one_ref(reference, one, config), device
    )
    one_batch = TensorDataset(data[: w.train_batch])
    for name, m in models.items():
        summary[name]["peak_bytes"] = harness.peak_memory(
            lambda m=m, t=trains[name]: fit_model(m, config, t, one_batch), device
        )
    cfg = {
        **dataclasses.asdict(w),
        "samples": n,
        "flops_per_step": flops,
        "model": dataclasses.asdict(config),
    }
    return _entry("train", w.backbone, w.kind, cfg, summary)


def run_one_ref(reference: ref.RefMemAE, x: torch.Tensor, config: ModelConfig) -> None:
    """One reference step on the batch ``x``, drawn through a loader and with a fresh
    optimiser, as the ``fit_model`` call it is compared with does."""
    reference.train()
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-4)
    for (batch,) in DataLoader(TensorDataset(x.cpu()), batch_size=len(x)):
        ref.train_step(reference, optimizer, batch.to(x.device), config.entropy_weight)


def score_suite(w: Workload, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    model, _, reference = _models(w, device, args.seed)
    _settle_batchnorm(model, reference, w, device, args.seed)
    data = torch.randn(w.score_samples, *w.shape, generator=torch.Generator().manual_seed(args.seed + 1))

    def run_reference() -> None:
        for i in range(0, len(data), w.score_batch):
            ref.score(reference, data[i : i + w.score_batch].to(device), w.reduction)

    units: dict[str, Callable[[], Any]] = {
        "reference": run_reference,
        "memae": lambda: score(model, data, w.score_batch, device, w.reduction),
    }
    if device.type == "cuda":
        units["memae+bf16"] = lambda: _score_with(
            inference_model(model, precision="bf16"), data, w.score_batch, device, w.reduction
        )
    summary = _timed(units, args.repeats, device, w.score_samples)
    one = data[: w.score_batch].to(device)
    flops = harness.count_flops(lambda: ref.score(reference, one, w.reduction))
    for s in summary.values():
        s["flops_per_s"] = flops * (w.score_samples / w.score_batch) * s["loops"] / s["median_s"]
    cfg = {**dataclasses.asdict(w), "flops_per_batch": flops}
    return _entry("score", w.backbone, w.kind, cfg, summary)


def _settle_batchnorm(
    model: MemAE, reference: ref.RefMemAE, w: Workload, device: torch.device, seed: int
) -> None:
    """Give the batch norms running statistics of real batches, as after training."""
    model.train()
    with torch.no_grad():
        model(
            torch.randn(min(w.train_batch, 8), *w.shape, generator=torch.Generator().manual_seed(seed)).to(
                device
            )
        )
    reference.load_memae_state(model.state_dict())


def _score_with(
    net: torch.nn.Module, data: torch.Tensor, batch: int, device: torch.device, reduction: str
) -> None:
    from memae.nn.loss import reconstruction_error

    with torch.inference_mode():
        for i in range(0, len(data), batch):
            x = data[i : i + batch].to(device)
            reconstruction_error(x, net(x).output, reduction).cpu()


MEMORY_CASES = {
    # name: (query shape, slots, shrink threshold)
    "video (per location)": ((14, 256, 2, 16, 16), 2000, 0.0025),
    "mnist (global)": ((64, 72), 100, 0.01),
    "cifar10 (global)": ((64, 4096), 500, 0.002),
    "kddcup (global)": ((1024, 3), 50, 0.02),
}


def memory_suite(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    shape, slots, threshold = MEMORY_CASES[name]
    torch.manual_seed(args.seed)
    module = MemoryModule(slots, shape[1], threshold, "cosine").to(device)
    reference = ref.RefMemModule(slots, shape[1], threshold, "cosine").to(device)
    reference.unit.memory.data.copy_(module.memory.data)
    query = torch.randn(*shape, generator=torch.Generator().manual_seed(args.seed)).to(device)
    alpha = 0.0002

    def run_reference() -> None:
        q = query.detach().requires_grad_()
        read, att = reference(q)
        (read.square().mean() + alpha * ref.entropy_loss(att)).backward()

    def memae_objective(q: torch.Tensor) -> torch.Tensor:
        out = module(q)
        return out.read.square().mean() + alpha * addressing_entropy(out.weights)

    def run_memae() -> None:
        memae_objective(query.detach().requires_grad_()).backward()

    # the same step under torch.compile, as TrainConfig.compile runs a training step
    compiled = torch.compile(memae_objective, dynamic=False)

    def run_compiled() -> None:
        compiled(query.detach().requires_grad_()).backward()

    units = {"reference": run_reference, "memae": run_memae, "memae+compile": run_compiled}
    queries = math.prod(shape) // shape[1]
    summary = _timed(units, args.repeats, device, queries)
    for key, fn in units.items():
        summary[key]["peak_bytes"] = harness.peak_memory(fn, device)
    flops = harness.count_flops(run_reference)
    for s in summary.values():
        s["flops_per_s"] = flops * s["loops"] / s["median_s"]
    cfg = {
        "query_shape": list(shape),
        "slots": slots,
        "shrink_threshold": threshold,
        "similarity": "cosine",
        "entropy_weight": alpha,
        "flops": flops,
        "what": "forward + backward of read and entropy",
    }
    return _entry("memory", name, "memory", cfg, summary)


# --- video, end to end ------------------------------------------------------------------


def write_frames(root: Path, videos: int, frames: int, size: tuple[int, int], seed: int) -> list[list[Path]]:
    """Synthetic grayscale JPEG frames (UCSD Ped2's JPEG release is 240 x 360): a textured
    background with moving blobs, so the codec has real work."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for v in range(videos):
        background = rng.normal(128, 20, (h, w))
        folder = root / f"{v:02d}"
        folder.mkdir(parents=True)
        paths = []
        centres = rng.uniform([0, 0], [h, w], (6, 2))
        speeds = rng.normal(0, 3, (6, 2))
        for t in range(frames):
            img = background.copy()
            for (cy, cx), (dy, dx) in zip(centres, speeds, strict=True):
                img += 80 * np.exp(-(((yy - cy - t * dy) / 12) ** 2 + ((xx - cx - t * dx) / 8) ** 2))
            path = folder / f"{t:03d}.jpg"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
            paths.append(path)
        out.append(paths)
    return out


def video_suites(
    args: argparse.Namespace, device: torch.device, workloads: list[Workload]
) -> list[dict[str, Any]]:
    clip_len, size = 16, (256, 256)
    w = next(x for x in workloads if x.backbone == args.video_backbone)
    n_videos, n_frames = (1, 24) if device.type == "cpu" else (4, 64)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_frames(Path(tmp), n_videos, n_frames, (240, 360), args.seed)
        sources = [VideoSource(f"{v:02d}", tuple(p)) for v, p in enumerate(paths)]
        starts = [(v, s) for v in range(n_videos) for s in range(n_frames - clip_len + 1)]
        model, config, reference = _models(w, device, args.seed)
        _settle_batchnorm(model, reference, w, device, args.seed)

        # scoring: the authors' alignment, one clip per scored frame
        def ref_score(workers: int) -> None:
            clips = ref.RefClipDataset(paths, starts, size, clip_len)
            for x in DataLoader(clips, batch_size=w.score_batch, num_workers=workers):
                ref.score(reference, x.to(device), "l2")

        def memae_score() -> None:
            store = FrameStore.decode(sources, size)
            for frames in store.frames:  # clip_errors scores with memae.fast.inference_model
                frame_errors(model, frames, clip_len, "authors", "l2", w.score_batch, device)

        units = {
            "reference": lambda: ref_score(0),
            "reference+1 loader worker": lambda: ref_score(1),
            "memae": memae_score,
        }
        summary = _timed(units, args.repeats, device, len(starts))
        cfg = {
            "backbone": w.backbone,
            "frames_per_video": n_frames,
            "videos": n_videos,
            "frame_size": [240, 360],
            "model_input": [1, clip_len, *size],
            "batch": w.score_batch,
            "scored_frames": len(starts),
            "alignment": "authors",
            "reduction": "l2",
            "format": "JPEG",
        }
        results.append(_entry("video-score", f"{w.backbone} scoring, frames/s", "video", cfg, summary))

        # training: one epoch over every clip (stride 1)
        train = TrainConfig(
            epochs=1,
            batch_size=w.train_batch,
            lr=1e-4,
            validation_fraction=0.0,
            seed=args.seed,
            device=str(device),
        )
        train_model = copy.deepcopy(model)
        ref_opt = torch.optim.Adam(reference.parameters(), lr=1e-4)

        def ref_train() -> None:
            reference.train()
            clips = ref.RefClipDataset(paths, starts, size, clip_len)
            loader = DataLoader(
                clips, batch_size=w.train_batch, shuffle=True, generator=torch.Generator().manual_seed(0)
            )
            for x in loader:
                ref.train_step(reference, ref_opt, x.to(device), config.entropy_weight)

        def memae_train(m: MemAE, t: TrainConfig) -> None:
            store = FrameStore.decode(sources, size)
            fit_model(m, config, t, ClipDataset(store.frames, clip_len, 1))

        trained = _trainings(train_model, train, device)
        units = {
            "reference": ref_train,
            **{k: (lambda m=m, t=t: memae_train(m, t)) for k, (m, t) in trained.items()},
        }
        summary = _timed(units, args.repeats, device, len(starts))
        x = torch.stack([ref.RefClipDataset(paths, starts, size, clip_len)[i] for i in range(w.train_batch)])
        summary["reference"]["peak_bytes"] = harness.peak_memory(
            lambda: run_one_ref(reference, x.to(device), config), device
        )
        for key, (m, t) in trained.items():
            summary[key]["peak_bytes"] = harness.peak_memory(
                lambda m=m, t=t: fit_model(m, config, t, TensorDataset(x)), device
            )
        cfg = {**cfg, "batch": w.train_batch, "clips_per_epoch": len(starts)}
        cfg.pop("scored_frames")
        cfg.pop("alignment")
        results.append(_entry("video-train", f"{w.backbone} training, clips/s", "video", cfg, summary))
    return results


# --- the command ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated, run in this order")
    parser.add_argument("--backbones", default=None, help="comma-separated subset of the workloads")
    parser.add_argument("--video-backbone", default=None, help="default: video-small on CPU, video on GPU")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    workloads = GPU_WORKLOADS if device.type == "cuda" else CPU_WORKLOADS
    if args.backbones:
        keep = set(args.backbones.split(","))
        workloads = [w for w in workloads if w.backbone in keep]
    args.video_backbone = args.video_backbone or ("video" if device.type == "cuda" else "video-small")
    suites = args.suites.split(",")
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suites {unknown}; known: {', '.join(SUITES)}")
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "provenance": provenance(),
        "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "config": {
            **{k: v for k, v in vars(args).items() if k != "out"},
            "torch_threads": torch.get_num_threads(),
            "targets": TARGETS,
        },
        "seeds": {"models_and_data": args.seed},
        "results": [],
    }
    out = Path(args.out)

    def save() -> None:
        harness.write_json(out, record, indent=1)

    if "peak" in suites:
        record["matmul_peak"] = harness.matmul_peak(device)
        if device.type == "cuda":
            record["matmul_peak_bf16"] = harness.matmul_peak(device, torch.bfloat16)
        print(f"matmul peak {record['matmul_peak']['flops_per_s'] / 1e9:.1f} GFLOP/s", flush=True)
    # the suites run in the order given, so a time-limited run measures the first ones
    jobs: list[tuple[str, Callable[[], Any]]] = []
    for suite in suites:
        if suite == "memory":
            jobs += [(f"memory {n}", lambda n=n: memory_suite(n, args, device)) for n in MEMORY_CASES]
        elif suite == "train":
            jobs += [(f"train {w.backbone}", lambda w=w: train_suite(w, args, device)) for w in workloads]
        elif suite == "score":
            jobs += [(f"score {w.backbone}", lambda w=w: score_suite(w, args, device)) for w in workloads]
        elif suite == "video":
            all_workloads = GPU_WORKLOADS if device.type == "cuda" else CPU_WORKLOADS
            jobs.append(("video", lambda w=all_workloads: video_suites(args, device, w)))
    for label, job in jobs:
        result = job()
        for entry in result if isinstance(result, list) else [result]:
            record["results"].append(entry)
            speedups = ", ".join(
                f"{k} {v['speedup']:.2f}x" for k, v in entry["units"].items() if k != "reference"
            )
            print(f"{label}: {entry['name']}: {speedups}", flush=True)
        save()
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
