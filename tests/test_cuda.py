"""On a CUDA device: the search, the decision and the merge run on the GPU under bf16 autocast, and what is saved
there loads on the CPU to the same function. These tests skip where no GPU is visible (CI has none); run them on a
GPU machine with `pytest tests/test_cuda.py`. The rest of the suite runs there too: the Trainer and `slaft train`
place the model on the GPU when one is visible."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainingArguments

from slaft import SlaftConfig, SlaftModel, SlaftTrainer, get_slaft_model

from conftest import tiny_bert, tiny_llama
from test_search import SPACE, toy_dataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none is visible)")


@pytest.mark.parametrize("make, allocator", [(tiny_bert, "importance"), (tiny_llama, "gates")])
def test_search_decision_and_merge_on_cuda_in_bf16(tmp_path, batch, make, allocator):
    config = SlaftConfig(**SPACE, target_params=1500, allocator=allocator, decided_lr_scale=2.0)
    model = get_slaft_model(make(), config)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=30, per_device_train_batch_size=8,
                             learning_rate=1e-2, bf16=True, logging_steps=5, save_strategy="no", report_to=[],
                             disable_tqdm=True, seed=0)
    trainer = SlaftTrainer(model=model, args=args, train_dataset=toy_dataset())
    trainer.train()
    assert model.discrete and 0 < model.structure().num_params <= 1500
    assert {p.device.type for p in model.parameters()} == {"cuda"}
    assert all(torch.isfinite(p).all() for p in model.parameters())

    # accelerate leaves bf16 autocast wrapped around the trained model's forward: compare in full precision
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    on_gpu = {k: v.cuda() for k, v in batch.items()}
    with torch.no_grad():
        adapted = model(**on_gpu).logits.float()
    model.save_pretrained(tmp_path / "adapter")
    model.merge()
    with torch.no_grad():
        merged = model(**on_gpu).logits.float()
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=1e-4)

    loaded = SlaftModel.from_pretrained(make(), tmp_path / "adapter").eval()
    with torch.no_grad():
        on_cpu = loaded(**batch).logits
    torch.testing.assert_close(on_cpu, adapted.cpu(), atol=1e-4, rtol=1e-4)
