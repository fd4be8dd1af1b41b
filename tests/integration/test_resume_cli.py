"""`memae train` killed with SIGKILL mid-epoch, then `--resume`: the same model as an
uninterrupted run."""

import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from memae import MemAEDetector
from memae.checkpoint import load_checkpoint, read_metadata
from memae.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

# Runs `memae train` and SIGKILLs the process itself just before optimiser step number
# argv[1]: no atexit handler, no finally block and no buffered write gets to run.
KILLED_TRAIN = """
import os, signal, sys
from torch.optim.optimizer import register_optimizer_step_pre_hook
from memae.cli import main

kill_at, calls = int(sys.argv[1]), [0]

def hook(optimizer, args, kwargs):
    calls[0] += 1
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

register_optimizer_step_pre_hook(hook)
sys.exit(main(sys.argv[2:]))
"""


def _argv(data: str, out: str) -> list[str]:
    # 40 samples, 4 held out for validation: 36 train in batches of 8 = 5 steps an epoch
    return [
        "train", "--data", data, "--out", out, "--epochs", "4", "--batch-size", "8",
        "--schedule", "cosine", "--lr", "0.01", "--random-state", "3", "--device", "cpu",
        "--verbose", "false", "--checkpoint-every", "2",
    ]  # fmt: skip


def test_sigkilled_training_resumes_to_the_same_weights(tmp_path, capsys) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32))
    killed, reference = tmp_path / "killed.memae", tmp_path / "reference.memae"

    run = subprocess.run(
        [sys.executable, "-c", KILLED_TRAIN, "13", *_argv(str(data), str(killed))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert not killed.exists()
    state = tmp_path / "killed.memae.state"
    # killed before step 13 = step 3 of epoch 2; the last write was after its step 2
    assert {k: read_metadata(state)["progress"][k] for k in ("epoch", "step")} == {"epoch": 2, "step": 2}

    assert main([*_argv(str(data), str(killed)), "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert killed.exists() and not state.exists()
    assert main(_argv(str(data), str(reference))) == 0

    got, got_meta = load_checkpoint(killed)
    want, want_meta = load_checkpoint(reference)
    assert got.keys() == want.keys()
    for name, tensor in want.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)
    assert got_meta["history"] == want_meta["history"]


def test_resume_refuses_other_parameters_or_data(tmp_path, capsys) -> None:
    data = tmp_path / "x.npy"
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    np.save(data, X)
    out = tmp_path / "m.memae"
    # the state a run of _argv's parameters leaves (the API keeps it; `memae train` removes it)
    params = {"epochs": 4, "batch_size": 8, "schedule": "cosine", "lr": 0.01, "random_state": 3}
    MemAEDetector(**params, device="cpu").fit(X, training_state=f"{out}.state")
    assert main([*_argv(str(data), str(out)), "--resume", "--lr", "0.02"]) == 1
    assert "params.lr was 0.01, now 0.02" in capsys.readouterr().err
    other = tmp_path / "y.npy"
    np.save(other, np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32))
    assert main([*_argv(str(other), str(out)), "--resume"]) == 1
    assert "different training run: data_sha256" in capsys.readouterr().err
    assert not out.exists()
    assert main([*_argv(str(data), str(out)), "--resume"]) == 0  # the same run resumes (here: ends)
