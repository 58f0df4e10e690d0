"""The errors a user can fix: each carries a message that says what is wrong and what to do. The CLI prints them as
one paragraph with exit code 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

from .config import ConfigError
from .data import DataError
from .discovery import DiscoveryError
from .io import AdapterLoadError
from .loading import ModelLoadError
from .model import NonFiniteError
from .robustness.perturb import MissingDependencyError
from .runs import OutputDirError

USER_ERRORS = (ConfigError, DataError, AdapterLoadError, ModelLoadError, DiscoveryError, OutputDirError,
               NonFiniteError, MissingDependencyError)
