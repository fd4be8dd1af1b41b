"""Every method of the reproduction harness behind one signature.

A method takes normal training data, normal validation data and test data, plus a seed
and its settings, and returns anomaly scores for the test data (higher = more anomalous).
MemAE's variants run through :class:`memae.MemAEDetector`; the paper's baselines and the
peers users know run through scikit-learn, PyOD or :mod:`memae.baselines`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from memae.config import VARIANTS, get_variant

ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray, int, dict[str, Any]], np.ndarray]


@dataclass(frozen=True)
class Method:
    name: str
    fn: ScoreFn
    description: str
    #: The keys of a table's settings the method reads (a recorded run made with other
    #: values for them is stale; values of other keys do not matter to it).
    settings: tuple[str, ...] = ()

    def relevant(self, config: dict[str, Any], shared: tuple[str, ...] = ("protocol",)) -> dict[str, Any]:
        """The part of a run's ``config`` that decides this method's result."""
        return {k: config[k] for k in (*self.settings, *shared) if k in config}


METHODS: dict[str, Method] = {}


def register_method(
    name: str, description: str, settings: tuple[str, ...] = ()
) -> Callable[[ScoreFn], ScoreFn]:
    def wrap(fn: ScoreFn) -> ScoreFn:
        METHODS[name] = Method(name, fn, description, settings)
        return fn

    return wrap


def get_method(name: str) -> Method:
    """A method by its table row title (``"MemAE-nonSpar"``, ``"OC-SVM"``), in any case, or
    a MemAE variant by the detector's name for it (``"memae-nonspar"``, ``"memae"``)."""
    if name in METHODS:
        return METHODS[name]
    folded = {m.casefold(): m for m in METHODS}
    key = name.strip().casefold()
    if key in folded:
        return METHODS[folded[key]]
    try:
        return METHODS[get_variant(name).title]
    except ValueError:
        pass
    raise ValueError(
        f"unknown method {name!r}; known methods: {', '.join(METHODS)} "
        f"(MemAE variants also by name: {', '.join(VARIANTS)})"
    )


def relevant_settings(method: str, config: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's ``config`` that decides ``method``'s result (:meth:`Method.relevant`)."""
    return get_method(method).relevant(config)


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def _memae(variant: str) -> ScoreFn:
    def run(
        train: np.ndarray, val: np.ndarray, test: np.ndarray, seed: int, cfg: dict[str, Any]
    ) -> np.ndarray:
        from memae.detector import MemAEDetector

        det = MemAEDetector(**{**cfg.get("detector", {}), "variant": variant, "random_state": seed})
        det.fit(train, X_val=val if len(val) else None)
        return det.decision_function(test)

    return run


for _key, _variant in VARIANTS.items():
    register_method(_variant.title, f"memae variant {_key!r}", ("detector",))(_memae(_key))


def _subsample(train: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Kernel methods scale quadratically: train them on at most ``limit`` samples."""
    if len(train) <= limit:
        return train
    return train[np.random.default_rng(seed).choice(len(train), limit, replace=False)]


@register_method(
    "OC-SVM", "scikit-learn OneClassSVM, RBF kernel, gamma='scale', nu=0.1", ("ocsvm_nu", "kernel_max_train")
)
def _ocsvm(
    train: np.ndarray, val: np.ndarray, test: np.ndarray, seed: int, cfg: dict[str, Any]
) -> np.ndarray:
    from sklearn.svm import OneClassSVM

    svm = OneClassSVM(kernel="rbf", gamma="scale", nu=cfg.get("ocsvm_nu", 0.1))
    svm.fit(_flat(_subsample(train, cfg.get("kernel_max_train", 10000), seed)))
    return -svm.decision_function(_flat(test))


#: KDE's candidate bandwidths, in units of the training data's mean per-feature std.
KDE_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0)


@register_method(
    "KDE",
    "Gaussian kernel density, exact by matrix products (memae.baselines.kde), bandwidth by "
    "validation log-likelihood",
    ("kernel_max_train",),
)
def _kde(train: np.ndarray, val: np.ndarray, test: np.ndarray, seed: int, cfg: dict[str, Any]) -> np.ndarray:
    from memae.baselines.kde import gaussian_log_density

    fit = _flat(_subsample(train, cfg.get("kernel_max_train", 10000), seed))
    held = _flat(val) if len(val) else fit
    scale = float(np.sqrt(fit.var(axis=0).sum() / fit.shape[1]))  # mean per-feature std
    candidates = [scale * f for f in KDE_BANDWIDTHS]
    best = candidates[int(np.argmax(gaussian_log_density(fit, held, candidates).sum(axis=1)))]
    return -gaussian_log_density(fit, _flat(test), [best])[0]


def _deep(kind: str) -> ScoreFn:
    def run(
        train: np.ndarray, val: np.ndarray, test: np.ndarray, seed: int, cfg: dict[str, Any]
    ) -> np.ndarray:
        from memae.baselines import DAGMM, DSEBM, VAE, fit_scorer

        det = cfg.get("detector", {})
        backbone = det.get("backbone", "auto")
        shape = tuple(train.shape[1:])
        if backbone == "auto":
            from memae.nn.backbones import auto_backbone

            backbone = auto_backbone(shape)
        with torch_seed(seed):
            model = {"VAE": VAE, "DSEBM": DSEBM, "DAGMM": DAGMM}[kind](backbone, shape)
        return fit_scorer(
            model,
            train,
            test,
            epochs=det.get("epochs", 20),
            batch_size=det.get("batch_size", 64),
            lr=det.get("lr", 1e-3),
            seed=seed,
            channels_last=det.get("channels_last", "auto"),
        )

    return run


def torch_seed(seed: int):  # type: ignore[no-untyped-def]
    """Seed torch inside a forked RNG state (the global state is restored afterwards)."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def ctx():  # type: ignore[no-untyped-def]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield

    return ctx()


_DEEP = ("detector",)
register_method("VAE", "variational autoencoder on the same backbone; score = negative ELBO", _DEEP)(
    _deep("VAE")
)
register_method("DSEBM", "deep structured energy-based model on the same backbone; score = energy", _DEEP)(
    _deep("DSEBM")
)
register_method("DAGMM", "deep autoencoding Gaussian mixture model; score = sample energy", _DEEP)(
    _deep("DAGMM")
)


@register_method(
    "PyOD-AutoEncoder", "pyod.models.auto_encoder.AutoEncoder on flattened inputs", ("pyod_epochs",)
)
def _pyod_ae(
    train: np.ndarray, val: np.ndarray, test: np.ndarray, seed: int, cfg: dict[str, Any]
) -> np.ndarray:
    from pyod.models.auto_encoder import AutoEncoder

    model = AutoEncoder(epoch_num=cfg.get("pyod_epochs", 20), random_state=seed, verbose=0, device="cpu")
    with torch_seed(seed):
        model.fit(_flat(train))
        return model.decision_function(_flat(test))


@register_method("PyOD-DeepSVDD", "pyod.models.deep_svdd.DeepSVDD on flattened inputs", ("pyod_epochs",))
def _pyod_svdd(
    train: np.ndarray, val: np.ndarray, test: np.ndarray, seed: int, cfg: dict[str, Any]
) -> np.ndarray:
    from pyod.models.deep_svdd import DeepSVDD

    flat = _flat(train)
    model = DeepSVDD(
        n_features=flat.shape[1], epochs=cfg.get("pyod_epochs", 20), random_state=seed, verbose=0
    )
    with torch_seed(seed):
        model.fit(flat)
        return model.decision_function(_flat(test))


@register_method("PyOD-IForest", "pyod.models.iforest.IForest, 100 trees")
def _pyod_iforest(
    train: np.ndarray, val: np.ndarray, test: np.ndarray, seed: int, cfg: dict[str, Any]
) -> np.ndarray:
    from pyod.models.iforest import IForest

    return IForest(random_state=seed).fit(_flat(train)).decision_function(_flat(test))
