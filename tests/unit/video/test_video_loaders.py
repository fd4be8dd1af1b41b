from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from video_formats import (
    TEST_INTERVALS,
    TEST_LENGTHS,
    TRAIN_LENGTHS,
    frames_of,
    interval_labels,
    write_avi,
    write_images,
)

from memae.data.video import (
    VideoSource,
    VideoTooLargeError,
    avenue,
    decode_frames,
    frames_at,
    labels_from_intervals,
    parse_ucsd_gt,
    read_liu_gt,
    read_masks,
    shanghaitech,
    to_unit_range,
    ucsd,
    ucsd_auto,
    ucsd_frames,
    user_video,
)

EXPECTED = [interval_labels(n, iv) for n, iv in zip(TEST_LENGTHS, TEST_INTERVALS, strict=True)]


def test_parse_ucsd_gt_reads_ranges_single_frames_and_several_intervals() -> None:
    text = (
        "TestVideoFile = {};\n"
        "TestVideoFile{end+1}.gt_frame = [61:180];\n"
        "TestVideoFile{end+1}.gt_frame = [5:90, 140:200];\n"
        "TestVideoFile{end+1}.gt_frame = [7 9:10];\n"
    )
    assert parse_ucsd_gt(text) == [[(61, 180)], [(5, 90), (140, 200)], [(7, 7), (9, 10)]]


def test_parse_ucsd_gt_refuses_a_file_without_ground_truth() -> None:
    with pytest.raises(ValueError, match="gt_frame"):
        parse_ucsd_gt("% nothing here\n")


def test_labels_from_intervals_are_one_based_and_inclusive() -> None:
    np.testing.assert_array_equal(labels_from_intervals([(2, 3), (5, 5)], 6), [0, 1, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="does not fit"):
        labels_from_intervals([(4, 7)], 6)


def test_ucsd_official_layout(ucsd_official: Path) -> None:
    train = ucsd(ucsd_official, ped=2, split="train")
    assert [v.name for v in train.videos] == ["Train001", "Train002"]
    assert [len(v.frames) for v in train.videos] == list(TRAIN_LENGTHS)
    assert all(v.labels is None for v in train.videos)
    test = ucsd(ucsd_official, ped=2, split="test")
    assert [v.name for v in test.videos] == ["Test001", "Test002"]
    for video, expected in zip(test.videos, EXPECTED, strict=True):
        np.testing.assert_array_equal(video.labels, expected)
        masks = read_masks(video)
        assert masks.shape == (len(expected), 16, 24)
        # The labels from UCSDped2.m and the pixel masks agree frame by frame.
        np.testing.assert_array_equal(masks.any(axis=(1, 2)).astype(int), expected)
    # Frames are in numeric order: 001 ... 020.
    assert [p.name for p in test.videos[0].frames][:3] == ["001.tif", "002.tif", "003.tif"]
    np.testing.assert_array_equal(test.labels(), np.concatenate(EXPECTED))


def test_ucsd_frame_names_sort_naturally(tmp_path: Path) -> None:
    folder = tmp_path / "UCSDped1" / "Train" / "Train001"
    write_images(folder, frames_of(12, 0), [f"frame{k}.tif" for k in range(1, 13)])
    video = ucsd(tmp_path, ped=1, split="train").videos[0]
    assert [p.name for p in video.frames][:3] == ["frame1.tif", "frame2.tif", "frame3.tif"]
    assert video.frames[-1].name == "frame12.tif"


def test_ucsd_jpeg_layout_takes_the_official_labels_and_masks(ucsd_jpeg: Path) -> None:
    train = ucsd_frames(ucsd_jpeg, ped=2, split="train")
    assert [v.name for v in train.videos] == ["01", "02"]
    test = ucsd_frames(ucsd_jpeg, ped=2, split="test")
    for video, expected in zip(test.videos, EXPECTED, strict=True):
        np.testing.assert_array_equal(video.labels, expected)
        assert isinstance(video.masks, tuple) and video.masks[0].suffix == ".png"
        np.testing.assert_array_equal(read_masks(video).any(axis=(1, 2)).astype(int), expected)
    # The auto loader falls back to the JPEG release when there are no official clips.
    assert [v.name for v in ucsd_auto(ucsd_jpeg, 2, "test").videos] == ["01", "02"]


def test_ucsd_jpeg_layout_falls_back_to_liu_gt(ucsd_jpeg: Path) -> None:
    (ucsd_jpeg / "UCSDped2" / "Test" / "UCSDped2.m").unlink()
    assert read_liu_gt(ucsd_jpeg / "ped2" / "ped2.mat") == [list(iv) for iv in TEST_INTERVALS]
    test = ucsd_frames(ucsd_jpeg, ped=2, split="test")
    for video, expected in zip(test.videos, EXPECTED, strict=True):
        np.testing.assert_array_equal(video.labels, expected)


def test_ucsd_ground_truth_for_the_wrong_number_of_videos_is_refused(ucsd_official: Path) -> None:
    gt = ucsd_official / "UCSDped2" / "Test" / "UCSDped2.m"
    gt.write_text(gt.read_text() + "TestVideoFile{end+1}.gt_frame = [1:2];\n")
    with pytest.raises(ValueError, match="lists 3 test videos, found 2"):
        ucsd(ucsd_official, 2, "test")


def test_missing_dataset_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="UCSDped2"):
        ucsd(tmp_path, 2, "train")
    with pytest.raises(ValueError, match="split"):
        ucsd(tmp_path, 2, "val")


def test_avenue_layout(avenue_root: Path) -> None:
    train = avenue(avenue_root, "train")
    assert [v.name for v in train.videos] == ["01", "02"]
    assert all(v.is_file and v.labels is None for v in train.videos)
    test = avenue(avenue_root, "test")
    for video, expected, n in zip(test.videos, EXPECTED, TEST_LENGTHS, strict=True):
        np.testing.assert_array_equal(video.labels, expected)
        assert read_masks(video).shape == (n, 16, 24)
        frames = decode_frames(video)
        assert frames.shape == (n, 16, 24) and frames.dtype == np.uint8


def test_avenue_decoded_frames_match_what_was_written(avenue_root: Path) -> None:
    frames = decode_frames(avenue(avenue_root, "train").videos[0])
    # Lossy codec: grey levels within a few steps of the originals.
    assert np.abs(frames.astype(int) - frames_of(TRAIN_LENGTHS[0], 1).astype(int)).mean() < 4


def test_shanghaitech_layout(shanghaitech_root: Path) -> None:
    train = shanghaitech(shanghaitech_root, "train")
    assert [v.name for v in train.videos] == ["01_001", "01_002"]
    assert [len(decode_frames(v)) for v in train.videos] == list(TRAIN_LENGTHS)
    test = shanghaitech(shanghaitech_root, "test")
    assert [v.name for v in test.videos] == ["01_0014", "01_0015"]
    for video, expected in zip(test.videos, EXPECTED, strict=True):
        np.testing.assert_array_equal(video.labels, expected)
        np.testing.assert_array_equal(read_masks(video).any(axis=(1, 2)).astype(int), expected)


def test_shanghaitech_label_count_must_match_frames(shanghaitech_root: Path) -> None:
    np.save(shanghaitech_root / "testing" / "test_frame_mask" / "01_0014.npy", np.zeros(3))
    with pytest.raises(ValueError, match="3 labels for 20 frames"):
        shanghaitech(shanghaitech_root, "test")


def test_user_video_file_and_frame_folder(tmp_path: Path) -> None:
    write_avi(tmp_path / "clip.avi", frames_of(17, 3))
    video = user_video(tmp_path / "clip.avi")
    assert video.name == "clip" and video.is_file and video.labels is None
    assert decode_frames(video, size=(8, 12)).shape == (17, 8, 12)
    write_images(tmp_path / "frames", frames_of(5, 4), [f"img{k}.png" for k in range(5)])
    folder = user_video(tmp_path / "frames")
    assert len(folder.frames) == 5
    with pytest.raises(FileNotFoundError):
        user_video(tmp_path / "missing.avi")
    with pytest.raises(ValueError, match="single image"):
        user_video(tmp_path / "frames" / "img0.png")
    (tmp_path / "broken.avi").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="not a readable video"):
        decode_frames(user_video(tmp_path / "broken.avi"))


def test_decode_refuses_too_many_frames_or_pixels_naming_the_limit(tmp_path: Path) -> None:
    file = user_video(write_avi(tmp_path / "clip.avi", frames_of(9, 1)))  # 16 x 24 = 384 pixels
    write_images(tmp_path / "frames", frames_of(9, 2), [f"{k}.png" for k in range(9)])
    folder = user_video(tmp_path / "frames")
    for video in (file, folder):
        assert decode_frames(video, max_frames=9, max_pixels=384).shape == (9, 16, 24)
        with pytest.raises(VideoTooLargeError, match=r"more than the 8 frames allowed \(max_frames\)") as err:
            decode_frames(video, max_frames=8)
        assert err.value.limit == "max_frames"
        with pytest.raises(VideoTooLargeError, match=r"24x16 = 384 pixels, more than the 383 allowed") as err:
            decode_frames(video, max_pixels=383)
        assert err.value.limit == "max_pixels"


def test_frames_at_returns_the_decoded_frames_it_is_asked_for(tmp_path: Path) -> None:
    write_avi(tmp_path / "clip.avi", frames_of(9, 3))
    write_images(tmp_path / "frames", frames_of(5, 4), [f"img{k}.png" for k in range(5)])
    for video in (user_video(tmp_path / "clip.avi"), user_video(tmp_path / "frames")):
        every = decode_frames(video)
        some = frames_at(video, [3, 1, 3])
        assert sorted(some) == [1, 3]
        for i, frame in some.items():
            np.testing.assert_array_equal(frame, every[i])  # at the video's own size
        assert frames_at(video, [2], size=(8, 12))[2].shape == (8, 12)
        assert frames_at(video, []) == {}
        with pytest.raises(ValueError, match=r"frames? \[?20\]? (is|are) outside video"):
            frames_at(video, [20])


def test_decode_makes_grayscale_resizes_and_scales_to_unit_range(tmp_path: Path) -> None:
    rgb = np.zeros((2, 16, 24, 3), dtype=np.uint8)
    rgb[0] = 255
    rgb[1, :, :, 0] = 255  # pure red -> ITU-R 601 luma 76
    folder = tmp_path / "rgb"
    folder.mkdir()
    from PIL import Image

    for k, frame in enumerate(rgb):
        Image.fromarray(frame).save(folder / f"{k}.png")
    frames = decode_frames(VideoSource("rgb", tuple(sorted(folder.iterdir()))), size=(8, 12))
    assert frames.shape == (2, 8, 12)
    assert (frames[0] == 255).all() and (frames[1] == 76).all()
    unit = to_unit_range(frames)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit[0], 1.0)
    np.testing.assert_allclose(unit[1], 76 / 127.5 - 1)
    np.testing.assert_allclose(to_unit_range(np.zeros((1, 2, 2), np.uint8)), -1.0)


def test_decode_refuses_labels_of_another_length(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "v", frames_of(4, 0), [f"{k}.png" for k in range(4)])
    with pytest.raises(ValueError, match="3 labels for 4 frames"):
        decode_frames(VideoSource("v", tuple(paths), labels=np.zeros(3)))
