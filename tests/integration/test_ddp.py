"""``torchrun --nproc_per_node=2 memae train`` (gloo, CPU) ends where one process with the
same global batch ends: the same weights, batch-norm statistics, scores and threshold."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from memae.checkpoint import load_checkpoint
from memae.fast import compile_unavailable

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with gloo",
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", MEMAE_DIST_BACKEND="gloo", CUDA_VISIBLE_DEVICES="")
    return env


def _train(args: list[str], out: Path, processes: int) -> dict[str, torch.Tensor]:
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}"]
    launcher.append("--standalone")
    command = [*(launcher if processes > 1 else [sys.executable]), "-m", "memae.cli", "train", *args]
    done = subprocess.run(
        [*command, "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    tensors, meta = load_checkpoint(out)
    return {**tensors, "threshold": torch.tensor(meta["scoring"]["threshold"])}


# 72 samples, 7 held out for validation: 65 = 4 x 16 + 1, so rank 1's share of the last
# global batch is empty, and the shard logic is exercised at its edge.
CASES = {
    "mlp (no batch norm)": ("mlp", (72, 6)),
    "conv (batch norm synchronised across ranks)": ("conv", (72, 1, 8, 8)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path, case: str) -> None:
    backbone, shape = CASES[case]
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=shape).astype(np.float32))
    args = ["--data", str(data), "--backbone", backbone, "--epochs", "2", "--batch-size", "16"]
    args += ["--random-state", "3", "--memory-size", "10", "--lr", "0.01", "--device", "cpu"]
    one = _train(args, tmp_path / "one.memae", 1)
    two = _train(args, tmp_path / "two.memae", 2)
    assert one.keys() == two.keys()
    drifting = _biases_before_batch_norm(one)
    # Adam divides by the root of the squared gradient, so rounding differences in a tiny
    # gradient show up as a sliver of one step: the tolerance is 1 % of the lr.
    exact = one.keys() - drifting - {"scoring.train_scores", "scoring.validation_scores", "threshold"}
    for key in exact:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-4, msg=lambda m, k=key: f"{k}: {m}")
    # A conv bias right before a batch norm has a gradient of exactly 0; Adam turns its
    # float rounding noise into steps of up to lr each, in one process as in two, and the
    # norm's running mean follows it. Each run's drift is about lr per step, so the two
    # runs part by at most about twice that; the scores by what that shift does.
    steps = 2 * 5
    for key in drifting:
        assert (two[key] - one[key]).abs().max() <= 2 * 0.01 * steps, key
    tolerance = {"rtol": 5e-2, "atol": 1e-4} if drifting else {"rtol": 1e-4, "atol": 1e-6}
    for key in ("scoring.train_scores", "scoring.validation_scores", "threshold"):
        torch.testing.assert_close(two[key], one[key], **tolerance, msg=lambda m, k=key: f"{k}: {m}")
    assert bool(drifting) == (backbone == "conv")
    assert not (tmp_path / "two.memae.state").exists()


@pytest.mark.slow
@pytest.mark.skipif(compile_unavailable("cpu") is not None, reason=str(compile_unavailable("cpu")))
def test_two_compiled_processes_match_one_eager_process(tmp_path: Path) -> None:
    """``--compile true`` under torchrun: DDP over compiled steps, the empty share of the
    last global batch run eagerly, ends where one eager process ends."""
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=CASES["mlp (no batch norm)"][1]).astype(np.float32))
    args = ["--data", str(data), "--backbone", "mlp", "--epochs", "2", "--batch-size", "16"]
    args += ["--random-state", "3", "--memory-size", "10", "--lr", "0.01", "--device", "cpu"]
    one = _train(args, tmp_path / "one.memae", 1)
    two = _train([*args, "--compile", "true"], tmp_path / "two.memae", 2)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")


def _biases_before_batch_norm(tensors: dict[str, torch.Tensor]) -> set[str]:
    """``X.i.bias`` of a layer followed by a batch norm ``X.{i+1}``, and that norm's running mean."""
    keys = set()
    for key in tensors:
        prefix, _, leaf = key.rpartition(".")
        parent, _, index = prefix.rpartition(".")
        if leaf == "bias" and index.isdigit() and f"{parent}.{int(index) + 1}.running_mean" in tensors:
            keys |= {key, f"{parent}.{int(index) + 1}.running_mean"}
    return keys


def test_sharded_batches_cover_every_global_batch_once() -> None:
    from memae.distributed import ShardedBatchSampler
    from memae.resume import EpochSampler

    n, batch, world = 37, 8, 3
    shards = [ShardedBatchSampler(n, batch, seed=5, rank=r, world_size=world) for r in range(world)]
    for s in shards:
        s.set_epoch(2, skip=batch)
    order = EpochSampler(n, 5)
    order.set_epoch(2, skip=batch)
    expected = list(order)
    per_rank = [list(s) for s in shards]
    assert len({len(b) for b in per_rank}) == 1  # every rank steps the same number of times
    rebuilt = [i for step in zip(*per_rank, strict=True) for share in step for i in share]
    assert rebuilt == expected
    assert shards[0].global_sizes() == [8, 8, 8, 5]
