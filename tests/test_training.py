"""Nothing unsafe is kept: NaN/inf stop a run before they reach a checkpoint, naming what and when."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback

from slaft import SlaftConfig, SlaftModel, SlaftTrainer, get_slaft_model
from slaft.model import NonFiniteError
from slaft.runs import latest_checkpoint

from conftest import TINY_MODELS
from test_search import arguments, toy_dataset


def test_a_poisoned_tensor_stops_training_and_the_last_good_checkpoint_survives(tmp_path):
    class Poison(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 5:
                model.base_model.classifier.weight.data[0, 0] = float("nan")

    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(adapter_width=4, width_block=2, lora_rank=2))
    args = arguments(tmp_path, 10, save_strategy="steps", save_steps=2)
    trainer = SlaftTrainer(model=model, args=args, train_dataset=toy_dataset(), callbacks=[Poison()])
    trainer.callback_handler.callbacks.insert(0, trainer.callback_handler.pop_callback(Poison))
    with pytest.raises(NonFiniteError, match=r"classifier.weight became non-finite .* by step 5"):
        trainer.train()
    last = latest_checkpoint(tmp_path)
    assert last and last.endswith("checkpoint-4")
    loaded = SlaftModel.from_pretrained(TINY_MODELS["bert"](), last)  # loads, checksum verified, all finite
    assert all(torch.isfinite(p).all() for p in loaded.parameters())


def test_a_nan_label_stops_training_with_a_message(tmp_path):
    data = toy_dataset(32).map(lambda row, i: {"labels": float("nan") if i == 3 else float(row["labels"])},
                               with_indices=True)
    model = get_slaft_model(TINY_MODELS["bert"](num_labels=1), SlaftConfig(adapter_width=4, width_block=2,
                                                                          lora_rank=2))
    with pytest.raises(NonFiniteError, match="non-finite"):
        SlaftTrainer(model=model, args=arguments(tmp_path, 8), train_dataset=data).train()
