"""Images by file: anomaly-map PNGs, image- and pixel-level metrics per defect type, and the
image report's sections (the worst and best cases by file name).

``image_metrics`` computes what ``memae report`` puts in ``report.json`` for an image folder
in the MVTec AD layout: ``image_auroc`` (good = 0 against every other defect type), and where
masks exist ``pixel_auroc`` and ``pro`` (:mod:`memae.segmentation`), overall and per defect
type (that type's images against the ``good`` ones).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memae.checkpoint import atomic_write
from memae.data.reader import Dataset


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from memae.metrics import roc_auc

    return roc_auc(labels, scores) if len(np.unique(labels)) == 2 else None


def _pixel_metrics(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    from memae.segmentation import pixel_auroc, pro_auc

    known = ~np.isnan(masks).any(axis=(1, 2, 3))
    maps, masks = maps[known], masks[known].astype(np.int64)
    if not masks.any() or masks.all():
        return {}
    return {"pixel_auroc": pixel_auroc(maps, masks), "pro": pro_auc(maps, masks)}


def image_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[str],
    maps: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> dict[str, Any]:
    """Image AUROC and, with ``maps`` and ``masks`` ((N, 1, H, W); a mask of NaN marks an image
    without ground truth, left out of the pixel metrics), pixel AUROC and PRO: overall and
    under ``"per_defect"`` for each defect type against the ``good`` images."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    group_array = np.asarray(groups)
    with_pixels = maps is not None and masks is not None
    result: dict[str, Any] = {"images": len(scores), "anomalous_images": int(labels.sum())}
    result["image_auroc"] = _auroc(labels, scores)
    if with_pixels:
        result.update(_pixel_metrics(maps, masks))
    per_defect: dict[str, Any] = {}
    normal = labels == 0
    for group in sorted(set(group_array[labels == 1].tolist())):
        pick = normal | (group_array == group)
        entry: dict[str, Any] = {"images": int((group_array == group).sum())}
        entry["image_auroc"] = _auroc(labels[pick], scores[pick])
        if with_pixels:
            entry.update(_pixel_metrics(maps[pick], masks[pick]))
        per_defect[group] = entry
    result["per_defect"] = per_defect
    return result


def _colormap(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] to (H, W, 3) uint8 colours (matplotlib's inferno)."""
    from matplotlib import colormaps

    return (colormaps["inferno"](np.clip(values, 0.0, 1.0))[..., :3] * 255).astype(np.uint8)


def _display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) pixels of any type as (H, W, 3) uint8 for an overlay."""
    if np.issubdtype(image.dtype, np.integer):
        unit = image.astype(np.float64) / np.iinfo(image.dtype).max
    else:
        low, high = float(image.min()), float(image.max())
        unit = (image - low) / (high - low) if high > low else np.zeros(image.shape)
    rgb = np.repeat(unit, 3, axis=0) if unit.shape[0] == 1 else unit[:3]
    return (np.moveaxis(rgb, 0, -1) * 255).round().astype(np.uint8)


def map_scale(maps: np.ndarray) -> float:
    """The error that the brightest map level stands for: the largest of ``maps`` (1 when all are 0)."""
    return float(maps.max()) if maps.size and maps.max() > 0 else 1.0


def render_map(image: np.ndarray, error: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """One image's anomaly map ``error`` (1, H, W) as 16-bit levels (level ``v`` is the error
    ``v / 65535 * scale``) and as an (H, W, 3) uint8 overlay: the map's colours (inferno) over
    the (C, H, W) ``image`` at half opacity."""
    unit = np.clip(error[0] / scale, 0.0, 1.0)
    levels = np.round(unit * 65535).astype(np.uint16)
    overlay = (0.5 * _display(image) + 0.5 * _colormap(unit)).round().astype(np.uint8)
    return levels, overlay


def write_maps(
    out: str | os.PathLike[str],
    ids: Sequence[str],
    images: np.ndarray,
    maps: np.ndarray,
    originals: Sequence[str | os.PathLike[str]] | None = None,
) -> list[Path]:
    """Write each image's anomaly map under ``out`` at the image's relative path (``.png``),
    and the map over the image as ``<name>_overlay.png``.

    The maps are 16-bit grayscale PNGs: pixel ``v`` holds the error ``v / 65535 * scale``,
    ``scale`` being the largest error of this batch, written with the units to ``maps.json``;
    the overlays colour the same scale (inferno) over the image at half opacity. With
    ``originals`` (the image files, in order) the maps are brought to each file's own size
    (bilinear) and laid over the file's pixels; otherwise they stay at the model's input size
    over ``images``.
    """
    from PIL import Image

    from memae.data.images import read_image

    out = Path(out)
    scale = map_scale(maps)
    written: list[Path] = []
    sources = originals if originals is not None else [None] * len(ids)
    for name, image, error, source in zip(ids, images, maps, sources, strict=True):
        target = out / Path(name).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            image = read_image(source)
            error = _resized(error, image.shape[1:])
        levels, overlay = render_map(image, error, scale)
        Image.fromarray(levels).save(target)
        overlay_path = target.with_name(f"{target.stem}_overlay.png")
        Image.fromarray(overlay).save(overlay_path)
        written += [target, overlay_path]
    info = {
        "maps": len(ids),
        "scale": scale,
        "meaning": "error = pixel / 65535 * scale: the squared reconstruction error per pixel in the "
        "detector's units (after its preprocessing), averaged over channels",
        "size": "each image file's own size" if originals is not None else "the model's input size",
    }
    text = json.dumps(info, indent=2)
    written.append(atomic_write(out / "maps.json", lambda p: Path(p).write_text(text, encoding="utf-8")))
    return written


def _resized(error: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """A (1, h, w) map brought to ``size`` (H, W) by bilinear interpolation."""
    from PIL import Image

    if error.shape[1:] == tuple(size):
        return error
    image = Image.fromarray(np.ascontiguousarray(error[0], dtype=np.float32))
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))[None]


def _cases(labels: np.ndarray | None, scores: np.ndarray, k: int) -> list[tuple[str, str, np.ndarray]]:
    """(title, file stem, indices): the worst and best cases by the labels, else the extremes."""
    order = np.argsort(scores)
    if labels is None:
        return [("most anomalous", "anomalous", order[::-1][:k]), ("most normal", "normal", order[:k])]
    anomalous = order[labels[order] == 1]
    normal = order[labels[order] == 0]
    return [
        ("worst: anomalies scored lowest (missed first)", "worst-anomalies", anomalous[:k]),
        ("worst: good images scored highest (false alarms first)", "worst-good", normal[::-1][:k]),
        ("best: anomalies scored highest", "best-anomalies", anomalous[::-1][:k]),
        ("best: good images scored lowest", "best-good", normal[:k]),
    ]


def _case_figures(
    dataset: Dataset, scores: np.ndarray, maps: np.ndarray, out: Path, k: int
) -> list[tuple[str, Path]]:
    from memae.viz import image_grid

    ids = dataset.ids or tuple(f"#{i}" for i in range(len(scores)))
    figures = []
    for title, stem, index in _cases(dataset.labels, scores, k):
        if len(index) == 0:
            continue
        rows, names = [dataset.X[index]], ["image"]
        if dataset.masks is not None and not np.isnan(dataset.masks[index]).all():
            rows.append(np.nan_to_num(dataset.masks[index], nan=0.0))
            names.append("ground truth")
        rows.append(maps[index])
        names.append("anomaly map")
        path = image_grid(rows, names, out / f"cases-{stem}.png", title=title)
        caption = f"{title}: " + ", ".join(f"{ids[i]} ({scores[i]:.3g})" for i in index)
        figures.append((caption, path))
    return figures


def _metrics_table(metrics: dict[str, Any]) -> str:
    keys = ("image_auroc", "pixel_auroc", "pro")
    header = "<tr><th>defect type</th><th>images</th>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"

    def row(name: str, entry: dict[str, Any]) -> str:
        cells = "".join(f"<td>{'–' if entry.get(k) is None else f'{entry[k]:.4f}'}</td>" for k in keys)
        return f"<tr><td>{html.escape(name)}</td><td>{entry['images']}</td>{cells}</tr>"

    rows = [row(name, entry) for name, entry in metrics["per_defect"].items()]
    rows.append(row("all", metrics))
    return f"<table>{header}{''.join(rows)}</table>"


def write_image_report(
    detector: Any, dataset: Dataset, out: str | os.PathLike[str], *, title: str, examples: int = 6
) -> Path:
    """:func:`memae.report.write_report` for an image folder: captions by file name, and with
    the MVTec AD layout the metrics of :func:`image_metrics` in ``report.json`` with a table
    per defect type and figures of the worst and best cases (image, ground truth, map)."""
    from memae.report import _img, write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = detector.decision_function(dataset.X)
    maps = detector.anomaly_maps(dataset.X)
    extra: dict[str, Any] = {"source": dataset.source, "skipped_files": list(dataset.skipped)}
    body = ""
    if dataset.labels is not None and dataset.groups is not None:
        metrics = image_metrics(scores, dataset.labels, dataset.groups, maps, dataset.masks)
        extra.update(metrics)
        body += "<h2>Images and pixels by defect type</h2>" + _metrics_table(metrics)
        body += (
            "<p>image AUROC: each defect type against the good images; pixel AUROC and PRO (the "
            "per-region overlap up to a 30 % false-positive rate, normalised) from the masks.</p>"
        )
    k = max(1, min(examples, len(scores)))
    body += "".join(_img(path, caption) for caption, path in _case_figures(dataset, scores, maps, out, k))
    labels = dataset.labels if dataset.labels is not None and len(np.unique(dataset.labels)) == 2 else None
    return write_report(
        detector,
        dataset.X,
        out,
        labels=labels,
        title=title,
        examples=examples,
        ids=dataset.ids,
        extra_numbers=extra,
        extra_html=body,
    )


__all__ = ["image_metrics", "map_scale", "render_map", "write_image_report", "write_maps"]
