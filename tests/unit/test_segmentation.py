import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from memae.segmentation import pixel_auroc, pro_auc, regions


def _brute_force_pro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    """Every distinct value as a threshold, regions by a flood fill written out here."""
    labels = np.zeros(masks.shape, dtype=int)
    count = 0
    for i in range(masks.shape[0]):
        for r0 in range(masks.shape[1]):
            for c0 in range(masks.shape[2]):
                if masks[i, r0, c0] and not labels[i, r0, c0]:
                    count += 1
                    stack = [(r0, c0)]
                    labels[i, r0, c0] = count
                    while stack:
                        r, c = stack.pop()
                        for dr in (-1, 0, 1):
                            for dc in (-1, 0, 1):
                                rr, cc = r + dr, c + dc
                                inside = 0 <= rr < masks.shape[1] and 0 <= cc < masks.shape[2]
                                if inside and masks[i, rr, cc] and not labels[i, rr, cc]:
                                    labels[i, rr, cc] = count
                                    stack.append((rr, cc))
    normal = maps[~masks]
    xs, ys = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        xs.append(float(np.mean(normal >= t)))
        ys.append(float(np.mean([np.mean(maps[labels == k] >= t) for k in range(1, count + 1)])))
    xs, ys = np.array(xs), np.array(ys)
    keep = xs <= fpr_limit
    x, y = xs[keep], ys[keep]
    j = int(np.argmax(~keep))
    y_end = ys[j - 1] + (ys[j] - ys[j - 1]) * (fpr_limit - xs[j - 1]) / (xs[j] - xs[j - 1])
    x, y = np.append(x, fpr_limit), np.append(y, y_end)
    return float(np.trapezoid(y, x) / fpr_limit)


def _case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    masks = np.zeros((4, 12, 12), dtype=bool)
    masks[0, 2:5, 2:5] = True
    masks[0, 8:10, 7:11] = True  # a second region in the same image
    masks[2, 5:9, 1:3] = True
    maps = rng.random(masks.shape) + 0.8 * masks * rng.random(masks.shape)
    return np.round(maps, 2), masks  # rounding makes ties


def test_pro_matches_every_threshold_brute_force(rng) -> None:
    maps, masks = _case(rng)
    for limit in (0.3, 0.05, 1.0):
        assert pro_auc(maps, masks, fpr_limit=limit) == pytest.approx(
            _brute_force_pro(maps, masks, limit), abs=1e-9
        )


def test_pro_is_one_for_a_perfect_map_and_low_for_an_inverted_one(rng) -> None:
    _, masks = _case(rng)
    assert pro_auc(masks.astype(float), masks) == pytest.approx(1.0)
    assert pro_auc(1.0 - masks, masks) == pytest.approx(0.0)


def test_pro_weighs_regions_equally_unlike_the_pixel_auroc() -> None:
    masks = np.zeros((1, 20, 20), dtype=bool)
    masks[0, :10, :10] = True  # a large region, found
    masks[0, 15, 15] = True  # a one-pixel region, missed
    maps = masks.astype(float)
    maps[0, 15, 15] = -1.0  # below every normal pixel
    assert pixel_auroc(maps, masks) > 0.99
    assert pro_auc(maps, masks) == pytest.approx(0.5, abs=1e-9)


def test_regions_are_eight_connected_per_image() -> None:
    masks = np.zeros((2, 5, 5), dtype=bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True  # diagonal neighbours: one region
    masks[0, 4, 4] = True
    masks[1, 0, 0] = True
    found = regions(masks)
    assert sorted(len(r) for r in found) == [1, 1, 2]
    assert {int(i) for r in found for i in r} == {0, 6, 24, 25}


def test_pixel_auroc_equals_scikit_learns(rng) -> None:
    maps, masks = _case(rng)
    assert pixel_auroc(maps[:, None], masks[:, None]) == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel())
    )


@pytest.mark.parametrize(
    "maps, masks, message",
    [
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 5)), "same shape"),
        (np.zeros((2, 4, 4)), np.full((2, 4, 4), 2), r"0 \(normal\) and 1"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), "no anomalous region"),
    ],
)
def test_bad_inputs_are_named(maps, masks, message) -> None:
    with pytest.raises(ValueError, match=message):
        pro_auc(maps, masks)
