"""An HTML report of a trained detector on a dataset: metrics, figures, diagnostics.

``write_report`` writes ``index.html``, ``report.json`` (every number in the page) and the
PNG figures it links into one folder: the score histogram with the threshold, the ROC
curve and the metrics when labels are given, the training curves, the memory diagnostics
with decoded slots, and the most anomalous and most normal samples with their
reconstructions and error maps.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from memae.checkpoint import atomic_write
from memae.viz import _pyplot, image_grid

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222 }
table { border-collapse: collapse; margin: .5em 0 1em }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left }
.warn { color: #a40; font-weight: bold }
img { max-width: 100%; margin: .5em 0 }
"""


def check_labels(labels: Any, n: int) -> np.ndarray:
    """0/1 labels for ``n`` samples with both classes present, or a ``ValueError`` naming
    what is wrong (length, values, a single class)."""
    labels = np.asarray(labels).ravel()
    if labels.shape[0] != n:
        raise ValueError(f"expected {n} labels (one per sample), got {labels.shape[0]}")
    if not np.issubdtype(labels.dtype, np.number) and labels.dtype != bool:
        raise TypeError(f"labels must be 0 (normal) / 1 (anomaly) numbers, got dtype {labels.dtype}")
    values = sorted(set(np.unique(labels).tolist()))
    if not set(values) <= {0, 1}:
        raise ValueError(f"labels must be 0 (normal) and 1 (anomaly), got values {values}")
    if len(values) < 2:
        raise ValueError(
            f"the labels hold only class {int(values[0])}; the AUC and the ROC curve need both "
            "normal (0) and anomalous (1) samples (leave the labels out for a report without metrics)"
        )
    return labels.astype(int)


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _histogram(scores: np.ndarray, labels: np.ndarray | None, threshold: float, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    values = np.append(scores[np.isfinite(scores)], threshold)
    positive = values[values > 0]
    # heavy-tailed scores: log-spaced bins, so a few huge scores do not squash the rest into one bar
    spread = positive.max() / np.median(positive) if positive.size else 1.0
    log = positive.size == values.size and spread > 100
    bins = (
        np.geomspace(positive.min(), positive.max(), 41) if log else np.histogram_bin_edges(values, bins=40)
    )
    groups = (
        [("all samples", scores)]
        if labels is None
        else [("normal", scores[labels == 0]), ("anomalous", scores[labels == 1])]
    )
    for name, values in groups:
        ax.hist(values, bins=bins, alpha=0.6, label=name)
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.4g}")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("anomaly score (reconstruction error)" + (", log scale" if log else ""))
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _roc(labels: np.ndarray, scores: np.ndarray, auc: float, path: Path) -> Path:
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, label=f"AUC {auc:.4f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    return _save(fig, path)


def _training(history: Any, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(1, len(history.train_loss) + 1), history.train_loss, label="training")
    if history.val_loss:
        ax.plot(range(1, len(history.val_loss) + 1), history.val_loss, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    return _save(fig, path)


def _examples(
    detector: Any, X: Any, scores: np.ndarray, k: int, out: Path, ids: Any = None
) -> list[tuple[str, Path]]:
    """Most anomalous and most normal samples, their reconstructions and error maps, named
    by ``ids`` (else by index)."""
    order = np.argsort(scores)
    groups = [("most anomalous", order[::-1][:k]), ("most normal", order[:k])]
    figures = []
    for name, index in groups:
        names = [str(ids[i]) if ids is not None else f"#{i}" for i in index]
        path = out / f"examples-{name.replace(' ', '-')}.png"
        caption = f"{name}: " + ", ".join(f"{n} ({scores[i]:.3g})" for n, i in zip(names, index, strict=True))
        if len(detector.input_shape_) == 1:
            x = X.iloc[index] if hasattr(X, "iloc") else X[index]
            figures.append((caption, _feature_errors(detector, x, names, name, path)))
            continue
        x = X[index]
        rec = detector.reconstruct(x)
        if x.ndim == 5:  # clips: the middle frame
            x, rec = x[:, :, x.shape[2] // 2], rec[:, :, rec.shape[2] // 2]
        error = ((x - rec) ** 2).mean(axis=1, keepdims=True)
        rows = [x, rec, error]
        titles = ["input", "reconstruction", "error map"]
        figures.append((caption, image_grid(rows, titles, path, title=f"{name} samples")))
    return figures


def _feature_errors(detector: Any, x: Any, rows: list[str], name: str, path: Path) -> Path:
    """Squared error per feature in the model's (scaled) units, features by name: in raw
    units one 1e12 cell would hide every other."""
    plt = _pyplot()
    errors = detector.error_map(x)
    table = getattr(detector, "table_", None)
    features = (
        [str(f) for f in table.feature_names_out_]
        if table is not None
        else [f"x{i}" for i in range(errors.shape[1])]
    )
    fig, ax = plt.subplots(figsize=(min(14, 3 + 0.18 * len(features)), 0.4 * len(rows) + 2))
    image = ax.imshow(errors, aspect="auto", cmap="magma")
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    step = max(1, len(features) // 60)
    ax.set_xticks(range(0, len(features), step), features[::step], rotation=90, fontsize=6)
    ax.set_title(f"{name}: squared reconstruction error per feature (scaled units)", fontsize=9)
    fig.colorbar(image, ax=ax)
    return _save(fig, path)


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def _img(path: Path, caption: str = "") -> str:
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    image = f'<img src="{html.escape(path.name)}" alt="{html.escape(caption or path.stem)}">'
    return f"<figure>{image}{text}</figure>"


#: the files :func:`write_report` writes into its folder (figures are PNGs)
REPORT_FILES = ("index.html", "report.json", "*.png")


def write_report(
    detector: Any,
    X: Any,
    out: str | os.PathLike[str],
    *,
    labels: Any = None,
    title: str = "memae report",
    examples: int = 6,
    ids: Any = None,
    extra_numbers: dict[str, Any] | None = None,
    extra_html: str = "",
) -> Path:
    """Write the report of fitted ``detector`` on ``X`` into the folder ``out``; returns the
    path of ``index.html``. ``labels`` (0 normal / 1 anomaly, both present) add the metrics.
    ``ids`` name the samples in the figures (a table's index column, image paths);
    ``extra_numbers`` are merged into ``report.json`` and ``extra_html`` is placed after the
    metrics (the image report's own sections, :mod:`memae.report_images`)."""
    from memae import __version__
    from memae.diagnostics import inspect_memory, slots_figure
    from memae.metrics import precision_recall_f1, roc_auc
    from memae.validation import as_float_array, check_sample_shape

    if getattr(detector, "table_", None) is not None:
        array = X  # a table stays a table: the detector's encoder reads it by column name
    else:
        array = as_float_array(X)
        check_sample_shape(array, detector.input_shape_)
    y = None if labels is None else check_labels(labels, len(array))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    scores = detector.decision_function(array)
    predicted = detector.labels_from_scores(scores)
    cfg = detector.model_config_
    numbers: dict[str, Any] = {
        "memae_version": __version__,
        "samples": len(array),
        "flagged": int(predicted.sum()),
        "threshold": {
            "rule": detector.threshold,
            "value": detector.threshold_,
            "source": detector.threshold_source_,
        },
        "score_quantiles": dict(
            zip(
                ("min", "p25", "median", "p75", "p95", "max"),
                np.percentile(scores, [0, 25, 50, 75, 95, 100]).tolist(),
                strict=True,
            )
        ),
    }
    sections = []
    model_rows = [
        ("variant", cfg.variant),
        ("backbone", cfg.backbone),
        ("input shape", tuple(detector.input_shape_)),
        (
            "memory",
            f"{cfg.memory_size} slots, λ = {cfg.shrink_threshold:.4g}, {cfg.similarity}, {cfg.addressing}"
            if detector.model_.memory is not None
            else "none (a variant without memory)",
        ),
        ("epochs", len(detector.history_.train_loss)),
        ("final training loss", detector.history_.train_loss[-1] if detector.history_.train_loss else "–"),
        (
            "threshold",
            f"{detector.threshold_:.5g} ({detector.threshold}, from {detector.threshold_source_} scores)",
        ),
        ("score", f"reconstruction error ({detector.score_reduction}), higher = more anomalous"),
    ]
    sections.append("<h2>Model</h2>" + _table(model_rows))
    if detector.history_.train_loss:
        sections.append(_img(_training(detector.history_, out / "training.png"), "loss per epoch"))

    q = numbers["score_quantiles"]
    score_rows = [
        ("samples", len(array)),
        ("flagged anomalous", f"{int(predicted.sum())} ({100 * predicted.mean():.1f} %)"),
        *((f"score {k}", v) for k, v in q.items()),
    ]
    sections.append("<h2>Scores</h2>" + _table(score_rows))
    sections.append(_img(_histogram(scores, y, detector.threshold_, out / "scores.png"), "score histogram"))

    if y is not None:
        from sklearn.metrics import average_precision_score

        auc = roc_auc(y, scores)
        prf = precision_recall_f1(y, predicted)
        numbers["metrics"] = {
            "auc": auc,
            "average_precision": float(average_precision_score(y, scores)),
            "precision": prf.precision,
            "recall": prf.recall,
            "f1": prf.f1,
            "anomalies": int(y.sum()),
        }
        metric_rows = [(k.replace("_", " "), v) for k, v in numbers["metrics"].items()]
        sections.append(
            "<h2>Metrics (anomaly = positive class; precision/recall/F1 at the threshold)</h2>"
            + _table(metric_rows)
            + _img(_roc(y, scores, auc, out / "roc.png"), "ROC curve")
        )

    numbers.update(extra_numbers or {})
    if extra_html:
        sections.append(extra_html)

    if detector.model_.memory is not None:
        report = inspect_memory(detector, array)
        numbers["memory"] = report.to_dict()
        warnings = "".join(f'<p class="warn">warning: {html.escape(w)}</p>' for w in report.warnings)
        memory_rows = [
            ("queries", report.n_queries),
            (
                "addressing entropy (nats per query)",
                f"{report.mean_entropy:.4g} of at most {report.max_entropy:.4g}",
            ),
            ("effective slots", f"{report.effective_slots:.1f} of {report.n_slots}"),
            ("dead slots (never weighted ≥ 1/N)", report.dead_slots),
            ("empty queries (no slot above λ)", f"{100 * report.empty_query_share:.2f} %"),
        ]
        body = "<h2>Memory</h2>" + warnings + _table(memory_rows)
        if len(detector.input_shape_) in (3, 4):
            body += _img(
                slots_figure(detector, report, out / "slots.png"),
                "the most used slots decoded alone (prototype-like only when the addressing is sparse)",
            )
        sections.append(body)

    k = max(1, min(examples, len(array)))
    figures = _examples(detector, array, scores, k, out, ids=ids)
    sections.append("<h2>Examples</h2>" + "".join(_img(path, caption) for caption, path in figures))

    json_text = json.dumps(numbers, indent=2)
    atomic_write(out / "report.json", lambda p: Path(p).write_text(json_text, encoding="utf-8"))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>memae {html.escape(__version__)}; every number is also in "
        f"<a href='report.json'>report.json</a>.</p>" + "".join(sections) + "</body></html>"
    )
    return atomic_write(out / "index.html", lambda p: Path(p).write_text(page, encoding="utf-8"))
