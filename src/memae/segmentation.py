"""Pixel-level metrics of anomaly maps against ground-truth masks.

``pixel_auroc`` is the ROC AUC over every pixel of every image (anomalous pixels positive).
``pro_auc`` is the area under the per-region overlap curve (Bergmann et al., MVTec AD,
CVPR 2019; IJCV 2021), as anomalib reports it: the ground truth is cut into connected
regions (8-connected, per image); at each threshold a region's overlap is the share of its
pixels at or above the threshold, the curve plots the mean overlap over all regions against
the false-positive rate over all normal pixels, and its area up to ``fpr_limit`` (0.3) is
divided by ``fpr_limit`` so that a perfect map scores 1.
"""

from __future__ import annotations

import numpy as np


def _pairs(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) float maps and boolean masks, checked against each other."""
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks)
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if maps.ndim != 3 or maps.shape != masks.shape:
        raise ValueError(
            f"expected anomaly maps and masks of the same shape (N, H, W) or (N, 1, H, W), "
            f"got {maps.shape} and {masks.shape}"
        )
    values = np.unique(masks)
    if not set(values.tolist()) <= {0, 1}:
        raise ValueError(f"masks must hold 0 (normal) and 1 (anomalous) pixels, got values {values[:10]}")
    if not np.isfinite(maps).all():
        raise ValueError("anomaly maps contain NaN or infinite values")
    return maps, masks.astype(bool)


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    """ROC AUC of every pixel's anomaly value against its mask (1 = anomalous)."""
    from sklearn.metrics import roc_auc_score

    maps, masks = _pairs(maps, masks)
    if masks.all() or not masks.any():
        raise ValueError("the pixel AUROC needs both normal and anomalous pixels in the masks")
    return float(roc_auc_score(masks.ravel(), maps.ravel()))


def regions(masks: np.ndarray) -> list[np.ndarray]:
    """The connected regions (8-connectivity) of each image's mask, as flat pixel indices
    into ``masks`` of shape (N, H, W)."""
    from scipy import ndimage

    found: list[np.ndarray] = []
    plane = masks.shape[1] * masks.shape[2]
    for i, mask in enumerate(masks):
        labelled, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
        if count == 0:
            continue
        flat = labelled.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(1, count + 2))
        found += [i * plane + order[bounds[k] : bounds[k + 1]] for k in range(count)]
    return found


def pro_curve(
    maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3, levels: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """The per-region overlap curve up to ``fpr_limit``: (false-positive rates, mean overlaps),
    the last point interpolated at exactly ``fpr_limit``.

    Thresholds are the normal-pixel values at ``levels`` false-positive rates spaced evenly
    up to a little past ``fpr_limit`` (and the next value above each); the rates and overlaps
    at them are exact, in between the curve is linear as anomalib's interpolation makes it.
    """
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit}")
    maps, masks = _pairs(maps, masks)
    found = regions(masks)
    if not found:
        raise ValueError("the masks hold no anomalous region: the per-region overlap is undefined")
    flat = maps.ravel()
    normal = np.sort(flat[~masks.ravel()])
    if normal.size == 0:
        raise ValueError("the masks hold no normal pixel: the false-positive rate is undefined")
    n = normal.size
    rates = np.linspace(0.0, min(1.0, fpr_limit * 1.05), levels + 1)[1:]
    index = np.clip(n - np.ceil(rates * n).astype(np.int64), 0, n - 1)
    # each chosen normal value and the next float above it: the curve's point just before and
    # just after the pixels at that value turn positive (a vertical step where regions tie)
    chosen = normal[index]
    thresholds = np.unique(np.concatenate([chosen, np.nextafter(chosen, np.inf), [np.inf]]))[::-1]

    def share_at_or_above(sorted_values: np.ndarray) -> np.ndarray:
        below = np.searchsorted(sorted_values, thresholds, side="left")
        return (sorted_values.size - below) / sorted_values.size

    fpr = share_at_or_above(normal)
    overlap = np.mean([share_at_or_above(np.sort(flat[r])) for r in found], axis=0)
    inside = fpr <= fpr_limit
    x, y = fpr[inside], overlap[inside]
    if x[-1] < fpr_limit and (~inside).any():
        j = int(np.argmax(~inside))  # the first point past the limit
        x0, x1, y0, y1 = fpr[j - 1], fpr[j], overlap[j - 1], overlap[j]
        y_end = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        x, y = np.append(x, fpr_limit), np.append(y, y_end)
    return x, y


def pro_auc(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3, levels: int = 2000) -> float:
    """Area under the per-region overlap curve up to ``fpr_limit``, divided by the last
    false-positive rate reached (``fpr_limit`` unless every normal pixel is below it): 1 for
    a map that puts every anomalous region above every normal pixel."""
    x, y = pro_curve(maps, masks, fpr_limit, levels)
    if x[-1] <= 0:
        return float(y[-1])
    return float(np.trapezoid(y, x) / x[-1])


__all__ = ["pixel_auroc", "pro_auc", "pro_curve", "regions"]
