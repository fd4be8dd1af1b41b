"""Pure torch modules and the equations of MemAE: no I/O, no optimiser, no devices."""

from memae.nn import functional
from memae.nn.backbones import Backbone, build_backbone, list_backbones, register_backbone
from memae.nn.functional import addressing_entropy
from memae.nn.loss import LossTerms, memae_loss, reconstruction_error
from memae.nn.memory import MemoryModule, MemoryOutput
from memae.nn.model import MemAE, Reconstruction, build_model, resolve_model_config

__all__ = [
    "Backbone",
    "LossTerms",
    "MemAE",
    "MemoryModule",
    "MemoryOutput",
    "Reconstruction",
    "addressing_entropy",
    "build_backbone",
    "build_model",
    "functional",
    "list_backbones",
    "memae_loss",
    "reconstruction_error",
    "register_backbone",
    "resolve_model_config",
]
