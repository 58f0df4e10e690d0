"""The one evaluation path: batched logits of any sequence-classification model on a tokenized split, and its
metrics. ``slaft train``, ``slaft eval`` and the benchmark worker all score through it."""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding

from .data import TaskSpec, compute_metrics


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, tokenizer, *, batch_size: int = 64, progress: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) of ``model`` on a tokenized split with a "labels" column, in the split's own order."""
    was_training = model.training
    model.eval()
    order = np.argsort([-len(ids) for ids in dataset["input_ids"]], kind="stable")
    loader = DataLoader(dataset.select(order.tolist()), batch_size=batch_size,
                        collate_fn=DataCollatorWithPadding(tokenizer))
    device = next(model.parameters()).device
    logits, labels = [], []
    for batch in tqdm(loader, desc="evaluating", leave=False, disable=not progress):
        labels.append(batch.pop("labels").numpy())
        out = model(**{k: v.to(device) for k, v in batch.items()})
        logits.append(out.logits.float().cpu().numpy())
    model.train(was_training)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return np.concatenate(logits)[inverse], np.concatenate(labels)[inverse]


def evaluate(model: nn.Module, spec: TaskSpec, dataset: Dataset, tokenizer, *, batch_size: int = 64,
             progress: bool = True) -> dict[str, float]:
    """The task's metrics (``spec.metrics``) of ``model`` on a tokenized, labelled split."""
    logits, labels = predict(model, dataset, tokenizer, batch_size=batch_size, progress=progress)
    return compute_metrics(spec, logits, labels)
