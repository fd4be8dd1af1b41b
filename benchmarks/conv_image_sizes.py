"""Size and CPU time of the generic ``conv`` net on 128 and 256 px RGB images.

    OMP_NUM_THREADS=1 python benchmarks/conv_image_sizes.py --threads 1

Compares the large-image net (stride-2 stages down to an 8x8 encoding, memory per location)
with the three-stage net and global memory that small images keep, built at the same sizes:
parameters, and milliseconds per image for a training step and for scoring (the median of
``--repeats`` timings). Writes ``results/conv_image_sizes.json`` with the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from memae import ModelConfig
from memae.nn import build_model
from memae.nn.backbones import Backbone, conv_autoencoder, count_parameters, register_backbone
from memae.training import score


@register_backbone("conv-three-stages-global", "the small-image conv net at any size, for comparison")
def _three_stages(input_shape: tuple[int, ...], width: float) -> Backbone:
    enc, dec, latent = conv_autoencoder(input_shape, [32, 64, 128], [2, 2, 2], nn.ReLU)
    return Backbone(enc, dec, latent, "global", 100)


def _median_ms(step, n_images: int, repeats: int) -> float:  # type: ignore[no-untyped-def]
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times) / n_images, 2)


def measure(backbone: str, side: int, batch: int, repeats: int) -> dict[str, object]:
    torch.manual_seed(0)
    model, config = build_model(ModelConfig((3, side, side), backbone=backbone))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, side, side)

    def train_step() -> None:
        model.train()
        loss = ((model(x).output - x) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return {
        "backbone": backbone,
        "image": [3, side, side],
        "encoding": list(model.latent_shape),
        "addressing": config.addressing,
        "parameters": count_parameters(model),
        "memory_parameters": int(model.memory.memory.numel()),
        "train_ms_per_image": _median_ms(train_step, batch, repeats),
        "score_ms_per_image": _median_ms(lambda: score(model, x, batch), batch, repeats),
    }


def main() -> None:
    from memae.provenance import provenance

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/conv_image_sizes.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [
        measure(name, side, args.batch, args.repeats)
        for side in (128, 256)
        for name in ("conv", "conv-three-stages-global")
    ]
    record = {**provenance(), "threads": args.threads, "batch": args.batch, "rows": rows}
    harness.write_json(args.out, record)
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
