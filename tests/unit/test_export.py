import json

import numpy as np
import pytest
import torch

from memae import MemAEDetector
from memae.export import ExportError, export_detector

onnxruntime = pytest.importorskip("onnxruntime")

# TorchScript is deprecated in recent torch; the export still has to work while it exists.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

# One tiny detector per backbone (and the memory-less AE): (data, parameters).
CASES = {
    "mnist": ((1, 28, 28), {"width": 0.25}),
    "cifar10": ((3, 32, 32), {"width": 0.05}),
    "kddcup": ((12,), {}),
    "video": ((1, 8, 32, 32), {"width": 0.05, "memory_size": 30, "score_reduction": "l2"}),
    "video-small": ((1, 8, 32, 32), {"width": 0.2, "memory_size": 30}),
    "mlp": ((6,), {"similarity": "dot", "preprocessing": "minmax"}),
    "conv": ((2, 12, 12), {"addressing": "location"}),
    "mlp-ae": ((6,), {"variant": "ae", "backbone": "mlp"}),
}


def _data(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # a non-trivial offset and scale, so preprocessing inside the graph matters
    return (3.0 + 2.0 * rng.normal(size=(n, *shape))).astype(np.float32)


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request) -> tuple[MemAEDetector, np.ndarray]:
    shape, params = CASES[request.param]
    params = {"backbone": request.param, **params}
    X = _data(shape, 12 if len(shape) > 1 else 40, seed=0)
    det = MemAEDetector(epochs=1, batch_size=8, random_state=0, device="cpu", **params).fit(X)
    return det, _data(shape, 5, seed=1)


def test_onnx_scores_and_reconstructions_equal_pytorchs(fitted, tmp_path) -> None:
    det, X = fitted
    result = export_detector(det, tmp_path / "m.onnx", format="onnx", reconstruction=True)
    assert result.max_relative_difference <= 1e-4
    session = onnxruntime.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])
    for batch in (X, X[:1]):  # any batch size, not only the traced one
        score, reconstruction = session.run(None, {"x": batch})
        np.testing.assert_allclose(score, det.decision_function(batch), rtol=1e-4, atol=0)
        np.testing.assert_allclose(reconstruction, det.reconstruct(batch), rtol=1e-4, atol=1e-5)


def test_torchscript_scores_equal_pytorchs(fitted, tmp_path) -> None:
    det, X = fitted
    result = export_detector(det, tmp_path / "m.pt", format="torchscript")
    module = torch.jit.load(str(result.model_path))
    with torch.inference_mode():
        score = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(score, det.decision_function(X), rtol=1e-4, atol=0)


@pytest.fixture(scope="module")
def tabular() -> MemAEDetector:
    return MemAEDetector(epochs=1, random_state=0, device="cpu").fit(_data((4,), 30, seed=0))


def test_metadata_beside_the_model_holds_the_threshold_rule(tabular, tmp_path) -> None:
    det, X = tabular, _data((4,), 5, seed=1)
    result = export_detector(det, tmp_path / "m.onnx", check_data=X)
    assert result.metadata_path == tmp_path / "m.onnx.json"
    meta = json.loads(result.metadata_path.read_text())
    assert meta["threshold"]["value"] == det.threshold_ and meta["threshold"]["rule"] == "percentile"
    assert meta["input"]["shape"] == ["batch", *det.input_shape_] and meta["outputs"] == ["score"]
    assert meta["check"]["samples"] == 5 and meta["check"]["max_relative_difference"] <= 1e-4
    # the calibration scores reproduce the detector's calibrated score
    reference = np.asarray(meta["calibration"]["reference_scores"])
    calibrated = np.searchsorted(reference, det.decision_function(X), side="right") / len(reference)
    np.testing.assert_allclose(calibrated, det.calibrated_score(X))


def test_an_export_that_disagrees_is_refused_and_nothing_is_written(tabular, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("memae.export._run_onnx", lambda path, x: tabular.decision_function(x) * 1.001)
    with pytest.raises(ExportError, match=r"differ from the detector's by up to 0.001"):
        export_detector(tabular, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"format": "tflite"}, ExportError, "format must be one of"),
        ({"check_data": np.zeros((3, 5))}, ValueError, "has 5 features, but MemAEDetector is expecting 4"),
        ({"check_data": np.full((3, 4), np.nan)}, ValueError, "column .x0. has 3 missing value"),
    ],
)
def test_bad_export_arguments_are_named(tabular, tmp_path, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        export_detector(tabular, tmp_path / "m.onnx", **kwargs)


def test_unfitted_detector_cannot_be_exported(tmp_path) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        export_detector(MemAEDetector(), tmp_path / "m.onnx")


def _mixed_table(n: int, seed: int):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "proto": rng.choice(["tcp", "udp", "icmp"], n),
            "logged_in": rng.integers(0, 2, n),
            "bytes": np.round(rng.lognormal(5, 2.5, n)),
            "rate": rng.random(n),
        }
    )


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_table_with_string_and_heavy_tailed_columns_exports_with_parity(tmp_path, format) -> None:
    train = _mixed_table(80, seed=0)
    det = MemAEDetector(epochs=1, batch_size=16, random_state=0, device="cpu").fit(train)
    assert det.log_mask_.any(), "the lognormal byte column should go through log1p"
    check = _mixed_table(10, seed=1)
    check.loc[0, "proto"] = "sctp"  # a category never seen in training: all zeros
    with pytest.warns(UserWarning, match="never seen in training"):
        result = export_detector(det, tmp_path / f"m.{format}", format=format, check_data=check)
    assert result.max_relative_difference <= 1e-4 and result.checked_samples == 10
    meta = json.loads(result.metadata_path.read_text())
    assert meta["input"]["features"][:3] == ["proto=icmp", "proto=tcp", "proto=udp"]
    if format == "onnx":
        from memae.preprocessing import TableEncoder

        x = TableEncoder.from_dict(meta["input"]["table"]).encode(check.iloc[1:]).astype(np.float32)
        session = onnxruntime.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])
        scores = session.run(["score"], {"x": x})[0]
        np.testing.assert_allclose(scores, det.decision_function(check.iloc[1:]), rtol=1e-4)
