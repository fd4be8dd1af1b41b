"""Export a fitted detector to ONNX or TorchScript, scores included, checked for parity.

The exported graph takes raw samples (the detector's input units, float32, any batch size)
and does everything :meth:`memae.MemAEDetector.decision_function` does: the
preprocessing (the log of heavy-tailed table columns, offset and scale), the network in eval
mode and the per-sample reconstruction error. A table model with string columns takes their
one-hot encoding: the JSON beside the graph lists every input feature and the categories of
each string column in order (``TableEncoder.encode`` builds that input in Python). Its
outputs are ``score`` (N,) — higher = more anomalous — and, on
request, ``reconstruction`` (N, *sample) in input units. A JSON file beside the model holds
the threshold rule, the calibration scores and the metadata, and records the largest
relative difference between the exported model's scores and the detector's on check data:
an export that disagrees by more than ``rtol`` is refused and nothing is written.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from memae.checkpoint import atomic_write
from memae.nn.loss import reconstruction_error
from memae.nn.model import MemAE

ExportFormat = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
#: The default opset of the ONNX export (onnxruntime 1.17+ runs it).
OPSET = 17


class ExportError(ValueError):
    """An export that cannot be made, or whose scores differ from the detector's."""


class ScoringGraph(nn.Module):
    """Raw samples -> anomaly score (and the reconstruction): the detector's scoring path
    as one module, ready for tracing. Shapes: (N, *sample) -> (N,) [, (N, *sample)]."""

    def __init__(
        self,
        model: MemAE,
        offset: np.ndarray,
        scale: np.ndarray,
        reduction: str,
        with_reconstruction: bool = False,
        log_mask: np.ndarray | None = None,
        clip: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("offset", torch.as_tensor(offset, dtype=torch.float32).unsqueeze(0))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).unsqueeze(0))
        self.has_log = log_mask is not None and bool(np.any(log_mask))
        if self.has_log:
            self.register_buffer("log_mask", torch.as_tensor(np.asarray(log_mask, dtype=bool)).unsqueeze(0))
        self.clip = clip
        self.reduction = reduction
        self.with_reconstruction = with_reconstruction

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.has_log:
            x = torch.where(self.log_mask, torch.sign(x) * torch.log1p(torch.abs(x)), x)
        z = (x - self.offset) / self.scale
        if self.clip is not None:
            z = torch.clamp(z, -self.clip, self.clip)
        output = self.model(z).output
        score = reconstruction_error(z, output, self.reduction)
        if self.with_reconstruction:
            rebuilt = output * self.scale + self.offset
            if self.has_log:
                rebuilt = torch.where(
                    self.log_mask, torch.sign(rebuilt) * torch.expm1(torch.abs(rebuilt)), rebuilt
                )
            return score, rebuilt
        return score


@dataclass(frozen=True)
class ExportResult:
    """Where the model and its JSON went, and the parity measured on the check data."""

    model_path: Path
    metadata_path: Path
    max_relative_difference: float
    checked_samples: int


def scoring_graph(detector: Any, with_reconstruction: bool = False) -> ScoringGraph:
    """The detector's scoring path as a CPU module in eval mode (a copy: the detector's own
    model is left where it is)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(detector, "model_")
    model = copy.deepcopy(detector.model_).cpu().eval()
    from memae.preprocessing import CLIP

    table = getattr(detector, "table_", None) is not None
    graph = ScoringGraph(
        model,
        detector.offset_,
        detector.scale_,
        detector.score_reduction,
        with_reconstruction,
        log_mask=detector.log_mask_ if table else None,
        clip=CLIP if table else None,
    )
    return graph.eval()


def max_relative_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    """``max |a - e| / |e|`` (the denominator floored at 1e-12)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ExportError(f"exported scores have shape {actual.shape}, expected {expected.shape}")
    if actual.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), 1e-12)))


def check_inputs(detector: Any, n: int = 8, seed: int = 0) -> np.ndarray:
    """Synthetic check samples in the graph's input units: ``N(0, 1)`` in the model's units
    taken back through the scaling (``offset + scale * noise``, and the log undone)."""
    noise = np.random.default_rng(seed).standard_normal((n, *detector.input_shape_))
    return detector.to_input_units(noise).astype(np.float32)


def _graph_input(detector: Any, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check data as the graph's input (a table encoded) and the detector's scores of it."""
    from memae.validation import as_float_array, check_sample_shape

    if getattr(detector, "table_", None) is not None:
        encoded = detector.table_.encode(data, "check data")
        return encoded.astype(np.float32), detector.decision_function(data)
    check = as_float_array(data, "check data")
    check_sample_shape(check, detector.input_shape_, "check data")
    return check, detector.decision_function(check)


def _scores_of_graph_input(detector: Any, x: np.ndarray) -> np.ndarray:
    if getattr(detector, "table_", None) is not None:
        return detector._score_tensor(detector._transform(x.astype(np.float64)))
    return detector.decision_function(x)


def export_detector(
    detector: Any,
    path: str | os.PathLike[str],
    *,
    format: ExportFormat = "onnx",
    reconstruction: bool = False,
    opset: int = OPSET,
    check_data: Any = None,
    rtol: float = 1e-4,
) -> ExportResult:
    """Export ``detector`` (fitted) to ``path`` and its metadata to ``path + ".json"``.

    The exported model is run on ``check_data`` (default: 8 synthetic samples, see
    :func:`check_inputs`) and must give the detector's scores to ``rtol``; ONNX checking
    uses onnxruntime. Needs the ``export`` extra for ONNX (``pip install 'memae[export]'``).
    """
    if format not in FORMATS:
        raise ExportError(f"format must be one of {FORMATS}, got {format!r}")
    graph = scoring_graph(detector, reconstruction)
    if check_data is None:
        check = check_inputs(detector)
        expected = _scores_of_graph_input(detector, check)
    else:
        check, expected = _graph_input(detector, check_data)
    example = torch.from_numpy(check_inputs(detector, n=2, seed=1))
    path = Path(path)
    measured: dict[str, float] = {}

    def write(tmp: str) -> None:
        if format == "onnx":
            _export_onnx(graph, example, tmp, reconstruction, opset)
            scores = _run_onnx(tmp, check)
        else:
            _export_torchscript(graph, example, tmp)
            scores = _run_torchscript(tmp, check)
        measured["diff"] = max_relative_difference(scores, expected)
        if not measured["diff"] <= rtol:
            raise ExportError(
                f"the exported {format} model's scores differ from the detector's by up to "
                f"{measured['diff']:.3g} (relative), more than rtol={rtol:g}; nothing written"
            )

    atomic_write(path, write)
    metadata = export_metadata(detector, format, reconstruction, opset if format == "onnx" else None)
    metadata["check"] = {
        "samples": len(check),
        "data": "synthetic: offset + scale * N(0, 1)" if check_data is None else "given",
        "max_relative_difference": measured["diff"],
        "rtol": rtol,
    }
    meta_path = path.with_name(path.name + ".json")
    text = json.dumps(metadata, indent=2)
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return ExportResult(path, meta_path, measured["diff"], len(check))


def export_metadata(detector: Any, format: str, reconstruction: bool, opset: int | None) -> dict[str, Any]:
    """What a deployment needs besides the graph: inputs, outputs, threshold, calibration."""
    import dataclasses

    from memae import __version__

    return {
        "format": format,
        "opset": opset,
        "memae_version": __version__,
        "input": _input_metadata(detector),
        "outputs": ["score", "reconstruction"] if reconstruction else ["score"],
        "score": (
            f"per-sample reconstruction error ({detector.score_reduction}) after the detector's "
            f"preprocessing ({detector.preprocessing_}, inside the graph); higher = more anomalous"
        ),
        "threshold": {
            "rule": detector.threshold,
            "value": detector.threshold_,
            "source": detector.threshold_source_,
            "percentile": detector.threshold_percentile,
            "contamination": detector.contamination,
            "note": (
                "label = score > value"
                if detector.threshold != "test-percentile"
                else "label = score > the given percentile of the scores of the batch being labelled"
            ),
        },
        "calibration": {
            "method": "empirical CDF: calibrated = share of these normal scores <= score",
            "reference_scores": np.sort(detector._reference_scores()).tolist(),
        },
        "model_config": dataclasses.asdict(detector.model_config_),
        "params": detector.get_params(),
    }


def _input_metadata(detector: Any) -> dict[str, Any]:
    described: dict[str, Any] = {
        "name": "x",
        "dtype": "float32",
        "shape": ["batch", *detector.input_shape_],
        "units": _input_units(detector),
    }
    table = getattr(detector, "table_", None)
    if table is not None:
        described["features"] = [str(f) for f in table.feature_names_out_]
        described["table"] = table.to_dict()
        described["note"] = (
            "one value per feature, in this order: a string column's categories as one-hot "
            "(all zeros for a category not listed), every other column as its raw number; "
            "memae.preprocessing.TableEncoder.from_dict(table).encode(frame) builds it"
        )
    return described


def _export_onnx(
    graph: ScoringGraph, example: torch.Tensor, path: str, reconstruction: bool, opset: int
) -> None:
    try:
        import onnx
    except ModuleNotFoundError as err:
        raise ExportError("ONNX export needs the 'export' extra: pip install 'memae[export]'") from err
    outputs = ["score", "reconstruction"] if reconstruction else ["score"]
    with warnings.catch_warnings():
        # The TorchScript-based exporter: no onnxscript needed, and every backbone traces.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            graph,
            (example,),
            path,
            dynamo=False,
            input_names=["x"],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in ["x", *outputs]},
            opset_version=opset,
        )
    onnx.checker.check_model(path)


def _run_onnx(path: str, x: np.ndarray) -> np.ndarray:
    try:
        import onnxruntime
    except ModuleNotFoundError as err:
        raise ExportError("checking an ONNX export needs onnxruntime: pip install 'memae[export]'") from err
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(["score"], {"x": x.astype(np.float32)})[0]


def _export_torchscript(graph: ScoringGraph, example: torch.Tensor, path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(graph, (example,), check_trace=False)
    traced.save(path)


def _run_torchscript(path: str, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(path, map_location="cpu")
    with torch.inference_mode():
        out = module(torch.from_numpy(x.astype(np.float32)))
    return (out[0] if isinstance(out, tuple) else out).numpy()


def _input_units(detector: Any) -> str:
    """What the exported graph's input values mean (the graph applies the preprocessing)."""
    pixel_dtype = getattr(detector, "pixel_dtype_", None)
    if pixel_dtype:
        top = np.iinfo(pixel_dtype).max
        return f"{pixel_dtype} pixel values as float32 (0..{top}); the graph divides by {top}"
    method = detector.preprocessing_
    return f"the values the detector was fitted on; the graph applies its {method!r} preprocessing"
