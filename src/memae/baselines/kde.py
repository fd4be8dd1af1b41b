"""Gaussian kernel density by matrix products: the log-density that scikit-learn's
``KernelDensity(kernel="gaussian")`` defines, computed exactly, for several bandwidths from
one pass over the pairwise distances.

scikit-learn walks a KD- or ball tree. On images (784 or 3,072 dimensions) that visits
every pair one by one, and where the kernel values are tiny it returned log-densities off
by hundreds (its issues #25799 and #7492; seen with scikit-learn 1.9). Here the
squared distances come from BLAS, in float64, a block of queries at a time, each bandwidth
reuses them, and the sum is taken in log space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp

#: Queries per block: a block holds ``QUERY_BLOCK × len(fit)`` float64 distances.
QUERY_BLOCK = 1024


def gaussian_log_density(
    fit: np.ndarray, query: np.ndarray, bandwidths: Sequence[float], block: int = QUERY_BLOCK
) -> np.ndarray:
    """``log p_h(q) = log(1/n Σ_j N(q; x_j, h² I))`` for every bandwidth ``h`` and query row.

    ``fit`` is ``(n, d)``, ``query`` ``(m, d)``; returns ``(len(bandwidths), m)``, row ``i``
    what ``KernelDensity(bandwidth=bandwidths[i]).fit(fit).score_samples(query)`` is defined
    to return (and does, where its tree is exact).
    """
    fit = np.asarray(fit, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    if fit.ndim != 2 or query.ndim != 2 or fit.shape[1] != query.shape[1]:
        raise ValueError(
            f"expected 2-D fit and query data with as many columns, got shapes {fit.shape} and {query.shape}"
        )
    if len(fit) == 0:
        raise ValueError("expected at least one sample to fit the density to, got 0")
    h = np.asarray(bandwidths, dtype=np.float64)
    if h.ndim != 1 or not np.all(h > 0):
        raise ValueError(f"expected positive bandwidths, got {list(bandwidths)}")
    n, d = fit.shape
    # the Gaussian kernel's normalisation and the 1/n of the mean, per bandwidth
    offset = -np.log(n) - 0.5 * d * np.log(2 * np.pi * h**2)
    fit_sq = np.einsum("ij,ij->i", fit, fit)
    out = np.empty((len(h), len(query)))
    for start in range(0, len(query), block):
        part = query[start : start + block]
        sq = np.einsum("ij,ij->i", part, part)[:, None] + fit_sq[None, :] - 2.0 * part @ fit.T
        np.maximum(sq, 0.0, out=sq)  # rounding can leave a coincident pair slightly below 0
        for i, width in enumerate(h):
            out[i, start : start + block] = logsumexp(sq * (-0.5 / width**2), axis=1) + offset[i]
    return out
