"""The paper's deep baselines (VAE, DSEBM, DAGMM), built on memae's backbones so that they
share the encoder capacity of the MemAE rows they are compared with; and the exact Gaussian
kernel density of the KDE row (:mod:`memae.baselines.kde`)."""

from memae.baselines.deep import DAGMM, DSEBM, VAE, fit_scorer

__all__ = ["DAGMM", "DSEBM", "VAE", "fit_scorer"]
