import pytest
import torch

from memae.nn import functional as MF
from memae.nn import fused


def _plain(q: torch.Tensor, m: torch.Tensor, threshold: float, kind: str) -> tuple[torch.Tensor, ...]:
    weights = MF.address(q, m, threshold, kind)  # type: ignore[arg-type]
    return MF.read(weights, m), weights


def _leaves(dtype: torch.dtype, rows: int = 48, slots: int = 30, dim: int = 6) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(rows, dim, generator=generator, dtype=dtype)
    m = torch.randn(slots, dim, generator=generator, dtype=dtype)
    return q.requires_grad_(), m.requires_grad_()


@pytest.mark.parametrize("kind", ["cosine", "dot"])
@pytest.mark.parametrize("threshold", [0.0, 0.02, 0.05])
@pytest.mark.parametrize("dim", [6, 40])
def test_forward_equals_the_plain_functions(kind: str, threshold: float, dim: int) -> None:
    # norms scale the product instead of the operands, narrow products run transposed:
    # float rounding apart
    q, m = _leaves(torch.float32, dim=dim)
    read, weights = fused.address_read(q, m, threshold, kind)
    expected_read, expected_weights = _plain(q, m, threshold, kind)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(read, expected_read, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dim", [6, 40])
def test_zero_queries_and_slots_get_f_normalize_gradients(dim: int) -> None:
    """F.normalize divides a row whose norm is under its eps by eps, not by the norm."""
    q, m = _leaves(torch.float64, dim=dim)
    with torch.no_grad():
        q[3].zero_()
        m[5].zero_()
    target = torch.linspace(-1, 1, q.numel(), dtype=torch.float64).view_as(q)
    read, weights = fused.address_read(q, m, 0.02, "cosine")
    ((read - target).pow(2).mean() + 0.3 * fused.addressing_entropy(weights)).backward()
    got = (q.grad.clone(), m.grad.clone())  # type: ignore[union-attr]
    q.grad, m.grad = None, None
    read, weights = _plain(q, m, 0.02, "cosine")
    ((read - target).pow(2).mean() + 0.3 * MF.addressing_entropy(weights)).backward()
    torch.testing.assert_close(got[0], q.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[1], m.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["cosine", "dot"])
@pytest.mark.parametrize("threshold", [0.0, 0.02, 0.05])
@pytest.mark.parametrize("terms", ["read", "entropy", "both"])
@pytest.mark.parametrize("dim", [6, 40])  # normalised copies / scaled products
def test_gradients_equal_autograd_on_the_plain_functions(
    dtype: torch.dtype, kind: str, threshold: float, terms: str, dim: int
) -> None:
    def loss(read: torch.Tensor, weights: torch.Tensor, entropy) -> torch.Tensor:
        target = torch.linspace(-1, 1, read.numel(), dtype=dtype).view_as(read)
        parts = {"read": (read - target).pow(2).mean(), "entropy": 0.3 * entropy(weights)}
        return sum(v for k, v in parts.items() if terms in (k, "both"))

    q, m = _leaves(dtype, dim=dim)
    loss(*fused.address_read(q, m, threshold, kind), fused.addressing_entropy).backward()
    got = (q.grad.clone(), m.grad.clone())  # type: ignore[union-attr]
    q.grad, m.grad = None, None
    loss(*_plain(q, m, threshold, kind), MF.addressing_entropy).backward()
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-6}
    torch.testing.assert_close(got[0], q.grad, **tol)
    torch.testing.assert_close(got[1], m.grad, **tol)


def test_rows_with_every_weight_under_lambda_read_zero_and_have_finite_gradients() -> None:
    q, m = _leaves(torch.float64, slots=100)
    read, weights = fused.address_read(q, m, 0.5, "cosine")
    assert torch.equal(weights, torch.zeros_like(weights)) and torch.equal(read, torch.zeros_like(read))
    (read.sum() + fused.addressing_entropy(weights)).backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(m.grad).all()  # type: ignore[arg-type]
    q.grad, m.grad = None, None
    read, weights = _plain(q, m, 0.5, "cosine")
    (read.sum() + MF.addressing_entropy(weights)).backward()
    assert torch.equal(q.grad, torch.zeros_like(q))  # type: ignore[arg-type]


def test_entropy_of_a_strided_view_matches_and_backpropagates() -> None:
    base = torch.softmax(torch.randn(2, 3, 4, 10, dtype=torch.float64), dim=-1)
    a = base.clone().requires_grad_()
    b = base.clone().requires_grad_()
    value = fused.addressing_entropy(a.movedim(-1, 1))
    expected = MF.addressing_entropy(b.movedim(-1, 1))
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)
    (2 * value).backward()
    (2 * expected).backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_entropy_of_contiguous_weights_with_slots_first() -> None:
    base = torch.softmax(torch.randn(2, 10, 3, dtype=torch.float64), dim=1)
    a = base.clone().requires_grad_()
    b = base.clone().requires_grad_()
    value, expected = fused.addressing_entropy(a), MF.addressing_entropy(b)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)
    value.backward()
    expected.backward()
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("dim", [6, 40])  # a narrow and a wide memory
def test_no_grad_path_is_the_same_maths(dim: int) -> None:
    q, m = _leaves(torch.float32, dim=dim)
    with torch.inference_mode():
        read, weights = fused.address_read(q, m, 0.02, "cosine")
    expected_read, expected_weights = _plain(q.detach(), m.detach(), 0.02, "cosine")
    assert torch.equal(weights, expected_weights)
    torch.testing.assert_close(read, expected_read, rtol=1e-6, atol=1e-7)


def test_unknown_similarity_raises() -> None:
    with pytest.raises(ValueError, match="similarity must be one of"):
        fused.address_read(torch.randn(2, 3), torch.randn(4, 3), 0.0, "euclid")


def test_autograd_sees_one_node_each() -> None:
    q, m = _leaves(torch.float32)
    read, weights = fused.address_read(q, m, 0.02, "cosine")
    assert type(read.grad_fn).__name__ == "_AddressReadBackward"
    assert type(fused.addressing_entropy(weights).grad_fn).__name__ == "_EntropyBackward"
