"""slaft: structure-learnable adapter fine-tuning for transformers models."""

__version__ = "0.1.0"

from .architectures import ARCHITECTURES, ArchitectureError, ArchitectureSpec, register_architecture  # noqa: E402
from .config import ConfigError, SlaftConfig  # noqa: E402
from .model import ParameterSummary, SlaftModel, get_slaft_model  # noqa: E402
from .structure import ModuleSpec, Structure  # noqa: E402

__all__ = [
    "ARCHITECTURES", "ArchitectureError", "ArchitectureSpec", "ConfigError", "ModuleSpec", "ParameterSummary",
    "SlaftConfig", "SlaftModel", "Structure", "__version__", "get_slaft_model", "register_architecture",
]
