"""slaft: structure-learnable adapter fine-tuning for transformers models."""

from .auto import AutoSlaftModel
from .config import ConfigError, ConfigWarning, SlaftConfig
from .discovery import DiscoveryError
from .io import AdapterLoadError
from .model import ParameterSummary, SlaftModel, get_slaft_model
from .structure import ModuleSpec, Structure
from .training import SlaftCallback, SlaftTrainer
from .version import __version__

__all__ = [
    "AdapterLoadError", "AutoSlaftModel", "ConfigError", "ConfigWarning", "DiscoveryError", "ModuleSpec",
    "ParameterSummary", "SlaftCallback", "SlaftConfig", "SlaftModel", "SlaftTrainer", "Structure", "__version__",
    "get_slaft_model",
]
