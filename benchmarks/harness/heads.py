"""The task head every method trains, chosen per suite: BERT's [CLS] pooler, or a mean-pooling pooler.

MiniLM-L6 (all-MiniLM-L6-v2) was trained as a sentence encoder whose sentence vector is the masked mean of its last
hidden states; its [CLS] pooler was never trained. ``mean`` replaces the pooler's input (the [CLS] state) by that
masked mean and keeps the pooler's dense layer and tanh, which train with the classifier as before, so every
library wraps and saves the same modules (``pooler.dense``, ``classifier``) either way.
"""

from __future__ import annotations

import torch
from torch import nn

HEADS = ("cls", "mean")


class MeanPooler(nn.Module):
    """tanh(W · mean_t(h_t) + b) over the tokens the attention mask keeps."""

    def __init__(self, pooler: nn.Module) -> None:
        super().__init__()
        self.dense = pooler.dense
        self.activation = pooler.activation
        self.attention_mask: torch.Tensor | None = None  # set by a pre-hook on the encoder at every forward

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, H)
        mask = self.attention_mask
        if mask is None or mask.shape != hidden_states.shape[:2]:
            mask = torch.ones(hidden_states.shape[:2], device=hidden_states.device)
        weights = mask.to(hidden_states.dtype).unsqueeze(-1)
        mean = (hidden_states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.activation(self.dense(mean))


def use_head(model: nn.Module, head: str) -> None:
    """Give a BERT-family task model the suite's head, in place (before any library wraps it)."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; known: {HEADS}")
    if head == "cls":
        return
    encoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
    pooler = getattr(encoder, "pooler", None)
    if pooler is None:
        raise ValueError(f"{type(model).__name__} has no pooler to replace with mean pooling")
    encoder.pooler = MeanPooler(pooler)

    def remember_mask(module, args, kwargs):
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        for pooler in module.pooler.modules():  # the pooler, or its per-task copies once a multi-task model made them
            if isinstance(pooler, MeanPooler):
                pooler.attention_mask = mask

    encoder.register_forward_pre_hook(remember_mask, with_kwargs=True)
