import dataclasses

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import TensorDataset

from memae.checkpoint import CheckpointError, read_metadata
from memae.config import ModelConfig, TrainConfig
from memae.nn.model import build_model
from memae.resume import EpochSampler, TrainingCheckpointer, flatten_state, unflatten_state
from memae.training import fit_model, make_optimizer

MODEL = ModelConfig(input_shape=(5,), memory_size=8)
TRAIN = TrainConfig(epochs=3, batch_size=8, lr=1e-2, schedule="cosine", seed=7, device="cpu")


@pytest.fixture(scope="module")
def data() -> TensorDataset:
    return TensorDataset(torch.from_numpy(np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)))


def _train(
    data: TensorDataset, checkpointer: TrainingCheckpointer | None = None, config: ModelConfig = MODEL
):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model, resolved = build_model(config)
    history = fit_model(model, resolved, TRAIN, data, checkpointer=checkpointer)
    return model, history


class _Interrupt(Exception):
    pass


def _interrupt_at(call: int):  # type: ignore[no-untyped-def]
    calls = []

    def hook(optimizer, args, kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == call:
            raise _Interrupt

    return register_optimizer_step_pre_hook(hook)


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    sampler = EpochSampler(20, seed=3)
    sampler.set_epoch(2)
    order = list(sampler)
    assert sorted(order) == list(range(20))
    sampler.set_epoch(1)
    assert list(sampler) != order
    again = EpochSampler(20, seed=3)
    again.set_epoch(2, skip=8)
    assert list(again) == order[8:] and len(again) == 12


def test_optimizer_and_scheduler_state_round_trip_exactly(data: TensorDataset) -> None:
    model, _ = build_model(MODEL)
    optimizer, scheduler = make_optimizer(model, TRAIN)
    for _ in range(3):
        model(data.tensors[0]).output.pow(2).mean().backward()
        optimizer.step()
        scheduler.step()  # type: ignore[union-attr]
    for state in (optimizer.state_dict(), scheduler.state_dict()):  # type: ignore[union-attr]
        tensors: dict[str, torch.Tensor] = {}
        flat = flatten_state(state, "s", tensors)
        restored = unflatten_state(flat, tensors)
        assert restored.keys() == state.keys()
        assert repr(restored) == repr(state)  # int keys, tuples and every value as they were


@pytest.mark.parametrize("every, interrupt_at", [(0, 6), (2, 7), (3, 12)])
def test_interrupted_run_resumes_to_the_same_weights(
    data: TensorDataset, tmp_path, every: int, interrupt_at: int
) -> None:
    reference, reference_history = _train(data)
    path = tmp_path / "run.state"
    handle = _interrupt_at(interrupt_at)  # 4 steps an epoch: 6, 7 and 12 fall mid-epoch
    try:
        with pytest.raises(_Interrupt):
            _train(data, TrainingCheckpointer(path, every_steps=every))
    finally:
        handle.remove()
    progress = read_metadata(path)["progress"]
    done = interrupt_at - 1
    expected_step = done % 4 // every * every if every else 0
    assert (progress["epoch"], progress["step"]) == (done // 4, expected_step)
    resumed, history = _train(data, TrainingCheckpointer(path, every_steps=every))
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    assert dataclasses.asdict(history) == dataclasses.asdict(reference_history)


def test_a_channels_last_conv_run_resumes_to_the_same_weights(tmp_path) -> None:
    # TRAIN's channels_last="auto" trains this 2-D conv net channels-last on the CPU; the
    # state file holds contiguous tensors, which the resumed run's layouts take back
    config = ModelConfig(input_shape=(1, 12, 12), backbone="conv", memory_size=8)
    images = TensorDataset(
        torch.from_numpy(np.random.default_rng(1).random((30, 1, 12, 12), dtype=np.float32))
    )
    reference, reference_history = _train(images, config=config)
    path = tmp_path / "run.state"
    handle = _interrupt_at(7)
    try:
        with pytest.raises(_Interrupt):
            _train(images, TrainingCheckpointer(path, every_steps=2), config=config)
    finally:
        handle.remove()
    resumed, history = _train(images, TrainingCheckpointer(path, every_steps=2), config=config)
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    assert dataclasses.asdict(history) == dataclasses.asdict(reference_history)
    assert all(p.is_contiguous() for p in resumed.parameters())


def test_a_state_of_another_run_is_refused(data: TensorDataset, tmp_path) -> None:
    path = tmp_path / "run.state"
    _train(data, TrainingCheckpointer(path, fingerprint={"params": {"lr": 0.01, "epochs": 3}}))
    with pytest.raises(CheckpointError, match=r"different training run: params.lr was 0.01, now 0.1"):
        _train(data, TrainingCheckpointer(path, fingerprint={"params": {"lr": 0.1, "epochs": 3}}))


def test_a_detector_checkpoint_is_not_a_training_state(tmp_path) -> None:
    from memae import MemAEDetector

    det = MemAEDetector(epochs=1, random_state=0, device="cpu").fit(np.zeros((10, 3), np.float32))
    path = det.save(tmp_path / "m.memae")
    with pytest.raises(CheckpointError, match="expected a training state"):
        TrainingCheckpointer(path).restore(*_model_and_optimizer())


def _model_and_optimizer():  # type: ignore[no-untyped-def]
    model, _ = build_model(MODEL)
    return (model, *make_optimizer(model, TRAIN))
