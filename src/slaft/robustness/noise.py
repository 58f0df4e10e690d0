"""Noise injected while training, to measure how a method copes with imperfect data.

* label noise: a given ratio of training labels replaced by a uniformly drawn *other* label (classification), or
  Gaussian noise of ``ratio`` times the labels' standard deviation on every target (regression); seeded, and the
  run records how many labels changed.
* token noise: each non-special input token replaced by a random vocabulary token with probability ``ratio``;
* embedding noise: Gaussian noise of ``ratio`` times each token embedding's RMS on the input embeddings.

Input noise acts through hooks on the model's input-embedding module and only while the model is in training mode,
so evaluation never sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset
from torch import nn

from ..config import ConfigError
from ..data import TaskSpec

INPUT_NOISE_KINDS = ("token", "embedding")


@dataclass(frozen=True)
class NoiseReport:
    """What a noise injection did, for the run's records."""

    kind: str
    ratio: float
    changed: int   # labels (or targets) changed
    total: int

    def to_dict(self) -> dict:
        """The report as a JSON-ready dict (kind, ratio, changed, total)."""
        return {"kind": self.kind, "ratio": self.ratio, "changed": self.changed, "total": self.total}


def check_ratio(name: str, ratio: float) -> None:
    """Refuse a noise ratio outside [0, 1), naming the setting ``name``."""
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"{name} is a fraction in [0, 1), got {ratio}.")


def label_noise(dataset: Dataset, spec: TaskSpec, ratio: float, seed: int,
                label_column: str = "label") -> tuple[Dataset, NoiseReport]:
    """The dataset with noisy labels, and what changed."""
    check_ratio("label noise", ratio)
    labels = np.asarray(dataset[label_column])
    rng = np.random.default_rng(seed)
    if spec.is_regression:
        noisy = labels.astype(np.float64)
        if ratio > 0:
            noisy = noisy + rng.normal(0.0, ratio * float(noisy.std()), size=len(noisy))
        changed = int(np.sum(noisy != labels))
        column = noisy.astype(np.float32).tolist()
    else:
        if spec.num_labels < 2:
            raise ConfigError("label noise needs at least two classes.")
        count = int(round(ratio * len(labels)))
        chosen = rng.choice(len(labels), size=count, replace=False) if count else np.array([], dtype=int)
        noisy = labels.copy()
        shift = rng.integers(1, spec.num_labels, size=count)  # 1..K-1: never the same class
        noisy[chosen] = (labels[chosen] + shift) % spec.num_labels
        changed = int(np.sum(noisy != labels))
        column = noisy.tolist()
    out = dataset.remove_columns(label_column).add_column(label_column, column)
    return out.cast_column(label_column, dataset.features[label_column]), NoiseReport("label", ratio, changed,
                                                                                       len(labels))


class InputNoise:
    """Token or embedding noise on a transformers model's input embeddings, in training mode only."""

    def __init__(self, model: nn.Module, kind: str, ratio: float, *, seed: int = 0,
                 special_ids: list[int] | None = None) -> None:
        if kind not in INPUT_NOISE_KINDS:
            raise ConfigError(f"Unknown input noise {kind!r}; choose one of {INPUT_NOISE_KINDS}.")
        check_ratio(f"{kind} noise", ratio)
        self.kind, self.ratio = kind, ratio
        self.embeddings = model.get_input_embeddings()
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.special = torch.tensor(sorted(set(special_ids or [])), dtype=torch.long)
        if kind == "token":
            self.handle = self.embeddings.register_forward_pre_hook(self._replace_tokens)
        else:
            self.handle = self.embeddings.register_forward_hook(self._add_gaussian)

    def _replace_tokens(self, module: nn.Embedding, args):
        ids = args[0]
        if not module.training or self.ratio == 0:
            return None
        draw = torch.rand(ids.shape, generator=self.generator).to(ids.device) < self.ratio
        draw &= ~torch.isin(ids, self.special.to(ids.device))
        random_ids = torch.randint(0, module.num_embeddings, ids.shape, generator=self.generator).to(ids.device)
        return (torch.where(draw, random_ids, ids), *args[1:])

    def _add_gaussian(self, module: nn.Embedding, _args, output: torch.Tensor):
        if not module.training or self.ratio == 0:
            return None
        rms = output.detach().pow(2).mean(-1, keepdim=True).sqrt()  # (..., 1)
        noise = torch.randn(output.shape, generator=self.generator).to(output.device, output.dtype)
        return output + self.ratio * rms * noise

    def remove(self) -> None:
        """Take the hook off the input embeddings: the model sees clean inputs again."""
        self.handle.remove()
