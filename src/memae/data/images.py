"""Image files and folders as data: PNG, JPEG, BMP and TIFF, decoded by Pillow.

A folder is read recursively in a stable order (sorted relative paths); each image becomes
one (C, H, W) sample of its integer pixel type (``uint8``, or ``uint16`` for 16-bit files),
which the detector scales to [0, 1] by that type. All images are brought to one size and
channel count: those of :class:`~memae.data.reader.ImageOptions`, else the first image's
(a different size or channel count is then an error naming both files).

The MVTec AD layout is recognised: a folder holding a ``good`` subfolder (``test/``) gives
each image its defect type (the subfolder) as its group and the label ``good`` = 0, any
other defect type = 1; when the folder is ``ROOT/test`` and ``ROOT/ground_truth`` exists,
the masks ``ROOT/ground_truth/<defect>/<name>_mask.png`` become per-pixel ground truth
(zeros for ``good``; ``NaN`` for a defect type without a ground-truth folder).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from memae.data.reader import Dataset, ImageOptions
from memae.io import DataFileError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: Pillow modes by the channel family they hold; everything else is converted to RGB.
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


class ImageFileError(DataFileError):
    """An image file that cannot be decoded, or that does not fit the others; names the file."""


class ImageTooLargeError(ImageFileError):
    """An image file with more pixels than ``ImageOptions.max_pixels``, refused before decoding."""


def image_files(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by their path relative to it;
    hidden files and folders (a leading dot) are left out."""
    folder = Path(folder)
    found = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def mvtec_category(root: str | Path) -> bool:
    """Whether ``root`` is an MVTec AD category folder (``train/`` and ``test/`` inside)."""
    root = Path(root)
    return (root / "train").is_dir() and (root / "test").is_dir()


def read_images(path: str | Path, options: ImageOptions) -> Dataset:
    """Read one image file or every image under a folder into a :class:`Dataset`.

    ``X`` is (N, C, H, W) of ``uint8`` (``uint16`` when any file has 16 bits per pixel;
    8-bit images among them are widened by 257 so both span the same range; float TIFFs
    stay ``float32``). ``ids`` are the paths relative to the folder (the file name for a
    single file). Raises ``FileNotFoundError`` for an empty folder, :class:`ImageFileError`
    naming the file for an unreadable image (unless ``options.skip_unreadable``: then it is
    listed in ``skipped``) and ``ValueError`` naming both files for mismatched sizes or
    channels without ``options.image_size`` / ``options.channels``.
    """
    _check_options(options)
    path = Path(path)
    if path.is_dir():
        if mvtec_category(path):
            raise ValueError(
                f"{path} is an MVTec AD category folder (train/, test/): give {path / 'train' / 'good'} "
                f"to train, {path / 'test'} to score (memae report takes the category folder itself)"
            )
        files = image_files(path)
        if not files:
            raise FileNotFoundError(
                f"no image files under {path}: expected files ending in {', '.join(SUFFIXES)}"
            )
        root = path
    else:
        files, root = [path], path.parent

    arrays: list[np.ndarray] = []
    kept: list[Path] = []
    skipped: list[str] = []
    first: tuple[Path, tuple[int, int], int] | None = None
    for file in files:
        try:
            image = _decode(file, options)
        except ImageFileError:
            if not options.skip_unreadable:
                raise
            skipped.append(file.relative_to(root).as_posix())
            continue
        if first is None:
            first = (file, image.shape[1:], image.shape[0])
        _check_like_first(file, image, first, options)
        arrays.append(image)
        kept.append(file)
    if not arrays:
        raise ValueError(f"none of the {len(files)} image file(s) under {path} could be read: {skipped}")

    X = _stack(arrays)
    ids = tuple(f.relative_to(root).as_posix() for f in kept)
    groups, labels, masks = _layout(root, kept, X.shape[2:]) if path.is_dir() else (None, None, None)
    return Dataset(
        X, "images", str(path), ids=ids, labels=labels, groups=groups, masks=masks, skipped=tuple(skipped)
    )


def source_files(data: Dataset) -> list[Path]:
    """The files an image :class:`Dataset` was read from, in its order."""
    source = Path(data.source)
    root = source if source.is_dir() else source.parent
    return [root / name for name in data.ids or ()]


def read_image(file: str | Path, options: ImageOptions | None = None) -> np.ndarray:
    """One image file as (C, H, W) at its own size (``options``: channels, pixel limit)."""
    options = options or ImageOptions()
    _check_options(options)
    return _decode(Path(file), options)


def _check_options(options: ImageOptions) -> None:
    if options.image_size is not None:
        size = tuple(options.image_size)
        if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
            raise ValueError(f"image_size must be (height, width) of positive integers, got {size}")
    if options.channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {options.channels}")
    if options.max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {options.max_pixels}")


@contextlib.contextmanager
def _pixel_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb limit set to ``max_pixels`` while decoding (restored after):
    Pillow refuses twice the limit when it opens a file; :func:`_decode` checks the rest from
    the header before decoding, so Pillow's warning in between is not needed."""
    from PIL import Image

    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _decode(file: Path, options: ImageOptions) -> np.ndarray:
    """One file as a (C, H, W) array at the requested size and channels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with _pixel_limit(options.max_pixels), Image.open(file) as image:
            width, height = image.size
            if width * height > options.max_pixels:
                raise ImageTooLargeError(
                    f"{file} is {width}x{height} = {width * height} pixels, more than the "
                    f"{options.max_pixels} allowed per image (max_pixels)"
                )
            image.load()
            array = _to_array(image, options)
    except ImageFileError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(
            f"{file} has more than the {options.max_pixels} pixels allowed per image (max_pixels)"
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(f"{file} is not a readable image: {err}") from err
    return array


def _to_array(image, options: ImageOptions) -> np.ndarray:  # type: ignore[no-untyped-def]
    from PIL import Image

    gray = image.mode in _GRAY_MODES
    sixteen = image.mode in _SIXTEEN_BIT_MODES
    if image.mode == "F":
        pass
    elif sixteen:
        image = image.convert("I")
    elif gray:
        image = image.convert("L")
    else:
        image = image.convert("RGB")
    if options.image_size is not None:
        height, width = options.image_size
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image)
    if image.mode == "F":
        array = array.astype(np.float32)
    elif sixteen:
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(f"pixel values in [{array.min()}, {array.max()}] do not fit 16 bits")
        array = array.astype(np.uint16)
    array = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    if options.channels == 3 and array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    elif options.channels == 1 and array.shape[0] == 3:
        array = _luma(array)
    return np.ascontiguousarray(array)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of (3, H, W) pixels, in their own type (Pillow's ``convert("L")`` rule)."""
    weights = np.array([0.299, 0.587, 0.114]).reshape(3, 1, 1)
    gray = (rgb.astype(np.float64) * weights).sum(axis=0, keepdims=True)
    if np.issubdtype(rgb.dtype, np.integer):
        return np.rint(gray).astype(rgb.dtype)
    return gray.astype(rgb.dtype)


def _check_like_first(
    file: Path, image: np.ndarray, first: tuple[Path, tuple[int, int], int], options: ImageOptions
) -> None:
    first_file, size, channels = first
    if options.image_size is None and image.shape[1:] != size:
        raise ValueError(
            f"images of different sizes: {first_file.name} is {size[0]}x{size[1]} (HxW), "
            f"{file} is {image.shape[1]}x{image.shape[2]}; give image_size (--image-size H W) "
            "to resize them all"
        )
    if options.channels is None and image.shape[0] != channels:
        raise ValueError(
            f"images with different channels: {first_file.name} has {channels}, {file} has "
            f"{image.shape[0]}; give channels (--channels 1 or 3) to convert them all"
        )


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    kinds = {a.dtype for a in arrays}
    if len(kinds) == 1:
        return np.stack(arrays)
    if np.float32 in kinds:
        return np.stack([_as_unit_float(a) for a in arrays])
    # 8-bit among 16-bit: x * 257 maps 0..255 onto 0..65535 exactly
    return np.stack([a.astype(np.uint16) * 257 if a.dtype == np.uint8 else a for a in arrays])


def _as_unit_float(array: np.ndarray) -> np.ndarray:
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / np.iinfo(array.dtype).max
    return array.astype(np.float32)


def _layout(
    root: Path, files: list[Path], size: tuple[int, ...]
) -> tuple[tuple[str, ...] | None, np.ndarray | None, np.ndarray | None]:
    """Groups, labels and masks from the MVTec AD layout, or ``None`` where it gives none."""
    relative = [f.relative_to(root) for f in files]
    if not (root / "good").is_dir() or any(len(r.parts) < 2 for r in relative):
        return None, None, None
    groups = tuple(r.parts[0] for r in relative)
    labels = np.array([g != "good" for g in groups], dtype=np.int64)
    truth = root.parent / "ground_truth"
    if not truth.is_dir():
        return groups, labels, None
    masks = np.zeros((len(files), 1, *size), dtype=np.float32)
    for i, (rel, group) in enumerate(zip(relative, groups, strict=True)):
        if group == "good":
            continue
        folder = truth / group
        if not folder.is_dir():
            masks[i] = np.nan
            continue
        mask_file = folder.joinpath(*rel.parts[1:-1], f"{rel.stem}_mask.png")
        masks[i, 0] = _read_mask(mask_file, size)
    return groups, labels, masks


def _read_mask(file: Path, size: tuple[int, ...]) -> np.ndarray:
    """A ground-truth mask as 0/1 at ``size`` (H, W), resized by nearest neighbour."""
    from PIL import Image, UnidentifiedImageError

    if not file.is_file():
        raise FileNotFoundError(f"no ground-truth mask at {file} (the MVTec AD layout's <name>_mask.png)")
    try:
        with Image.open(file) as image:
            mask = image.convert("L")
            if mask.size != (size[1], size[0]):
                mask = mask.resize((size[1], size[0]), Image.Resampling.NEAREST)
            return (np.asarray(mask) > 0).astype(np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(f"{file} is not a readable mask image: {err}") from err


__all__ = ["SUFFIXES", "ImageFileError", "image_files", "mvtec_category", "read_images"]
