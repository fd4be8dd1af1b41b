"""Image files and folders through memae.data.read_data, on tiny files in the real formats."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memae.data import ImageOptions, read_data
from memae.data.images import ImageFileError, image_files, read_images


def _save(path: Path, array: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def _gray(rng: np.random.Generator, shape=(6, 5)) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_formats_round_trip_gray_and_rgb(tmp_path, rng, suffix) -> None:
    gray = _save(tmp_path / "gray" / f"a{suffix}", _gray(rng))
    rgb = _save(tmp_path / "rgb" / f"a{suffix}", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    got_gray, got_rgb = read_data(tmp_path / "gray"), read_data(tmp_path / "rgb")
    assert got_gray.kind == "images" and got_gray.X.dtype == np.uint8
    np.testing.assert_array_equal(got_gray.X, gray[None, None])
    np.testing.assert_array_equal(got_rgb.X, np.moveaxis(rgb, -1, 0)[None])
    assert got_gray.ids == (f"a{suffix}",)


def test_jpeg_is_read_close_to_what_was_written(tmp_path) -> None:
    smooth = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (16, 1))
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(smooth).save(tmp_path / "b.jpeg", quality=95)
    X = read_data(tmp_path).X
    assert X.shape == (2, 1, 16, 16) and X.dtype == np.uint8
    assert np.abs(X[0, 0].astype(int) - smooth).max() <= 8


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_pixels_stay_sixteen_bit(tmp_path, rng, suffix) -> None:
    deep = rng.integers(0, 65536, (4, 7), dtype=np.uint16)
    _save(tmp_path / f"deep{suffix}", deep)
    got = read_data(tmp_path / f"deep{suffix}")
    assert got.X.dtype == np.uint16
    np.testing.assert_array_equal(got.X[0, 0], deep)


def test_eight_bit_among_sixteen_bit_is_widened_to_the_same_range(tmp_path, rng) -> None:
    eight = _save(tmp_path / "a.png", _gray(rng, (4, 4)))
    _save(tmp_path / "b.png", rng.integers(0, 65536, (4, 4), dtype=np.uint16))
    X = read_data(tmp_path).X
    assert X.dtype == np.uint16
    np.testing.assert_array_equal(X[0, 0], eight.astype(np.uint16) * 257)


def test_folders_are_read_recursively_in_sorted_order_without_other_files(tmp_path, rng) -> None:
    for name in ["b/2.png", "a/10.png", "a/9.png", "c.png", ".hidden/x.png"]:
        _save(tmp_path / name, _gray(rng, (3, 3)))
    (tmp_path / "notes.txt").write_text("not an image")
    got = read_data(tmp_path)
    assert got.ids == ("a/10.png", "a/9.png", "b/2.png", "c.png")
    assert [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)] == list(got.ids)
    assert got.labels is None and got.groups is None and got.masks is None


def test_a_corrupt_file_is_one_error_naming_it_or_skipped_and_listed(tmp_path, rng) -> None:
    _save(tmp_path / "fine.png", _gray(rng))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    truncated = tmp_path / "truncated.png"
    _save(truncated, _gray(rng, (40, 40)))
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ImageFileError, match=r"broken\.png"):
        read_data(tmp_path)
    got = read_data(tmp_path, images=ImageOptions(skip_unreadable=True))
    assert got.ids == ("fine.png",) and got.skipped == ("broken.png", "truncated.png")


def test_an_empty_folder_names_what_was_expected(tmp_path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=r"no image files under .*\.png"):
        read_data(tmp_path)


def test_mixed_sizes_need_an_image_size_which_resizes_all(tmp_path, rng) -> None:
    _save(tmp_path / "a.png", _gray(rng, (6, 5)))
    _save(tmp_path / "b.png", _gray(rng, (8, 8)))
    with pytest.raises(ValueError, match=r"a.png is 6x5 .*b.png is 8x8.*image_size"):
        read_data(tmp_path)
    got = read_data(tmp_path, images=ImageOptions(image_size=(4, 3)))
    assert got.X.shape == (2, 1, 4, 3) and got.X.dtype == np.uint8


def test_mixed_channels_need_channels_which_converts_all(tmp_path, rng) -> None:
    _save(tmp_path / "a.png", _gray(rng, (4, 4)))
    rgb = _save(tmp_path / "b.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"a.png has 1, .*b.png has 3"):
        read_data(tmp_path)
    as_rgb = read_data(tmp_path, images=ImageOptions(channels=3)).X
    assert as_rgb.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(as_rgb[0, 0], as_rgb[0, 2])  # gray repeated
    as_gray = read_data(tmp_path, images=ImageOptions(channels=1)).X
    luma = np.rint(rgb.astype(float) @ [0.299, 0.587, 0.114])
    assert np.abs(as_gray[1, 0].astype(int) - luma).max() <= 1


def test_palette_and_alpha_images_become_rgb(tmp_path, rng) -> None:
    rgba = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)
    _save(tmp_path / "a.png", rgba)
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "b.png")
    X = read_data(tmp_path).X
    assert X.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(X[0], np.moveaxis(rgba[..., :3], -1, 0))


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, rng) -> None:
    _save(tmp_path / "big.png", _gray(rng, (20, 30)))
    with pytest.raises(ImageFileError, match=r"big.png is 30x20 = 600 pixels, more than the 400"):
        read_data(tmp_path / "big.png", images=ImageOptions(max_pixels=400))
    with pytest.raises(ImageFileError, match=r"big.png has more than the 250 pixels"):  # Pillow's refusal
        read_data(tmp_path / "big.png", images=ImageOptions(max_pixels=250))
    assert read_data(tmp_path / "big.png", images=ImageOptions(max_pixels=600)).X.shape == (1, 1, 20, 30)
    from PIL import Image as pil

    assert pil.MAX_IMAGE_PIXELS != 600  # the limit is restored


@pytest.mark.parametrize(
    "options, message",
    [
        (ImageOptions(channels=2), "channels must be 1"),
        (ImageOptions(image_size=(0, 4)), "image_size must be"),
        (ImageOptions(max_pixels=0), "max_pixels must be"),
    ],
)
def test_bad_options_are_named(tmp_path, rng, options, message) -> None:
    _save(tmp_path / "a.png", _gray(rng))
    with pytest.raises(ValueError, match=message):
        read_images(tmp_path, options)


def _mvtec(root: Path, rng: np.random.Generator, size=(8, 8)) -> None:
    """One category in the MVTec AD layout: train/good, test/{good,crack,stain}, masks for crack."""
    for i in range(3):
        _save(root / "train" / "good" / f"{i:03d}.png", _gray(rng, size))
    for i in range(2):
        _save(root / "test" / "good" / f"{i:03d}.png", _gray(rng, size))
        _save(root / "test" / "crack" / f"{i:03d}.png", _gray(rng, size))
        mask = np.zeros((size[0] * 2, size[1] * 2), np.uint8)  # masks at another size get resized
        mask[2 * i : 2 * i + 4, 2:6] = 255
        _save(root / "ground_truth" / "crack" / f"{i:03d}_mask.png", mask)
    _save(root / "test" / "stain" / "000.png", _gray(rng, size))  # no ground truth folder


def test_mvtec_test_folder_gives_labels_defect_types_and_masks(tmp_path, rng) -> None:
    _mvtec(tmp_path, rng)
    got = read_data(tmp_path / "test")
    assert got.ids == (
        "crack/000.png",
        "crack/001.png",
        "good/000.png",
        "good/001.png",
        "stain/000.png",
    )
    assert got.groups == ("crack", "crack", "good", "good", "stain")
    np.testing.assert_array_equal(got.labels, [1, 1, 0, 0, 1])
    assert got.masks.shape == (5, 1, 8, 8)
    # nearest-neighbour halving keeps the odd source rows and columns: 16x16 rows 0:4 / 2:6 and
    # columns 2:6 become 8x8 rows 0:2 / 1:3 and columns 1:3
    for i, rows in enumerate([slice(0, 2), slice(1, 3)]):
        expected = np.zeros((8, 8), np.float32)
        expected[rows, 1:3] = 1
        np.testing.assert_array_equal(got.masks[i, 0], expected)
    assert got.masks[2:4].sum() == 0  # good: no anomalous pixel
    assert np.isnan(got.masks[4]).all()  # stain: no ground truth


def test_mvtec_train_folder_has_no_labels_and_the_category_root_is_refused(tmp_path, rng) -> None:
    _mvtec(tmp_path, rng)
    got = read_data(tmp_path / "train" / "good")
    assert len(got) == 3 and got.labels is None and got.masks is None
    with pytest.raises(ValueError, match=r"MVTec AD category.*train.*good.*test"):
        read_data(tmp_path)


def test_a_missing_mask_is_named(tmp_path, rng) -> None:
    _mvtec(tmp_path, rng)
    (tmp_path / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"crack/001_mask.png"):
        read_data(tmp_path / "test")
