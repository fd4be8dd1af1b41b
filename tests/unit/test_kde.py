import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.neighbors import KernelDensity

from memae.baselines.kde import gaussian_log_density


def _direct(fit: np.ndarray, query: np.ndarray, h: float) -> np.ndarray:
    """The definition, pair by pair: log(1/n Σ_j (2πh²)^(-d/2) exp(-|q - x_j|² / 2h²))."""
    sq = np.stack([((q - fit) ** 2).sum(-1) for q in query])
    norm = np.log(len(fit)) + fit.shape[1] / 2 * np.log(2 * np.pi * h * h)
    return logsumexp(-sq / (2 * h * h), axis=1) - norm


def test_matches_scikit_learn_where_its_tree_is_exact() -> None:
    rng = np.random.default_rng(0)
    fit, query = rng.normal(size=(200, 3)), rng.normal(size=(50, 3))
    ours = gaussian_log_density(fit, query, [0.3, 1.0], block=7)  # several blocks, one partial
    for row, h in zip(ours, (0.3, 1.0), strict=True):
        np.testing.assert_allclose(row, KernelDensity(bandwidth=h).fit(fit).score_samples(query), rtol=1e-10)


def test_exact_on_image_like_data_with_tiny_kernel_values() -> None:
    # 784 dimensions, every kernel value below 1e-100: where scikit-learn's tree (its issues
    # #25799 and #7492) returned log-densities off by hundreds, in scikit-learn 1.9
    rng = np.random.default_rng(1)
    fit, query = rng.random((500, 784)), rng.random((30, 784))
    h = 0.5
    expected = _direct(fit, query, h)
    np.testing.assert_allclose(gaussian_log_density(fit, query, [h])[0], expected, rtol=1e-12)


def test_a_query_on_a_fitted_point() -> None:
    rng = np.random.default_rng(2)
    fit = rng.random((30, 50)) * 10  # |q|² + |x|² - 2q·x cancels to about 0 for q = x
    out = gaussian_log_density(fit, fit[:3], [0.01])[0]
    np.testing.assert_allclose(out, _direct(fit, fit[:3], 0.01), rtol=1e-10)


@pytest.mark.parametrize(
    ("fit", "query", "bandwidths", "match"),
    [
        (np.zeros((4, 3)), np.zeros((2, 4)), [1.0], "as many columns, got shapes"),
        (np.zeros(4), np.zeros((2, 4)), [1.0], "expected 2-D"),
        (np.zeros((0, 3)), np.zeros((2, 3)), [1.0], "at least one sample"),
        (np.zeros((4, 3)), np.zeros((2, 3)), [1.0, 0.0], "positive bandwidths, got"),
    ],
)
def test_bad_input_names_what_was_expected(fit, query, bandwidths, match) -> None:
    with pytest.raises(ValueError, match=match):
        gaussian_log_density(fit, query, bandwidths)
