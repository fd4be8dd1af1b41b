"""``MemAEDetector``: MemAE behind the scikit-learn / PyOD detector contract."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted
from torch.utils.data import TensorDataset

from memae.checkpoint import CheckpointError, build_checked, load_checkpoint, save_checkpoint
from memae.config import ModelConfig, TrainConfig, config_from_dict
from memae.nn.model import MemAE, build_model
from memae.preprocessing import TableEncoder, apply_scaling, fit_scaling
from memae.resume import TrainingCheckpointer, read_fingerprint
from memae.thresholds import (
    check_threshold_params,
    ecdf_score,
    learn_threshold,
    test_percentile_labels,
)
from memae.training import History, fit_model, resolve_device, score
from memae.validation import as_float_array, check_sample_shape

Preprocessing = Literal["auto", "bounded", "standard", "robust", "minmax", "none"]
#: The scaling of continuous table columns under ``preprocessing="auto"``: bounded scored above
#: standard, robust and min-max on the small tables of ``benchmarks/tables.py`` and on KDDCUP99
#: records read from a CSV (docs/TABLES.md).
TABLE_SCALING = "bounded"
_KIND = "detector"


class MemAEDetector(OutlierMixin, BaseEstimator):
    """Memory-augmented autoencoder anomaly detector (Gong et al., ICCV 2019).

    Follows PyOD's detector contract: ``fit(X)`` on (mostly) normal data, then
    ``decision_function(X)`` gives anomaly scores (higher = more anomalous, the
    reconstruction error) and ``predict(X)`` gives 0 (normal) / 1 (anomaly) by the
    threshold ``threshold_`` learnt from normal data (see ``threshold`` below).
    ``X`` is a table (a pandas DataFrame, or a 2-D array), (N, C, H, W) images or
    (N, C, T, H, W) clips, as a numpy array or a torch tensor. Images and clips of ``uint8`` /
    ``uint16`` pixels are scaled to [0, 1] by their type's largest value
    (``preprocessing="auto"``; the scale is kept in the checkpoint): a model fitted on such
    pixels takes the same type again, another integer type rescaled to it, or floats in the
    training type's units (0..255 for ``uint8``).

    Example:
        >>> det = MemAEDetector(epochs=5, random_state=0).fit(X_train)
        >>> scores = det.decision_function(X_test)
        >>> det.save("model.memae"); same = MemAEDetector.load("model.memae")

    Parameters mirror :class:`memae.config.ModelConfig` (the network and its variant) and
    :class:`memae.config.TrainConfig` (the optimisation), with two defaults of the detector's
    own: ``similarity="dot"`` addressing (within seed noise of cosine on the small tables of
    ``benchmarks/tables.py``, docs/TABLES.md, and cheaper), and ``batch_size``/``epochs`` left ``None`` are
    chosen by :func:`training_length` (tables: by the number of training rows; images and
    clips: 64 and 50). Tables go through a
    :class:`memae.preprocessing.TableEncoder` fitted on the training data and stored with the
    model: string columns one-hot (``max_categories`` at most), 0/1 columns kept, continuous
    columns through a signed ``log1p`` where heavy-tailed (``log1p``: "auto", "none" or
    column names) and scaled by ``preprocessing`` ("auto" = ``TABLE_SCALING`` for tables,
    integer pixels to [0, 1] for images, nothing for float images and clips; "bounded",
    "standard", "robust", "minmax", "none": :func:`memae.preprocessing.fit_scaling`); missing
    values are an error naming the column unless ``impute="median"``. Columns are matched by name.
    ``early_stopping`` (epochs, ``None`` by default) ends training once the loss on the held-out
    normal data (``validation_fraction`` or ``X_val``) has not improved for that many epochs;
    ``epochs`` is then the most it trains. ``score_reduction`` picks the per-sample error
    ("mse", or "l2" over channels as the authors' video code does); ``channels_last`` trains
    conv nets with channels-last weights and activations ("auto", the default: 2-D conv
    nets on the CPU, where the MNIST and CIFAR-10 nets trained faster, see
    ``docs/PERFORMANCE.md``; the same gradients within float rounding, so training takes a
    path close to the contiguous one); ``compile`` runs each training step's forward pass and
    loss through ``torch.compile`` (seconds to compile first, then faster steps for most
    backbones, see ``docs/PERFORMANCE.md``; needs a C++ compiler on CPU).

    ``threshold`` picks how ``threshold_`` is learnt (:mod:`memae.thresholds`):
    ``"percentile"`` (default) takes the ``threshold_percentile``-th percentile of the
    validation scores (held-out normal data; the training scores when there is no
    validation set), ``"contamination"`` the ``1 - contamination`` quantile of the training
    scores (PyOD's rule), ``"fixed"`` uses ``threshold_value``, and ``"test-percentile"``
    flags the scores above the ``threshold_percentile``-th percentile of the data being
    predicted (the KDDCUP99 protocol). :meth:`calibrated_score` maps scores to [0, 1] by the
    empirical CDF of the same normal reference scores.
    """

    def __init__(
        self,
        *,
        variant: str = "memae",
        backbone: str = "auto",
        width: float = 1.0,
        memory_size: int | None = None,
        shrink_threshold: float | None = None,
        entropy_weight: float = 0.0002,
        l1_weight: float = 1e-4,
        similarity: str = "dot",
        addressing: str = "auto",
        weight_init: str = "torch",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: str = "constant",
        validation_fraction: float = 0.1,
        early_stopping: int | None = None,
        preprocessing: Preprocessing = "auto",
        log1p: str | list[str] = "auto",
        max_categories: int = 100,
        impute: str | None = None,
        score_reduction: str = "mse",
        contamination: float = 0.1,
        threshold: str = "percentile",
        threshold_percentile: float = 95.0,
        threshold_value: float | None = None,
        random_state: int | None = None,
        device: str = "auto",
        channels_last: bool | str = "auto",
        compile: bool = False,
        verbose: bool = False,
    ) -> None:
        self.variant = variant
        self.backbone = backbone
        self.width = width
        self.memory_size = memory_size
        self.shrink_threshold = shrink_threshold
        self.entropy_weight = entropy_weight
        self.l1_weight = l1_weight
        self.similarity = similarity
        self.addressing = addressing
        self.weight_init = weight_init
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.preprocessing = preprocessing
        self.log1p = log1p
        self.max_categories = max_categories
        self.impute = impute
        self.score_reduction = score_reduction
        self.contamination = contamination
        self.threshold = threshold
        self.threshold_percentile = threshold_percentile
        self.threshold_value = threshold_value
        self.random_state = random_state
        self.device = device
        self.channels_last = channels_last
        self.compile = compile
        self.verbose = verbose

    # --- configuration ------------------------------------------------------------------

    def _model_config(self, input_shape: tuple[int, ...]) -> ModelConfig:
        return ModelConfig(
            input_shape=input_shape,
            backbone=self.backbone,
            variant=self.variant,
            width=self.width,
            memory_size=self.memory_size,
            shrink_threshold=self.shrink_threshold,
            entropy_weight=self.entropy_weight,
            l1_weight=self.l1_weight,
            similarity=self.similarity,
            addressing=self.addressing,  # type: ignore[arg-type]
            weight_init=self.weight_init,  # type: ignore[arg-type]
        )

    def _train_config(self, seed: int, n_train: int, table: bool) -> TrainConfig:
        batch_size, epochs = training_length(n_train, table, self.batch_size, self.epochs)
        return TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            schedule=self.schedule,  # type: ignore[arg-type]
            validation_fraction=self.validation_fraction,
            seed=seed,
            device=self.device,
            channels_last=self.channels_last,
            compile=self.compile,
            progress=bool(self.verbose),
            early_stopping=self.early_stopping,
        )

    def _check_params(self) -> None:
        for name, kind, optional in _PARAM_TYPES:
            value = getattr(self, name)
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, kind):
                expected = "an integer" if kind is numbers.Integral else "a number"
                raise TypeError(
                    f"{name} must be {expected}{' or None' if optional else ''}, "
                    f"got {value!r} ({type(value).__name__})"
                )
            if isinstance(value, numbers.Integral) and abs(value) >= 1 << 62:
                raise ValueError(f"{name} must lie below 2**62, got {value!r}")
            if not isinstance(value, numbers.Integral) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in _STR_PARAMS:
            if not isinstance(getattr(self, name), str):
                value = getattr(self, name)
                raise TypeError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
        check_threshold_params(
            self.threshold, self.threshold_percentile, self.contamination, self.threshold_value
        )
        if self.preprocessing not in ("auto", "bounded", "standard", "robust", "minmax", "none"):
            raise ValueError(
                "preprocessing must be 'auto', 'bounded', 'standard', 'robust', 'minmax' or 'none', "
                f"got {self.preprocessing!r}"
            )
        if not isinstance(self.compile, bool):
            raise TypeError(f"compile must be True or False, got {self.compile!r}")
        if not (isinstance(self.channels_last, bool) or self.channels_last == "auto"):
            raise TypeError(f"channels_last must be True, False or 'auto', got {self.channels_last!r}")
        if self.score_reduction not in ("mse", "l2"):
            raise ValueError(f"score_reduction must be 'mse' or 'l2', got {self.score_reduction!r}")

    # --- fitting ------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        X_val: Any = None,
        training_state: str | os.PathLike[str] | None = None,
        resume: bool = False,
        checkpoint_every: int = 0,
    ) -> MemAEDetector:
        """Train on ``X`` (``y`` is ignored: the detector is unsupervised).

        ``X_val``, normal data held out by the caller, replaces the random
        ``validation_fraction`` split. With ``training_state`` (a path) the training state
        is written there every epoch and every ``checkpoint_every`` steps
        (:mod:`memae.resume`); ``resume=True`` continues from it when it exists (the same
        data and parameters are required), otherwise an old state there is discarded.
        """
        self._check_params()
        table = _is_table(X)
        if table:
            encoder = TableEncoder(log1p=self.log1p, max_categories=self.max_categories, impute=self.impute)
            array = encoder.fit(X).encode(X)
        else:
            array = as_float_array(X)
        shape = tuple(int(s) for s in array.shape[1:])
        if self.score_reduction == "l2" and array.ndim == 2:
            raise ValueError(
                "score_reduction='l2' needs channel-first images or clips, "
                f"got tabular X of shape {array.shape}"
            )
        model_config = self._model_config(shape)
        stored = read_fingerprint(training_state) if training_state is not None and resume else None
        if self.random_state is not None:
            seed = int(self.random_state)
        elif stored and "seed" in stored:
            seed = int(stored["seed"])
        else:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        if X_val is not None:
            n_train = len(array)
        else:
            n_train = len(array) - (round(self.validation_fraction * len(array)) if len(array) > 1 else 0)
        train_config = self._train_config(seed, n_train, table)
        if table:
            method = self.preprocessing if self.preprocessing != "auto" else TABLE_SCALING
            self.table_: TableEncoder | None = encoder
            self.log_mask_: np.ndarray | None = encoder.log_mask_
            self.offset_, self.scale_ = fit_scaling(
                array, encoder.continuous_mask_, encoder.log_mask_, method
            )
            if encoder.named_:
                self.feature_names_in_ = encoder.feature_names_in_
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        else:
            pixel_max = _pixel_max(X) if array.ndim in (4, 5) else None
            method = (
                self.preprocessing if self.preprocessing != "auto" else ("pixels" if pixel_max else "none")
            )
            if method in ("robust", "bounded"):
                raise ValueError(
                    f"preprocessing={method!r} is for tables; images and clips take 'none', "
                    "'standard' or 'minmax'"
                )
            self.table_, self.log_mask_ = None, None
            self.offset_, self.scale_ = _fit_scaling(array, method, pixel_max)
        self.preprocessing_ = method
        self.pixel_dtype_ = _PIXEL_DTYPES.get(pixel_max) if method == "pixels" else None
        data = self._transform(array)
        self.input_range_ = _value_range(data) if array.ndim in (4, 5) else None

        if X_val is not None:
            if table:
                val_array = encoder.encode(X_val, "X_val")
            else:
                val_array = as_float_array(X_val, "X_val")
                check_sample_shape(val_array, shape, "X_val")
            train_data, val_data = data, self._transform(val_array)
        else:
            order = np.random.default_rng(seed).permutation(len(data))
            n_val = round(train_config.validation_fraction * len(data)) if len(data) > 1 else 0
            train_data, val_data = data[order[n_val:]], data[order[:n_val]]
        if self.early_stopping is not None and not len(val_data):
            raise ValueError(
                f"early_stopping={self.early_stopping} watches the loss on held-out normal data, "
                "and there is none: give X_val or a validation_fraction above 0"
            )
        checkpointer = None
        if training_state is not None:
            if not resume:
                Path(training_state).unlink(missing_ok=True)
            checkpointer = TrainingCheckpointer(
                training_state,
                every_steps=checkpoint_every,
                fingerprint=self._fingerprint(seed, array, None if X_val is None else val_array),
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, resolved = build_model(model_config)
            _check_batch_norm_batches(model, resolved, len(train_data), train_config.batch_size)
            history = fit_model(
                model,
                resolved,
                train_config,
                TensorDataset(train_data),
                TensorDataset(val_data) if len(val_data) else None,
                checkpointer=checkpointer,
            )
        self.model_: MemAE = model
        self.model_config_ = resolved
        self.train_config_ = train_config
        self.history_: History = history
        self.input_shape_ = shape
        if table:
            self.n_features_in_ = encoder.n_features_in_
        self.decision_scores_ = self._score_tensor(data)
        self.validation_scores_ = self._score_tensor(val_data) if len(val_data) else np.zeros(0)
        if not np.isfinite(self.decision_scores_).all():
            raise ValueError(
                "training produced non-finite scores on the training data (values beyond float32 range "
                f"after preprocessing {method!r}, or a diverged run): scale the data "
                "(preprocessing='standard') or lower lr"
            )
        self._set_threshold()
        return self

    def _fingerprint(self, seed: int, array: np.ndarray, val_array: np.ndarray | None) -> dict[str, Any]:
        """What a resumed run must share with the run that wrote the training state."""
        params = {k: v for k, v in self.get_params().items() if k not in ("device", "verbose")}
        return {
            "params": {**params, "random_state": seed},
            "seed": seed,
            "data_sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest(),
            "data_shape": list(array.shape),
            "val_sha256": None
            if val_array is None
            else hashlib.sha256(np.ascontiguousarray(val_array).tobytes()).hexdigest(),
        }

    def _set_threshold(self) -> None:
        learnt = learn_threshold(
            self.threshold,
            train_scores=self.decision_scores_,
            val_scores=self.validation_scores_,
            percentile=self.threshold_percentile,
            contamination=self.contamination,
            value=self.threshold_value,
        )
        self.threshold_, self.threshold_source_ = learnt.value, learnt.source
        self.labels_ = self.labels_from_scores(self.decision_scores_)

    def labels_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """0/1 labels of anomaly scores by the fitted threshold rule (the test-percentile
        rule thresholds ``scores`` by their own percentile)."""
        check_is_fitted(self, "threshold_")
        if self.threshold == "test-percentile":
            return test_percentile_labels(scores, self.threshold_percentile)
        return (np.asarray(scores) > self.threshold_).astype(int)

    def _reference_scores(self) -> np.ndarray:
        """The normal scores that calibrate: validation scores, else training scores."""
        check_is_fitted(self, "decision_scores_")
        return self.validation_scores_ if len(self.validation_scores_) else self.decision_scores_

    # --- scoring ------------------------------------------------------------------------

    def _transform(self, array: np.ndarray) -> torch.Tensor:
        """Encoded samples -> the model's input (log where learnt, offset and scale)."""
        if self.table_ is not None:
            return torch.from_numpy(apply_scaling(array, self.log_mask_, self.offset_, self.scale_))
        return torch.from_numpy((array - self.offset_) / self.scale_).float()

    def _validated(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "model_")
        if self.table_ is not None:
            return self._transform(self.table_.encode(X))
        array = as_float_array(X)
        _check_channels(array, self.input_shape_)
        check_sample_shape(array, self.input_shape_)
        if array.ndim in (4, 5):
            array = _in_pixel_units(array, _pixel_max(X), getattr(self, "pixel_dtype_", None))
        data = self._transform(array)
        self._warn_outside_range(data, integer=_pixel_max(X) is not None)
        return data

    def _warn_outside_range(self, data: torch.Tensor, integer: bool) -> None:
        """Warn when images reach far beyond the values the model was trained on (more than
        ``_FAR`` times the training range's width past either end: anomalies may be brighter,
        pixels in another unit are far off), or when float pixels look like [0, 1] values given
        to a model trained on integer pixels."""
        trained = getattr(self, "input_range_", None)
        if trained is None or data.ndim not in (4, 5):
            return
        low, high = trained
        width = max(high - low, 1e-12)
        got_low, got_high = _value_range(data)
        unit = f"the detector's units after its {self.preprocessing_!r} preprocessing"
        if got_low < low - _FAR * width or got_high > high + _FAR * width:
            warnings.warn(
                f"images with values in [{got_low:.4g}, {got_high:.4g}] ({unit}) lie far outside the "
                f"training range [{low:.4g}, {high:.4g}]: are they scaled as the training images were?",
                UserWarning,
                stacklevel=4,
            )
        elif self.pixel_dtype_ and not integer and got_high - got_low <= width / 100:
            top = _PIXEL_MAX[self.pixel_dtype_]
            warnings.warn(
                f"float images spanning [{got_low * top:.4g}, {got_high * top:.4g}] given to a detector "
                f"trained on {self.pixel_dtype_} pixels (0..{top:g}): pass {self.pixel_dtype_} images, "
                f"or floats in 0..{top:g}",
                UserWarning,
                stacklevel=4,
            )

    def to_input_units(self, model_units: np.ndarray) -> np.ndarray:
        """Undo the scaling (and the log) of the model's input: reconstructions and decoded
        memory slots in the units of the encoded input (tables: one-hot and raw values)."""
        check_is_fitted(self, "model_")
        x = np.asarray(model_units, dtype=np.float64) * self.scale_ + self.offset_
        if self.log_mask_ is not None and self.log_mask_.any():
            x = np.where(self.log_mask_, np.sign(x) * np.expm1(np.abs(x)), x)
        return x

    def _device(self) -> torch.device:
        return next(self.model_.parameters()).device

    def _score_tensor(self, data: torch.Tensor, net: torch.nn.Module | None = None) -> np.ndarray:
        """Scores of prepared input. ``net``: the model already made ready for scoring by
        :func:`memae.fast.inference_model` (a server builds it once); by default it is built
        for this call."""
        batch = max(self.train_config_.batch_size, 256)
        model = self.model_ if net is None else net
        scores = score(model, data, batch, self._device(), self.score_reduction, fast=net is None)
        # A finite input whose error overflows float32 (inf - inf inside the net) is as far
        # from normal as a score gets: +inf, flagged anomalous, never a NaN that compares as normal.
        return np.where(np.isnan(scores), np.inf, scores)

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of each sample: its reconstruction error (higher = more anomalous)."""
        return self._score_tensor(self._validated(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's convention: the opposite of :meth:`decision_function` (higher = more normal)."""
        return -self.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """0 for normal, 1 for anomalous, by the threshold rule (:meth:`labels_from_scores`)."""
        return self.labels_from_scores(self.decision_function(X))

    def calibrated_score(self, X: Any) -> np.ndarray:
        """Anomaly score in [0, 1]: the share of normal reference scores (validation, else
        training) at or below each sample's score — their empirical CDF."""
        return ecdf_score(self._reference_scores(), self.decision_function(X))

    def predict_proba(self, X: Any, method: Literal["linear", "ecdf"] = "linear") -> np.ndarray:
        """(N, 2) probabilities [normal, anomalous]. ``"linear"``: scores min-max scaled by the
        training scores (PyOD's default); ``"ecdf"``: :meth:`calibrated_score`."""
        check_is_fitted(self, "decision_scores_")
        if method == "ecdf":
            anomalous = self.calibrated_score(X)
        elif method == "linear":
            low, high = float(self.decision_scores_.min()), float(self.decision_scores_.max())
            anomalous = np.clip((self.decision_function(X) - low) / max(high - low, 1e-12), 0.0, 1.0)
        else:
            raise ValueError(f"method must be 'linear' or 'ecdf', got {method!r}")
        return np.column_stack([1.0 - anomalous, anomalous])

    def preprocess(self, X: Any) -> np.ndarray:
        """``X`` after the fitted preprocessing: the model's input, float32 (N, *input_shape_)."""
        return self._validated(X).numpy()

    def error_map(self, X: Any) -> np.ndarray:
        """Squared reconstruction error of every feature (tables) or pixel (images, clips) in
        the model's units, (N, *input_shape_): where a sample's score comes from."""
        data = self._validated(X)
        output = self._forward_prepared(data)[0]
        return (data.numpy() - output) ** 2

    def _forward(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        output, weights = self._forward_prepared(self._validated(X))
        return self.to_input_units(output), weights

    @torch.inference_mode()
    def _forward_prepared(self, data: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Reconstructions in the model's units and addressing weights of prepared input."""
        self.model_.eval()
        outputs, weights = [], []
        batch = max(self.train_config_.batch_size, 256)
        for start in range(0, len(data), batch):
            rec = self.model_(data[start : start + batch].to(self._device()))
            outputs.append(rec.output.cpu())
            if rec.weights is not None:
                weights.append(rec.weights.cpu())
        output = torch.cat(outputs).numpy()
        return output, (torch.cat(weights).numpy() if weights else None)

    def anomaly_maps(self, X: Any) -> np.ndarray:
        """Per-pixel anomaly maps of (N, C, H, W) images: :meth:`error_map` averaged over
        channels, (N, 1, H, W). With ``score_reduction="mse"`` a sample's score is the mean of
        its map."""
        check_is_fitted(self, "model_")
        if len(self.input_shape_) != 3:
            raise ValueError(
                f"anomaly maps are made for (N, C, H, W) images; the detector takes samples of shape "
                f"{tuple(self.input_shape_)}"
            )
        return self.error_map(X).mean(axis=1, keepdims=True)

    def reconstruct(self, X: Any) -> np.ndarray:
        """Reconstructions of ``X`` in the input's units (scaling and log undone; a table's
        categorical columns stay one-hot, in the order of ``table_.feature_names_out_``)."""
        return self._forward(X)[0]

    def addressing_weights(self, X: Any) -> np.ndarray:
        """Memory addressing weights ``ŵ``: (N, slots) for global addressing,
        (N, slots, *positions) per location. Raises for the memory-less variants."""
        weights = self._forward(X)[1]
        if weights is None:
            raise ValueError(
                f"variant {self.model_config_.variant!r} has no memory, so no addressing weights"
            )
        return weights

    # --- persistence --------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a safe checkpoint (safetensors + JSON) that :meth:`load` restores exactly."""
        check_is_fitted(self, "model_")
        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        # a table's statistics stay float64 (a 1e20 fill value must not overflow them)
        dtype = np.float64 if self.table_ is not None else np.float32
        tensors["scoring.offset"] = torch.from_numpy(np.asarray(self.offset_, dtype=dtype))
        tensors["scoring.scale"] = torch.from_numpy(np.asarray(self.scale_, dtype=dtype))
        if self.log_mask_ is not None:
            tensors["scoring.log_mask"] = torch.from_numpy(self.log_mask_.astype(np.uint8))
        tensors["scoring.train_scores"] = torch.from_numpy(self.decision_scores_.astype(np.float64))
        tensors["scoring.validation_scores"] = torch.from_numpy(self.validation_scores_.astype(np.float64))
        metadata = {
            "kind": _KIND,
            "params": self.get_params(),
            "model_config": dataclasses.asdict(self.model_config_),
            "train_config": dataclasses.asdict(self.train_config_),
            "history": dataclasses.asdict(self.history_),
            "scoring": {
                "threshold": self.threshold_,
                "threshold_source": self.threshold_source_,
                "preprocessing": self.preprocessing_,
                "reduction": self.score_reduction,
                "pixel_dtype": self.pixel_dtype_,
                "input_range": None if self.input_range_ is None else list(self.input_range_),
            },
        }
        if self.table_ is not None:
            metadata["table"] = self.table_.to_dict()
        return save_checkpoint(path, tensors, metadata)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu") -> MemAEDetector:
        """Restore a detector written by :meth:`save` (no code in the file is executed)."""
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != _KIND:
            raise CheckpointError(f"{path} holds a {meta.get('kind')!r} checkpoint, expected a detector")
        try:
            detector = cls(**meta["params"])
            model_config = config_from_dict(ModelConfig, meta["model_config"])
            train_config = config_from_dict(TrainConfig, meta["train_config"])
            model, resolved = build_checked(
                path, lambda: build_model(model_config), tensors, model_config.input_shape
            )
            state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
            model.load_state_dict(state, strict=True)
            offset = tensors["scoring.offset"].numpy()
            scale = tensors["scoring.scale"].numpy()
            scores = tensors["scoring.train_scores"].numpy()
            val_scores = tensors.get("scoring.validation_scores", torch.zeros(0, dtype=torch.float64)).numpy()
            scoring = meta["scoring"]
            preprocessing = scoring["preprocessing"]
            threshold = float(scoring["threshold"])
            threshold_source = str(scoring.get("threshold_source", "training"))
            history = History(**meta.get("history", {}))
            pixel_dtype = scoring.get("pixel_dtype")
            if pixel_dtype not in (None, *_PIXEL_MAX):
                raise ValueError(f"unknown pixel type {pixel_dtype!r}, expected one of {sorted(_PIXEL_MAX)}")
            trained_range = scoring.get("input_range")
            input_range = None if trained_range is None else tuple(float(v) for v in trained_range)
            if input_range is not None and len(input_range) != 2:
                raise ValueError(f"input_range must be [low, high], got {trained_range!r}")
            table = TableEncoder.from_dict(meta["table"]) if "table" in meta else None
            log_mask = tensors["scoring.log_mask"].numpy().astype(bool) if table is not None else None
            if table is not None and not (
                len(table.feature_names_out_) == len(offset) == len(scale) == len(log_mask)
                and tuple(model_config.input_shape) == (len(offset),)
            ):
                raise ValueError("the table preprocessing does not match the model's input size")
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as err:
            what = f"lacks the field {err}" if isinstance(err, KeyError) else f"does not match: {err}"
            raise CheckpointError(f"{path} {what} (this memae's detector checkpoint)") from err
        detector.model_ = model.to(resolve_device(device))
        detector.model_config_ = resolved
        detector.train_config_ = train_config
        detector.history_ = history
        detector.input_shape_ = tuple(model_config.input_shape)
        detector.table_, detector.log_mask_ = table, log_mask
        if table is not None:
            detector.n_features_in_ = table.n_features_in_
            if table.named_:
                detector.feature_names_in_ = table.feature_names_in_
        elif len(detector.input_shape_) == 1:
            detector.n_features_in_ = detector.input_shape_[0]
        detector.offset_, detector.scale_ = offset, scale
        detector.preprocessing_ = preprocessing
        detector.pixel_dtype_ = pixel_dtype
        detector.input_range_ = input_range
        detector.decision_scores_ = scores
        detector.validation_scores_ = val_scores
        detector.threshold_ = threshold
        detector.threshold_source_ = threshold_source
        detector.labels_ = detector.labels_from_scores(scores)
        return detector


#: (parameter, type, may be None) checked at fit: a clear TypeError instead of one from deep inside.
_PARAM_TYPES: tuple[tuple[str, type, bool], ...] = (
    ("width", numbers.Real, False),
    ("memory_size", numbers.Integral, True),
    ("shrink_threshold", numbers.Real, True),
    ("entropy_weight", numbers.Real, False),
    ("l1_weight", numbers.Real, False),
    ("epochs", numbers.Integral, True),
    ("batch_size", numbers.Integral, True),
    ("lr", numbers.Real, False),
    ("weight_decay", numbers.Real, False),
    ("validation_fraction", numbers.Real, False),
    ("early_stopping", numbers.Integral, True),
    ("max_categories", numbers.Integral, False),
    ("contamination", numbers.Real, False),
    ("threshold_percentile", numbers.Real, False),
    ("threshold_value", numbers.Real, True),
    ("random_state", numbers.Integral, True),
)


#: parameters that name a choice: a list or number there is refused before any lookup.
_STR_PARAMS = (
    "variant",
    "backbone",
    "similarity",
    "addressing",
    "schedule",
    "score_reduction",
    "threshold",
    "device",
)
#: Tables without ``batch_size``/``epochs``: the batch grows with the data (``n / TABLE_BATCHES``
#: rows, a power of two within ``TABLE_BATCH_RANGE``) and training runs about ``TABLE_STEPS``
#: optimiser steps, within ``TABLE_EPOCH_RANGE`` epochs. Up to ~1,300 rows this is 50 epochs
#: of 64 (more or fewer steps did not score better on the small tables of
#: ``benchmarks/tables.py``); 40,000 rows take 25 epochs of 1,024 (1,000 steps) instead of
#: 50 of 64 (31,250 steps), 100,000 rows 10 epochs (docs/TABLES.md has the measurements).
TABLE_BATCHES = 16
TABLE_BATCH_RANGE = (64, 1024)
TABLE_STEPS = 1000
TABLE_EPOCH_RANGE = (10, 50)
#: Images and clips without ``batch_size``/``epochs``.
DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS = 64, 50


def training_length(
    n_train: int, table: bool, batch_size: int | None = None, epochs: int | None = None
) -> tuple[int, int]:
    """``(batch_size, epochs)``: those given, and for those left ``None`` the defaults for
    ``n_train`` training samples (tables: by the data's size; images and clips: 64 and 50)."""
    if batch_size is None:
        if table:
            low, high = TABLE_BATCH_RANGE
            batch_size = int(min(high, max(low, 2 ** round(np.log2(max(n_train, 1) / TABLE_BATCHES)))))
        else:
            batch_size = DEFAULT_BATCH_SIZE
    if epochs is None:
        if table:
            steps_per_epoch = -(-max(n_train, 1) // batch_size)
            low, high = TABLE_EPOCH_RANGE
            epochs = int(min(high, max(low, round(TABLE_STEPS / steps_per_epoch))))
        else:
            epochs = DEFAULT_EPOCHS
    return batch_size, epochs


def _check_batch_norm_batches(model: MemAE, config: ModelConfig, n_train: int, batch_size: int) -> None:
    """Batch norm on a 1×1 encoding sees one value per channel in a batch of one sample and
    cannot train; name the cause and the fix before training starts."""
    spatial = model.latent_shape[1:]
    has_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if not has_norm or not spatial or int(np.prod(spatial)) != 1:
        return
    if min(n_train, batch_size) == 1 or n_train % batch_size == 1:
        raise ValueError(
            f"backbone {config.backbone!r} encodes samples of shape {config.input_shape} to a 1x1 map, "
            f"where batch norm needs at least 2 samples per batch; {n_train} training sample(s) in "
            f"batches of {batch_size} leave a batch of one: change batch_size or give more samples"
        )


def _fit_scaling(
    array: np.ndarray, method: str, pixel_max: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature offset and scale; constant features get scale 1; ``"pixels"`` divides by
    the largest value of the pixel type (``pixel_max``)."""
    shape = array.shape[1:]
    if method == "none":
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    if method == "pixels":
        if pixel_max is None:
            raise ValueError("pixel scaling needs images of uint8 or uint16 pixels")
        return np.zeros(shape, np.float32), np.full(shape, pixel_max, np.float32)
    if method == "standard":
        offset, spread = array.mean(axis=0), array.std(axis=0)
    else:
        offset, spread = array.min(axis=0), array.max(axis=0) - array.min(axis=0)
    scale = np.where(spread > 1e-12, spread, 1.0)
    return offset.astype(np.float32), scale.astype(np.float32)


def _is_table(X: Any) -> bool:
    """A pandas DataFrame, or anything 2-D (rows of features): the table path."""
    from memae.data.tables import is_frame

    if is_frame(X):
        return True
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        try:
            ndim = np.asarray(X, dtype=object).ndim
        except ValueError:
            return False
    return ndim == 2


# --- pixel scaling for images of integer pixels -------------------------------------------

#: How many training-range widths past its ends scoring data must reach to be warned about.
_FAR = 10.0
#: The integer pixel types scaled by their largest value, and back.
_PIXEL_MAX: dict[str, float] = {"uint8": 255.0, "uint16": 65535.0}
_PIXEL_DTYPES: dict[float | None, str] = {v: k for k, v in _PIXEL_MAX.items()}


def _pixel_max(X: Any) -> float | None:
    """The largest value of ``X``'s pixel type when it is ``uint8`` / ``uint16`` (numpy or torch)."""
    dtype = getattr(X, "dtype", None)
    name = str(dtype).removeprefix("torch.") if dtype is not None else str(np.asarray(X).dtype)
    return _PIXEL_MAX.get(name)


def _in_pixel_units(array: np.ndarray, pixel_max: float | None, trained_dtype: str | None) -> np.ndarray:
    """Images in the units the model was fitted in: integer pixels of another type are
    rescaled to the training type (``uint16`` to a ``uint8`` model: x * 255 / 65535), integer
    pixels given to a model fitted on floats are brought to [0, 1]."""
    if pixel_max is None:
        return array
    target = _PIXEL_MAX[trained_dtype] if trained_dtype else 1.0
    return array if target == pixel_max else array * np.float32(target / pixel_max)


def _value_range(data: torch.Tensor | np.ndarray) -> tuple[float, float]:
    return float(data.min()), float(data.max())


def _check_channels(array: np.ndarray, input_shape: tuple[int, ...]) -> None:
    """A clear error for images or clips of the training size with another channel count (other
    differences get :func:`memae.validation.check_sample_shape`'s message)."""
    same_size = array.ndim == len(input_shape) + 1 and tuple(array.shape[2:]) == tuple(input_shape[1:])
    if len(input_shape) in (3, 4) and same_size and array.shape[1] != input_shape[0]:
        raise ValueError(
            f"the detector was trained on {input_shape[0]}-channel images of shape (N, "
            f"{', '.join(map(str, input_shape))}), got {array.shape[1]}-channel images of shape "
            f"{array.shape}: convert them to {input_shape[0]} channel(s) (--channels {input_shape[0]})"
        )
