"""slaft: structure-learnable adapter fine-tuning for transformers models."""

from .architectures import ARCHITECTURES, ArchitectureError, ArchitectureSpec, register_architecture
from .config import ConfigError, SlaftConfig
from .model import ParameterSummary, SlaftModel, get_slaft_model
from .structure import ModuleSpec, Structure
from .training import SlaftCallback, SlaftTrainer
from .version import __version__

__all__ = [
    "ARCHITECTURES", "ArchitectureError", "ArchitectureSpec", "ConfigError", "ModuleSpec", "ParameterSummary",
    "SlaftCallback", "SlaftConfig", "SlaftModel", "SlaftTrainer", "Structure", "__version__", "get_slaft_model",
    "register_architecture",
]
