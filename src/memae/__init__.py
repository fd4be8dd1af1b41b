"""memae: memory-augmented autoencoders for unsupervised anomaly detection.

An implementation of MemAE (Gong et al., *Memorizing Normality to Detect Anomaly*,
ICCV 2019) with every variant of the paper, a scikit-learn/PyOD-style detector and a CLI.
"""

__version__ = "0.1.0"

from memae.config import VARIANTS, ModelConfig, TrainConfig, get_variant
from memae.detector import MemAEDetector
from memae.nn import MemAE, MemoryModule, MemoryOutput, Reconstruction, list_backbones

__all__ = [
    "VARIANTS",
    "MemAE",
    "MemAEDetector",
    "MemoryModule",
    "MemoryOutput",
    "ModelConfig",
    "Reconstruction",
    "TrainConfig",
    "__version__",
    "get_variant",
    "list_backbones",
]
