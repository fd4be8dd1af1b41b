"""The yardstick of the benchmarks: MemAE written plainly from SPEC §2-§5.

The same layers, the same maths and the same work as :mod:`memae`, written the obvious way,
as the authors' code does it:

* the memory module moves channels last with a separate ``permute(...).contiguous()`` for
  each tensor rank and permutes the read and the weights back with another copy;
* addressing is the chain of plain tensor operations, differentiated by autograd;
* the entropy loss repeats the per-rank permutes on the weights;
* training is ``zero_grad / forward / loss / backward / Adam.step`` with the default Adam;
* scoring runs the training-mode network in eval mode under ``torch.no_grad``, batch norm
  as a separate layer, contiguous tensors;
* the video loader opens, decodes, converts and resizes the 16 frame files of every clip
  each time the clip is read (``num_workers=0``).

The conv and fully connected stacks are :func:`memae.nn.build_backbone`'s own layers (plain
``nn.Conv3d`` / ``nn.BatchNorm3d`` / ... in an ``nn.Sequential``), so the reference and the
library run exactly the same layers and can share weights: ``RefMemAE.load_state_dict``
takes a :class:`memae.nn.MemAE` state dict, and ``tests/unit/test_benchmark_reference.py``
checks that both score the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from memae.nn.backbones import build_backbone

EPS = 1e-12


def hard_shrink_relu(x: torch.Tensor, lambd: float, eps: float = EPS) -> torch.Tensor:
    return F.relu(x - lambd) * x / (torch.abs(x - lambd) + eps)


class RefMemoryUnit(nn.Module):
    """Addressing and read on rows: (M, C) queries, an (N, C) memory."""

    def __init__(self, mem_dim: int, fea_dim: int, shrink_thres: float, similarity: str) -> None:
        super().__init__()
        self.memory = nn.Parameter(torch.empty(mem_dim, fea_dim))
        bound = 1.0 / math.sqrt(fea_dim)
        self.memory.data.uniform_(-bound, bound)
        self.shrink_thres = shrink_thres
        self.similarity = similarity

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.similarity == "cosine":
            att = F.linear(F.normalize(x, dim=1), F.normalize(self.memory, dim=1))
        else:
            att = F.linear(x, self.memory)
        att = F.softmax(att, dim=1)
        if self.shrink_thres > 0:
            att = hard_shrink_relu(att, self.shrink_thres)
            att = F.normalize(att, p=1, dim=1)
        output = F.linear(att, self.memory.t())
        return output, att


def _to_rows(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2:
        return x
    if x.dim() == 3:
        return x.permute(0, 2, 1).contiguous().view(-1, x.shape[1])
    if x.dim() == 4:
        return x.permute(0, 2, 3, 1).contiguous().view(-1, x.shape[1])
    if x.dim() == 5:
        return x.permute(0, 2, 3, 4, 1).contiguous().view(-1, x.shape[1])
    raise ValueError(f"expected a 2-D to 5-D tensor, got {x.dim()}-D")


def _from_rows(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    b, *spatial = like.shape[0], *like.shape[2:]
    if like.dim() == 2:
        return rows
    if like.dim() == 3:
        return rows.view(b, spatial[0], -1).permute(0, 2, 1).contiguous()
    if like.dim() == 4:
        return rows.view(b, spatial[0], spatial[1], -1).permute(0, 3, 1, 2).contiguous()
    return rows.view(b, spatial[0], spatial[1], spatial[2], -1).permute(0, 4, 1, 2, 3).contiguous()


class RefMemModule(nn.Module):
    """The memory for every tensor rank, by per-rank permutes (as the authors' code)."""

    def __init__(self, mem_dim: int, fea_dim: int, shrink_thres: float, similarity: str) -> None:
        super().__init__()
        self.unit = RefMemoryUnit(mem_dim, fea_dim, shrink_thres, similarity)

    @property
    def memory(self) -> nn.Parameter:
        return self.unit.memory

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output, att = self.unit(_to_rows(x))
        return _from_rows(output, x), _from_rows(att, x)


def entropy_loss(att: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Mean entropy of the addressing weights, with the per-rank permutes again."""
    rows = _to_rows(att)
    return (-rows * torch.log(rows + eps)).sum(dim=1).mean()


class RefMemAE(nn.Module):
    """Encoder, memory, decoder. Parameter names match :class:`memae.nn.MemAE`'s."""

    def __init__(
        self,
        input_shape: Sequence[int],
        backbone: str,
        mem_dim: int | None = None,
        shrink_thres: float | None = None,
        similarity: str = "cosine",
        width: float = 1.0,
        addressing: str | None = None,
    ) -> None:
        super().__init__()
        b = build_backbone(backbone, input_shape, width)
        self.encoder, self.decoder = b.encoder, b.decoder
        self.addressing = addressing or b.addressing
        self.latent_shape = b.latent_shape
        mem_dim = mem_dim or b.memory_size
        fea_dim = b.latent_shape[0] if self.addressing == "location" else math.prod(b.latent_shape)
        thres = 1.0 / mem_dim if shrink_thres is None else shrink_thres
        self.mem = RefMemModule(mem_dim, fea_dim, thres, similarity)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encoder(x)
        if self.addressing == "global":
            read, att = self.mem(f.view(f.shape[0], -1))
            read = read.view(f.shape)
        else:
            read, att = self.mem(f)
        return self.decoder(read), att

    def load_memae_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load the weights of a :class:`memae.nn.MemAE` (``memory.memory`` -> ``mem.unit.memory``)."""
        renamed = {k.replace("memory.memory", "mem.unit.memory"): v for k, v in state.items()}
        self.load_state_dict(renamed, strict=True)


def train_step(
    model: RefMemAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, entropy_weight: float
) -> float:
    """One optimisation step of ``MSE + α · entropy``; returns the loss."""
    optimizer.zero_grad()
    output, att = model(x)
    loss = F.mse_loss(output, x) + entropy_weight * entropy_loss(att)
    loss.backward()
    optimizer.step()
    return loss.item()


def score(model: RefMemAE, x: torch.Tensor, reduction: str = "mse") -> np.ndarray:
    """Per-sample reconstruction error in eval mode."""
    model.eval()
    with torch.no_grad():
        output, _ = model(x)
        diff = output - x
        if reduction == "l2":
            err = torch.sqrt(torch.sum(diff**2, dim=1)).view(x.shape[0], -1).mean(dim=1)
        else:
            err = (diff**2).view(x.shape[0], -1).mean(dim=1)
    return err.cpu().numpy()


class RefClipDataset(Dataset):
    """16-frame clips read from frame image files, every frame of every clip decoded anew.

    Frames are converted to grayscale, resized to ``size = (H, W)`` (bilinear) and
    normalised with mean 0.5, std 0.5, as the authors' loader does.
    """

    def __init__(
        self,
        videos: Sequence[Sequence[Path]],
        starts: Sequence[tuple[int, int]],
        size: tuple[int, int],
        clip_len: int = 16,
    ) -> None:
        self.videos = [list(v) for v in videos]
        self.starts = list(starts)
        self.size = size
        self.clip_len = clip_len

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> torch.Tensor:
        video, start = self.starts[i]
        frames = []
        for path in self.videos[video][start : start + self.clip_len]:
            img = Image.open(path).convert("L")
            img = img.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
            frame = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
            frames.append((frame - 0.5) / 0.5)
        return torch.stack(frames).unsqueeze(0)


__all__ = ["RefClipDataset", "RefMemAE", "entropy_loss", "score", "train_step"]
