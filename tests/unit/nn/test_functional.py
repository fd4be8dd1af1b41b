import math

import pytest
import torch

from memae.nn import functional as MF


@pytest.mark.parametrize("kind", ["cosine", "dot"])
@pytest.mark.parametrize("threshold", [0.0, 0.01, 0.05])
def test_weights_are_a_distribution_and_survivors_exceed_lambda(kind: str, threshold: float) -> None:
    q, m = torch.randn(64, 8), torch.randn(40, 8)
    w = MF.address(q, m, threshold, kind)  # type: ignore[arg-type]
    assert (w >= 0).all()
    sums = w.sum(dim=1)
    nonzero_rows = sums > 0
    torch.testing.assert_close(sums[nonzero_rows], torch.ones(int(nonzero_rows.sum())))
    if threshold > 0:
        assert (w[w > 0] >= threshold).all()


def test_lambda_zero_is_plain_softmax() -> None:
    q, m = torch.randn(10, 5), torch.randn(7, 5)
    expected = torch.softmax(F_cos(q, m), dim=1)
    torch.testing.assert_close(MF.address(q, m, 0.0, "cosine"), expected)
    torch.testing.assert_close(MF.address(q, m, 0.0, "dot"), torch.softmax(q @ m.t(), dim=1))


def F_cos(q: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (q / q.norm(dim=1, keepdim=True)) @ (m / m.norm(dim=1, keepdim=True)).t()


def test_cosine_similarity_is_scale_invariant_and_dot_is_not() -> None:
    q, m = torch.randn(4, 6), torch.randn(3, 6)
    torch.testing.assert_close(MF.similarity(3 * q, m, "cosine"), MF.similarity(q, m, "cosine"))
    torch.testing.assert_close(MF.similarity(3 * q, m, "dot"), 3 * MF.similarity(q, m, "dot"))
    with pytest.raises(ValueError, match="similarity must be one of"):
        MF.similarity(q, m, "euclid")  # type: ignore[arg-type]


def test_hard_shrink_keeps_values_above_threshold_and_zeroes_below() -> None:
    w = torch.tensor([[0.5, 0.2, 0.05, 0.25]])
    out = MF.hard_shrink(w, 0.2)
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.0, 0.0, 0.25]]))


def test_all_weights_below_lambda_give_zeros_not_nan() -> None:
    # a nearly flat softmax over 100 slots with λ above every weight
    q, m = torch.randn(5, 4), torch.randn(100, 4)
    w = MF.address(q, m, 0.5, "cosine")
    assert torch.isfinite(w).all()
    assert (w == 0).all()
    torch.testing.assert_close(MF.read(w, m), torch.zeros(5, 4))


def test_read_is_weights_times_memory() -> None:
    w, m = torch.rand(6, 9), torch.randn(9, 3)
    torch.testing.assert_close(MF.read(w, m), w @ m)


def test_entropy_of_one_hot_is_zero_and_of_uniform_is_log_n() -> None:
    n = 12
    one_hot = torch.zeros(3, n)
    one_hot[:, 4] = 1
    assert MF.addressing_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-9)
    uniform = torch.full((3, n), 1.0 / n)
    assert MF.addressing_entropy(uniform).item() == pytest.approx(math.log(n), rel=1e-5)


def test_entropy_averages_over_spatial_queries() -> None:
    w = torch.softmax(torch.randn(2, 7, 3, 4), dim=1)
    rows = w.movedim(1, -1).reshape(-1, 7)
    torch.testing.assert_close(MF.addressing_entropy(w), MF.addressing_entropy(rows))


def test_l1_normalize_rows_sum_to_one() -> None:
    w = torch.rand(5, 8)
    torch.testing.assert_close(MF.l1_normalize(w).sum(dim=1), torch.ones(5))
