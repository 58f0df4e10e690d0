"""One training run of a tiny slaft model, as `tests/test_distributed.py` launches it (alone, or under torchrun):

    python distributed_run.py OUT PER_DEVICE_BATCH STEPS [multitask]

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


def multitask(out: Path, per_device: int, steps: int, args: TrainingArguments) -> dict:
    """Two tasks (3 classes, regression) on one pool: every rank must decide the same structures."""
    from slaft.multitask import MultiTaskDataset, MultiTaskSlaftModel, MultiTaskTrainer, TaskInfo

    generator = torch.Generator().manual_seed(0)
    datasets = []
    for labels in (3, 1):
        ids = torch.randint(1, 120, (32, 8), generator=generator)
        target = (ids[:, 0] % 3).tolist() if labels > 1 else (ids[:, 0].float() / 120).tolist()
        datasets.append(Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(),
                                           "labels": target}))
    config = SlaftConfig(adapter_width=8, width_block=4, lora_rank=4, rank_block=2, activations=["relu"],
                         target_params=1500)
    model = MultiTaskSlaftModel(tiny_bert(), config, [TaskInfo("a", 3), TaskInfo("b", 1)])
    MultiTaskTrainer(model=model, args=args, train_dataset=MultiTaskDataset(datasets)).train()
    return {"world_size": args.world_size, "decided_at": model.decided_at_step, "discrete": model.discrete,
            "structure": {name: s.to_dict() for name, s in model.task_structures().items()},
            "sharing": model.sharing().tolist(),
            "state": {name: param.detach().tolist() for name, param in model.named_parameters()
                      if param.requires_grad}}


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
    rank = int(os.environ.get("RANK", "0"))
    if sys.argv[4:] == ["multitask"]:
        (out / f"rank{rank}.json").write_text(json.dumps(multitask(out, per_device, steps, args)))
        return
    SlaftTrainer(model=model, args=args, train_dataset=data).train()
    result = {"world_size": args.world_size, "decided_at": model.decided_at_step, "discrete": model.discrete,
              "structure": model.structure().to_dict(),
              "state": {name: param.detach().tolist() for name, param in model.named_parameters()
                        if param.requires_grad}}
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
