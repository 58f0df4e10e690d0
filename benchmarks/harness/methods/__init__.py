"""The registry of benchmarked methods, in table order: slaft, peft, AdapterHub, then the baselines.

Libraries are imported lazily inside each method, so listing methods is cheap and a missing peer library fails
only its own runs.
"""

from __future__ import annotations

from .adapterhub_methods import adapterhub_methods
from .peft_methods import peft_methods
from .plain_methods import plain_methods
from .protocol import Method
from .slaft_methods import slaft_methods

REFERENCE = "peft-lora-qv"  # step time, memory and latency ratios are taken against this method

METHODS: dict[str, Method] = {m.name: m for m in (*slaft_methods(), *peft_methods(), *adapterhub_methods(),
                                                   *plain_methods())}




def label(method: str) -> str:
    """The display name of a method in tables, plots and sentences."""
    return METHODS[method].label if method in METHODS else method


def library(method: str) -> str:
    """The library a method comes from ("slaft", "peft", "adapters" or "transformers")."""
    return METHODS[method].library if method in METHODS else "transformers"


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"Unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]
