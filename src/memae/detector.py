"""``MemAEDetector``: MemAE behind the scikit-learn / PyOD detector contract."""

from __future__ import annotations

import dataclasses
import hashlib
import numbers
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted
from torch.utils.data import TensorDataset

from memae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from memae.config import ModelConfig, TrainConfig, config_from_dict
from memae.nn.model import MemAE, build_model
from memae.resume import TrainingCheckpointer, read_fingerprint
from memae.thresholds import (
    check_threshold_params,
    ecdf_score,
    learn_threshold,
    test_percentile_labels,
)
from memae.training import History, fit_model, resolve_device, score
from memae.validation import as_float_array, check_sample_shape

Preprocessing = Literal["auto", "standard", "minmax", "none"]
_KIND = "detector"


class MemAEDetector(OutlierMixin, BaseEstimator):
    """Memory-augmented autoencoder anomaly detector (Gong et al., ICCV 2019).

    Follows PyOD's detector contract: ``fit(X)`` on (mostly) normal data, then
    ``decision_function(X)`` gives anomaly scores (higher = more anomalous, the
    reconstruction error) and ``predict(X)`` gives 0 (normal) / 1 (anomaly) by the
    threshold ``threshold_`` learnt from normal data (see ``threshold`` below).
    ``X`` is a 2-D array (tabular), (N, C, H, W) images or (N, C, T, H, W) clips, as a numpy
    array or a torch tensor.

    Example:
        >>> det = MemAEDetector(epochs=5, random_state=0).fit(X_train)
        >>> scores = det.decision_function(X_test)
        >>> det.save("model.memae"); same = MemAEDetector.load("model.memae")

    Parameters mirror :class:`memae.config.ModelConfig` (the network and its variant) and
    :class:`memae.config.TrainConfig` (the optimisation); ``preprocessing`` scales each
    feature ("auto": standardise tabular data, leave images and clips alone),
    ``score_reduction`` picks the per-sample error ("mse", or "l2" over channels as the
    authors' video code does); ``channels_last`` trains conv nets on channels-last
    activations (faster for some backbones on CPU, see ``docs/PERFORMANCE.md``; the same
    gradients within float rounding, so training takes a path close to the default one);
    ``compile`` runs each training step's forward pass and loss through ``torch.compile``
    (seconds to compile first, then faster steps for most backbones, see
    ``docs/PERFORMANCE.md``; needs a C++ compiler on CPU).

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
        similarity: str = "cosine",
        addressing: str = "auto",
        weight_init: str = "torch",
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: str = "constant",
        validation_fraction: float = 0.1,
        preprocessing: Preprocessing = "auto",
        score_reduction: str = "mse",
        contamination: float = 0.1,
        threshold: str = "percentile",
        threshold_percentile: float = 95.0,
        threshold_value: float | None = None,
        random_state: int | None = None,
        device: str = "auto",
        channels_last: bool = False,
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
        self.preprocessing = preprocessing
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

    def _train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            schedule=self.schedule,  # type: ignore[arg-type]
            validation_fraction=self.validation_fraction,
            seed=seed,
            device=self.device,
            channels_last=self.channels_last,
            compile=self.compile,
            progress=bool(self.verbose),
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
        check_threshold_params(
            self.threshold, self.threshold_percentile, self.contamination, self.threshold_value
        )
        if self.preprocessing not in ("auto", "standard", "minmax", "none"):
            raise ValueError(
                f"preprocessing must be 'auto', 'standard', 'minmax' or 'none', got {self.preprocessing!r}"
            )
        for flag in ("channels_last", "compile"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
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
        train_config = self._train_config(seed)
        method = (
            self.preprocessing
            if self.preprocessing != "auto"
            else ("standard" if array.ndim == 2 else "none")
        )
        self.offset_, self.scale_ = _fit_scaling(array, method)
        self.preprocessing_ = method
        data = self._transform(array)

        if X_val is not None:
            val_array = as_float_array(X_val, "X_val")
            check_sample_shape(val_array, shape, "X_val")
            train_data, val_data = data, self._transform(val_array)
        else:
            order = np.random.default_rng(seed).permutation(len(data))
            n_val = round(train_config.validation_fraction * len(data)) if len(data) > 1 else 0
            train_data, val_data = data[order[n_val:]], data[order[:n_val]]
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
        if array.ndim == 2:
            self.n_features_in_ = shape[0]
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
        return torch.from_numpy((array - self.offset_) / self.scale_).float()

    def _validated(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "model_")
        array = as_float_array(X)
        check_sample_shape(array, self.input_shape_)
        return self._transform(array)

    def _device(self) -> torch.device:
        return next(self.model_.parameters()).device

    def _score_tensor(self, data: torch.Tensor) -> np.ndarray:
        scores = score(self.model_, data, max(self.batch_size, 256), self._device(), self.score_reduction)
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

    @torch.inference_mode()
    def _forward(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        data = self._validated(X)
        self.model_.eval()
        outputs, weights = [], []
        for start in range(0, len(data), max(self.batch_size, 256)):
            rec = self.model_(data[start : start + max(self.batch_size, 256)].to(self._device()))
            outputs.append(rec.output.cpu())
            if rec.weights is not None:
                weights.append(rec.weights.cpu())
        output = torch.cat(outputs).numpy() * self.scale_ + self.offset_
        return output, (torch.cat(weights).numpy() if weights else None)

    def reconstruct(self, X: Any) -> np.ndarray:
        """Reconstructions of ``X`` in the input's units (preprocessing undone)."""
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
        tensors["scoring.offset"] = torch.from_numpy(np.asarray(self.offset_, dtype=np.float32))
        tensors["scoring.scale"] = torch.from_numpy(np.asarray(self.scale_, dtype=np.float32))
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
            },
        }
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
            model, resolved = build_model(model_config)
            state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
            model.load_state_dict(state, strict=True)
            offset = tensors["scoring.offset"].numpy()
            scale = tensors["scoring.scale"].numpy()
            scores = tensors["scoring.train_scores"].numpy()
            val_scores = tensors.get("scoring.validation_scores", torch.zeros(0, dtype=torch.float64)).numpy()
            scoring = meta["scoring"]
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{path} does not match this memae's detector: {err}") from err
        detector.model_ = model.to(resolve_device(device))
        detector.model_config_ = resolved
        detector.train_config_ = train_config
        detector.history_ = History(**meta.get("history", {}))
        detector.input_shape_ = tuple(model_config.input_shape)
        if len(detector.input_shape_) == 1:
            detector.n_features_in_ = detector.input_shape_[0]
        detector.offset_, detector.scale_ = offset, scale
        detector.preprocessing_ = scoring["preprocessing"]
        detector.decision_scores_ = scores
        detector.validation_scores_ = val_scores
        detector.threshold_ = float(scoring["threshold"])
        detector.threshold_source_ = str(scoring.get("threshold_source", "training"))
        detector.labels_ = detector.labels_from_scores(scores)
        return detector


#: (parameter, type, may be None) checked at fit: a clear TypeError instead of one from deep inside.
_PARAM_TYPES: tuple[tuple[str, type, bool], ...] = (
    ("width", numbers.Real, False),
    ("memory_size", numbers.Integral, True),
    ("shrink_threshold", numbers.Real, True),
    ("entropy_weight", numbers.Real, False),
    ("l1_weight", numbers.Real, False),
    ("epochs", numbers.Integral, False),
    ("batch_size", numbers.Integral, False),
    ("lr", numbers.Real, False),
    ("weight_decay", numbers.Real, False),
    ("validation_fraction", numbers.Real, False),
    ("contamination", numbers.Real, False),
    ("threshold_percentile", numbers.Real, False),
    ("threshold_value", numbers.Real, True),
    ("random_state", numbers.Integral, True),
)


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


def _fit_scaling(array: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature offset and scale; constant features get scale 1."""
    shape = array.shape[1:]
    if method == "none":
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    if method == "standard":
        offset, spread = array.mean(axis=0), array.std(axis=0)
    else:
        offset, spread = array.min(axis=0), array.max(axis=0) - array.min(axis=0)
    scale = np.where(spread > 1e-12, spread, 1.0)
    return offset.astype(np.float32), scale.astype(np.float32)
