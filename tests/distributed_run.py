"""One training run of a tiny slaft model, as `tests/test_distributed.py` launches it (alone, or under torchrun):

    python distributed_run.py OUT PER_DEVICE_BATCH STEPS

Every rank writes what it ended with (structure, trained tensors) to OUT/rank<R>.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import TrainingArguments

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_bert  # noqa: E402

from slaft import SlaftConfig, SlaftTrainer, get_slaft_model  # noqa: E402


def main() -> None:
    out, per_device, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 120, (16, 8), generator=generator)  # one global batch: every step sees all of it
    data = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(),
                              "labels": (ids[:, 0] % 3).tolist()})
    config = SlaftConfig(adapter_width=8, width_block=4, lora_rank=4, rank_block=2, activations=["relu"],
                         target_params=1500)
    model = get_slaft_model(tiny_bert(), config)
    args = TrainingArguments(output_dir=str(out), max_steps=steps, per_device_train_batch_size=per_device,
                             learning_rate=1e-2, logging_steps=1000, save_strategy="no", report_to=[], use_cpu=True,
                             seed=0, disable_tqdm=True,
                             ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None)
    SlaftTrainer(model=model, args=args, train_dataset=data).train()
    rank = int(os.environ.get("RANK", "0"))
    result = {"world_size": args.world_size, "decided_at": model.decided_at_step, "discrete": model.discrete,
              "structure": model.structure().to_dict(),
              "state": {name: param.detach().tolist() for name, param in model.named_parameters()
                        if param.requires_grad}}
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
