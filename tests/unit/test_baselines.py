from unittest import mock

import numpy as np
import pytest
import torch

from memae.baselines import DAGMM, DSEBM, VAE, fit_scorer
from memae.baselines.deep import _cholesky
from memae.fast import use_channels_last


def test_cholesky_matches_plain_factor_and_loads_singular_covariances() -> None:
    a = torch.randn(5, 5, dtype=torch.float64)
    spd = (a @ a.T + torch.eye(5, dtype=torch.float64))[None]
    torch.testing.assert_close(_cholesky(spd), torch.linalg.cholesky(spd + 1e-6 * torch.eye(5)))
    v = torch.randn(6, 1, generator=torch.Generator().manual_seed(0)) * 30
    singular = torch.stack([v @ v.T, torch.zeros(6, 6)])  # rank 1 and all zero
    assert torch.linalg.cholesky_ex(singular + 1e-6 * torch.eye(6))[1].any()  # a small load fails
    chol = _cholesky(singular)
    assert torch.isfinite(chol).all()
    torch.testing.assert_close(chol @ chol.transpose(1, 2), singular, atol=1e-2, rtol=1e-4)
    with pytest.raises(FloatingPointError, match="not positive definite"):
        _cholesky(torch.full((1, 3, 3), float("nan")))


def _duplicated_normals_and_outliers(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal records drawn from 6 distinct rows, each repeated (as KDDCUP99's attacks are),
    and test outliers far from them."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(6, 8)).astype(np.float32)
    train = np.repeat(rows, 40, axis=0)
    test = np.concatenate([rows, rows + rng.normal(scale=4.0, size=rows.shape).astype(np.float32)])
    labels = np.r_[np.zeros(6), np.ones(6)]
    return train, test, labels


@pytest.mark.parametrize("kind", [VAE, DSEBM, DAGMM])
def test_deep_baselines_train_on_duplicated_records_and_rank_outliers_higher(kind) -> None:
    train, test, labels = _duplicated_normals_and_outliers()
    torch.manual_seed(0)
    model = kind("mlp", (8,))
    scores = fit_scorer(model, train, test, epochs=30, batch_size=32, lr=3e-3, seed=0)
    assert scores.shape == (12,) and np.isfinite(scores).all()
    assert scores[labels == 1].mean() > scores[labels == 0].mean()


@pytest.mark.parametrize("kind", [VAE, DSEBM])
def test_conv_baselines_train_channels_last_and_leave_the_model_contiguous(kind) -> None:
    rng = np.random.default_rng(0)
    images = rng.random((24, 1, 28, 28), dtype=np.float32)
    scores = {}
    for channels_last in (True, False):
        torch.manual_seed(0)
        model = kind("mnist", (1, 28, 28))
        if channels_last:
            with mock.patch("memae.baselines.deep.use_channels_last", wraps=use_channels_last) as spy:
                scores[True] = fit_scorer(model, images, images[:4], epochs=2, batch_size=8, lr=1e-3, seed=0)
            spy.assert_called_once_with(model, weights=True)
            assert all(p.is_contiguous() for p in model.parameters())
        else:
            scores[False] = fit_scorer(
                model, images, images[:4], epochs=2, batch_size=8, lr=1e-3, seed=0, channels_last=False
            )
    # the same gradients within float rounding: two short epochs end close together
    np.testing.assert_allclose(scores[True], scores[False], rtol=0.02)
