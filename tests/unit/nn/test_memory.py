import pytest
import torch

from memae.nn import MemoryModule
from memae.nn import functional as MF


@pytest.mark.parametrize("spatial", [(), (3,), (2, 3), (2, 2, 3)])
def test_every_rank_addresses_each_position_like_a_row(spatial: tuple[int, ...]) -> None:
    mem = MemoryModule(20, 6, shrink_threshold=0.04)
    query = torch.randn(4, 6, *spatial)
    out = mem(query)
    assert out.read.shape == query.shape
    assert out.weights.shape == (4, 20, *spatial)
    rows = query.movedim(1, -1).reshape(-1, 6)
    expected_w = MF.address(rows, mem.memory, 0.04, "cosine")
    torch.testing.assert_close(out.weights.movedim(1, -1).reshape(-1, 20), expected_w)
    torch.testing.assert_close(out.read.movedim(1, -1).reshape(-1, 6), expected_w @ mem.memory)


def test_gradients_reach_memory_and_query() -> None:
    mem = MemoryModule(10, 4, shrink_threshold=0.05)
    query = torch.randn(8, 4, requires_grad=True)
    out = mem(query)
    (out.read.pow(2).sum() + MF.addressing_entropy(out.weights)).backward()
    assert mem.memory.grad is not None and mem.memory.grad.abs().sum() > 0
    assert query.grad is not None and query.grad.abs().sum() > 0


def test_memory_initialisation_is_bounded() -> None:
    mem = MemoryModule(500, 64)
    assert mem.memory.shape == (500, 64)
    assert mem.memory.abs().max() <= 1 / 64**0.5


@pytest.mark.parametrize("shape", [(4, 5), (4,), (4, 5, 3)])
def test_wrong_query_shape_raises(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected a query of shape \(B, 6\)"):
        MemoryModule(10, 6)(torch.randn(*shape))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_slots": 0, "slot_dim": 3}, "num_slots"),
        ({"num_slots": 3, "slot_dim": 3, "shrink_threshold": 1.5}, "shrink_threshold"),
        ({"num_slots": 3, "slot_dim": 3, "similarity": "l2"}, "similarity"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MemoryModule(**kwargs)
