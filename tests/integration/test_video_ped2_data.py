"""The loaders on the real UCSD-Ped2 data (skipped where it is not under the data root)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from memae.data.paths import data_dir
from memae.data.video import decode_frames, read_liu_gt, read_masks, ucsd_auto, ucsd_frames

ROOT = data_dir() / "ucsd_ped2"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ROOT / "ped2").is_dir(), reason=f"UCSD-Ped2 not found under {ROOT}"),
]


def test_ped2_splits_have_the_official_counts() -> None:
    train = ucsd_auto(ROOT, 2, "train")
    test = ucsd_auto(ROOT, 2, "test")
    assert len(train) == 16 and sum(len(v.frames) for v in train.videos) == 2550
    assert len(test) == 12 and sum(len(v.frames) for v in test.videos) == 2010
    labels = test.labels()
    assert int(labels.sum()) == 1648 and int((labels == 0).sum()) == 362


def test_ped2_labels_match_the_shipped_csv_and_liu_gt() -> None:
    test = ucsd_frames(ROOT, 2, "test")
    with (ROOT / "frame_labels_test.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_array_equal(test.labels(), [int(r["label"]) for r in rows])
    names = [f"{r['clip']}/{r['frame_index0']}" for r in rows]
    ours = [f"{v.name}/{k}" for v in test.videos for k in range(len(v.frames))]
    assert names == ours
    liu = read_liu_gt(ROOT / "ped2" / "ped2.mat")
    for video, intervals in zip(test.videos, liu, strict=True):
        expected = np.zeros(len(video.frames), int)
        for s, e in intervals:
            expected[s - 1 : e] = 1
        np.testing.assert_array_equal(video.labels, expected)


def test_ped2_masks_agree_with_the_labels() -> None:
    for video in ucsd_frames(ROOT, 2, "test").videos:
        masks = read_masks(video)
        assert masks.shape == (len(video.frames), 240, 360)
        np.testing.assert_array_equal(masks.any(axis=(1, 2)).astype(int), video.labels)


def test_ped2_frames_decode_to_grayscale() -> None:
    video = ucsd_frames(ROOT, 2, "test").videos[0]
    native = decode_frames(video)
    assert native.shape == (180, 240, 360) and native.dtype == np.uint8
    assert decode_frames(video, size=(64, 64)).shape == (180, 64, 64)
