"""VAE, DSEBM and DAGMM as torch modules with a ``loss`` and a ``score``, and one loop.

* VAE (Kingma & Welling, 2014): Gaussian latent on the backbone's flattened encoding;
  score = negative ELBO with the posterior mean (squared error + KL).
* DSEBM (Zhai et al., ICML 2016): energy ``E(x) = ½‖x − b‖² − Σ softplus(h(x))`` with ``h``
  the backbone's encoder, trained by denoising score matching; score = the energy.
* DAGMM (Zong et al., ICLR 2018): compression net (the backbone) + estimation net, a GMM
  on ``[z_c, relative Euclidean error, cosine similarity]``; score = the sample energy.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from memae.fast import train_channels_last, use_channels_last
from memae.nn.backbones import build_backbone


def _flat_dim(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


class VAE(nn.Module):
    def __init__(self, backbone: str, input_shape: tuple[int, ...], latent_dim: int = 16) -> None:
        super().__init__()
        parts = build_backbone(backbone, input_shape)
        self.encoder, self.decoder, self.latent_shape = parts.encoder, parts.decoder, parts.latent_shape
        flat = _flat_dim(parts.latent_shape)
        self.to_stats = nn.Linear(flat, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim, flat)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_latent(z).view(-1, *self.latent_shape))

    def _terms(self, x: torch.Tensor, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_stats(self.encoder(x).flatten(1)).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        rec = (self._decode(z) - x).pow(2).flatten(1).sum(dim=1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)
        return rec, kl

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        rec, kl = self._terms(x, sample=True)
        return (rec + kl).mean()

    def score(self, x: torch.Tensor) -> torch.Tensor:
        rec, kl = self._terms(x, sample=False)
        return rec + kl


class DSEBM(nn.Module):
    def __init__(self, backbone: str, input_shape: tuple[int, ...], noise: float = 0.1) -> None:
        super().__init__()
        parts = build_backbone(backbone, input_shape)
        self.h = parts.encoder
        self.bias = nn.Parameter(torch.zeros(input_shape))
        self.noise = noise

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        quadratic = 0.5 * (x - self.bias).pow(2).flatten(1).sum(dim=1)
        return quadratic - F.softplus(self.h(x).flatten(1)).sum(dim=1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        noisy = (x + self.noise * torch.randn_like(x)).requires_grad_(True)
        grad = torch.autograd.grad(self.energy(noisy).sum(), noisy, create_graph=True)[0]
        return (x - (noisy - grad)).pow(2).flatten(1).sum(dim=1).mean()

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy(x)


#: Diagonal loads tried in turn until every component's covariance factorises. Tabular
#: data with many identical records (KDDCUP99's smurf and neptune) gives components whose
#: samples in a batch coincide, so their covariance is singular to float precision.
COV_JITTERS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def _cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Cholesky factors of ``cov + εI`` (K, D, D) with the smallest ε of
    :data:`COV_JITTERS` that makes every component positive definite."""
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    for jitter in COV_JITTERS:
        chol, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        if not bool(info.any()):
            return chol
    raise FloatingPointError(
        f"DAGMM: a mixture covariance is not positive definite even with {COV_JITTERS[-1]} added "
        "to its diagonal (are the features finite?)"
    )


class DAGMM(nn.Module):
    def __init__(
        self,
        backbone: str,
        input_shape: tuple[int, ...],
        n_components: int = 4,
        lambda_energy: float = 0.1,
        lambda_cov: float = 0.005,
    ) -> None:
        super().__init__()
        parts = build_backbone(backbone, input_shape)
        self.encoder, self.decoder = parts.encoder, parts.decoder
        dim = _flat_dim(parts.latent_shape) + 2
        self.estimation = nn.Sequential(
            nn.Linear(dim, 10), nn.Tanh(), nn.Dropout(0.5), nn.Linear(10, n_components), nn.Softmax(dim=1)
        )
        self.lambda_energy, self.lambda_cov = lambda_energy, lambda_cov
        self.register_buffer("phi", torch.full((n_components,), 1.0 / n_components))
        self.register_buffer("mu", torch.zeros(n_components, dim))
        self.register_buffer("cov", torch.eye(dim).repeat(n_components, 1, 1))

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z_c = self.encoder(x)
        x_hat = self.decoder(z_c)
        xf, rf = x.flatten(1), x_hat.flatten(1)
        rel = (xf - rf).norm(dim=1) / xf.norm(dim=1).clamp_min(1e-8)
        cos = F.cosine_similarity(xf, rf, dim=1, eps=1e-8)
        return torch.cat([z_c.flatten(1), rel[:, None], cos[:, None]], dim=1), (xf - rf).pow(2).sum(dim=1)

    @staticmethod
    def _gmm(z: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        phi = gamma.mean(dim=0)
        weight = gamma.sum(dim=0).clamp_min(1e-8)
        mu = gamma.t() @ z / weight[:, None]
        centred = z[None] - mu[:, None]  # (K, B, D)
        cov = torch.einsum("kb,kbi,kbj->kij", gamma.t(), centred, centred) / weight[:, None, None]
        return phi, mu, cov

    def _energy(
        self, z: torch.Tensor, phi: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor
    ) -> torch.Tensor:
        dim = z.shape[1]
        chol = _cholesky(cov)
        centred = (z[None] - mu[:, None]).transpose(1, 2)  # (K, D, B)
        solved = torch.linalg.solve_triangular(chol, centred, upper=False)
        mahalanobis = solved.pow(2).sum(dim=1)  # (K, B)
        log_det = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(dim=1)
        log_prob = -0.5 * (mahalanobis + log_det[:, None] + dim * math.log(2 * math.pi))
        return -torch.logsumexp(torch.log(phi.clamp_min(1e-12))[:, None] + log_prob, dim=0)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        z, rec = self._features(x)
        gamma = self.estimation(z)
        phi, mu, cov = self._gmm(z, gamma)
        energy = self._energy(z, phi, mu, cov)
        cov_penalty = (1.0 / torch.diagonal(cov, dim1=1, dim2=2).clamp_min(1e-12)).sum()
        return rec.mean() + self.lambda_energy * energy.mean() + self.lambda_cov * cov_penalty

    @torch.no_grad()
    def fit_mixture(self, batches: list[torch.Tensor]) -> None:
        """Set the mixture's parameters from the whole training data (in eval mode)."""
        zs, gammas = [], []
        for x in batches:
            z, _ = self._features(x)
            zs.append(z)
            gammas.append(self.estimation(z))
        phi, mu, cov = self._gmm(torch.cat(zs), torch.cat(gammas))
        self.phi.copy_(phi)
        self.mu.copy_(mu)
        self.cov.copy_(cov)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        z, _ = self._features(x)
        return self._energy(z, self.phi, self.mu, self.cov)


def fit_scorer(
    model: nn.Module,
    train: np.ndarray,
    test: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    channels_last: bool | Literal["auto"] = "auto",
) -> np.ndarray:
    """Train ``model`` (with ``loss``/``score`` methods) by Adam on ``train``; score ``test``.

    ``channels_last`` as MemAE's ``TrainConfig`` has it: ``"auto"`` trains conv nets with
    channels-last weights and activations (:func:`memae.fast.train_channels_last`).
    """
    data = torch.from_numpy(np.asarray(train, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    relayout = train_channels_last(channels_last, model, torch.device("cpu"))
    layouts = use_channels_last(model, weights=True) if relayout else []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        try:
            for _ in range(epochs):
                for idx in torch.randperm(len(data), generator=generator).split(batch_size):
                    if len(idx) < 2:
                        continue
                    loss = model.loss(data[idx])  # type: ignore[operator]
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        finally:
            for handle in layouts:
                handle.remove()
        model.eval()
        if isinstance(model, DAGMM):
            model.fit_mixture(list(data.split(4096)))
        tests = torch.from_numpy(np.asarray(test, dtype=np.float32)).split(4096)
        if isinstance(model, DSEBM):
            return torch.cat([model.score(t).detach() for t in tests]).numpy().astype(np.float64)
        with torch.no_grad():
            return torch.cat([model.score(t) for t in tests]).numpy().astype(np.float64)  # type: ignore[operator]
