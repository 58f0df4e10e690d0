"""The model matrix: slaft on every model type listed in ``MATRIX``, each a tiny random model built offline from its
config, as a sequence classifier and (decoders) as a causal LM. For each: the candidate space is found from the
model, a few ``SlaftTrainer`` steps decide a structure, the decided model computes what the gated one did, merged
equals unmerged, saved equals loaded, and a LoRA-only structure exported to peft loads in ``PeftModel`` with equal
outputs. ``python -m tests.test_model_matrix`` (or ``slaft``'s docs build) renders the table docs/models.md shows.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from transformers import TrainingArguments
from transformers.utils import logging as hf_logging

from slaft import SlaftConfig, SlaftModel, SlaftTrainer, get_slaft_model
from slaft.peft_export import to_peft

from test_invariants import randomize
from tiny_models import VOCAB, tiny_model

hf_logging.set_verbosity_error()

ENCODERS = ("bert", "roberta", "xlm-roberta", "electra", "camembert", "distilbert", "deberta", "deberta-v2",
            "modernbert", "albert", "mpnet", "ernie")
ENCODER_DECODERS = ("t5", "bart", "mbart")
DECODERS = ("llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "qwen2_moe", "mixtral", "olmoe", "gemma", "gemma2",
            "gemma3_text", "phi", "phi3", "gpt2", "gpt_bigcode", "gpt_neox", "gptj", "opt", "bloom", "falcon",
            "stablelm", "olmo2", "starcoder2", "granite", "cohere", "smollm3", "qwen3_5_text", "qwen3_5_moe_text")
HYBRIDS = ("qwen3_next", "jamba", "lfm2", "falcon_h1")  # blocks that are not all attention
CAUSAL_ONLY = {"granite", "cohere", "olmoe", "qwen3_5_moe_text", "lfm2", "falcon_h1"}  # no sequence classifier
MATRIX = [(t, "seq-cls") for t in ENCODERS + ENCODER_DECODERS + DECODERS + HYBRIDS if t not in CAUSAL_ONLY] + \
         [(t, "causal-lm") for t in DECODERS + HYBRIDS]
IDS = [f"{t}-{head}" for t, head in MATRIX]
CONFIG = dict(lora_rank=4, rank_block=2, sparsity_weight=1.0)
TOLERANCE = 1e-4
# Where peft itself cannot hold the structure: its transformers-5 weight conversion rewrites targets on the shared
# expert of Qwen3-Next into the routed experts' fused gate_up_proj, so a LoRA on shared_expert.gate_proj is refused.
PEFT_LIMITS = {"qwen3_next": "peft 0.21 rewrites shared_expert targets into the experts' fused gate_up_proj"}


def batch(head: str, n: int = 4, length: int = 8) -> dict[str, torch.Tensor]:
    """Token ids from 3 up, each sequence ending in the eos token (2), as BART's classifier needs; no padding."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (n, length), generator=generator)
    ids[:, -1] = 2
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    out["labels"] = ids.clone() if head == "causal-lm" else ids[:, 0] % 3
    return out


class Rows(torch.utils.data.Dataset):
    def __init__(self, data: dict[str, torch.Tensor]):
        self.data = data

    def __len__(self):
        return len(self.data["input_ids"])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.data.items()}


def outputs(model, data) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        inputs = {k: v for k, v in data.items() if k != "labels"}
        return model(**inputs).logits.float()


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and float((a - b).abs().max()) <= TOLERANCE * max(1.0, float(a.abs().max()))


def trained(model_type: str, head: str, tmp_path, **settings) -> SlaftModel:
    """A tiny model whose structure a few SlaftTrainer steps searched and decided."""
    model = get_slaft_model(tiny_model(model_type, head), SlaftConfig(**CONFIG, **settings))
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=4, per_device_train_batch_size=4,
                             learning_rate=2e-2, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True,
                             logging_strategy="no", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SlaftTrainer(model=model, args=args, train_dataset=Rows(batch(head, n=8))).train()
    return model


@pytest.mark.parametrize("model_type,head", MATRIX, ids=IDS)
def test_every_path_works(model_type, head, tmp_path):
    check_every_path(model_type, head, tmp_path)


# Fused query-key-value projections split into their parts (split_fused): each part a site with its own rank.
SPLIT = [("gpt2", "seq-cls"), ("gpt2", "causal-lm"), ("gpt_bigcode", "causal-lm"), ("phi3", "seq-cls"),
         ("modernbert", "seq-cls"), ("bart", "seq-cls")]


@pytest.mark.parametrize("model_type,head", SPLIT, ids=[f"{t}-{h}-split" for t, h in SPLIT])
def test_every_path_works_on_split_fused_projections(model_type, head, tmp_path):
    model = check_every_path(model_type, head, tmp_path, split_fused=True)
    if model_type != "bart":  # BART's q, k, v are separate linears: nothing to split, the same sites
        assert {"lora_q", "lora_k", "lora_v"} <= set(model.candidate.sites()) and \
            "lora_qkv" not in model.candidate.sites()
        fused = {m.host for m in model.candidate.modules if m.site == "lora_q"}
        assert fused == {m.host for m in model.candidate.modules if m.site == "lora_v"}  # one linear, two parts


def check_every_path(model_type: str, head: str, tmp_path, **settings) -> SlaftModel:
    data = batch(head)
    model = trained(model_type, head, tmp_path, **settings)
    assert model.discrete, "the run decides the structure"
    structure = model.structure()
    assert structure.num_params > 0, "something survives λ = 1"
    assert {m.layer for m in model.candidate.modules} == set(range(len(model.blocks))), "every block has candidates"

    # saved equals loaded, onto a fresh copy of the same base model
    reference = outputs(model, data)
    model.save_pretrained(tmp_path / "adapter")
    loaded = SlaftModel.from_pretrained(tiny_model(model_type, head), tmp_path / "adapter")
    assert loaded.structure() == structure
    assert close(outputs(loaded, data), reference)

    # merged equals unmerged: LoRA folds into every host (Conv1D and fused projections included)
    merged = copy.deepcopy(model)
    report = merged.merge()
    assert not report.kept
    assert close(outputs(merged, data), reference)

    # peft export round trip (the default space is LoRA-only)
    from peft import PeftModel

    from slaft.peft_export import PeftExportError

    if model_type in PEFT_LIMITS:
        with pytest.raises(PeftExportError, match="peft placed no LoRA"):
            to_peft(copy.deepcopy(model))
        return model
    peft_model = to_peft(copy.deepcopy(model))
    peft_model.save_pretrained(tmp_path / "peft")
    reloaded = PeftModel.from_pretrained(tiny_model(model_type, head), tmp_path / "peft")
    assert close(outputs(reloaded, data), reference)
    return model


@pytest.mark.parametrize("model_type,head,split", [(t, h, False) for t, h in MATRIX] + [(t, h, True) for t, h in SPLIT],
                         ids=IDS + [f"{t}-{h}-split" for t, h in SPLIT])
def test_pruned_equals_gated(model_type, head, split):
    model = get_slaft_model(tiny_model(model_type, head), SlaftConfig(**CONFIG, total_steps=20, split_fused=split))
    randomize(model)
    data = batch(head)
    gated = outputs(model, data)
    model.discretize()
    assert close(outputs(model, data), gated)


BEGIN, END = "<!-- MODELS:BEGIN (python tests/test_model_matrix.py) -->", "<!-- MODELS:END -->"


def render_table() -> str:
    """The table of docs/models.md: the models slaft is tested on: each type of ``MATRIX``, the heads it is tested with, and
    the sites found in its last block (the default candidate space), from the model built here."""
    import transformers

    heads: dict[str, list[str]] = {}
    for model_type, head in MATRIX:
        heads.setdefault(model_type, []).append(head)
    lines = [f"| model type | tested as | sites found in its last block (host linear), transformers "
             f"{transformers.__version__} |",
             "| --- | --- | --- |"]
    for model_type, kinds in heads.items():
        model = get_slaft_model(tiny_model(model_type, kinds[0]), SlaftConfig(**CONFIG))
        last = len(model.blocks) - 1
        found = ", ".join(f"`{m.site}`" if m.site.startswith("lora:") else f"`{m.site}` ({m.host})"
                          for m in model.candidate.modules if m.layer == last)
        lines.append(f"| `{model_type}` | {', '.join(kinds)} | {found} |")
    return "\n".join(lines)


def test_docs_list_exactly_the_matrix():
    from conftest import REPO

    page = (REPO / "docs" / "models.md").read_text()
    assert BEGIN in page and END in page, "docs/models.md has no model table markers"
    block = page.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == render_table(), "docs/models.md's model table is stale: run python tests/test_model_matrix.py"


if __name__ == "__main__":  # rewrite the model table of docs/models.md
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    path = Path(__file__).resolve().parents[1] / "docs" / "models.md"
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + render_table() + "\n" + END + rest.split(END, 1)[1])


MULTITASK = ("gpt2", "t5", "qwen3", "deberta-v2", "modernbert", "phi3", "jamba")


@pytest.mark.parametrize("model_type", MULTITASK)
def test_multitask_pools_decide_and_export_each_task(model_type, tmp_path):
    """One pool over two tasks on the model: decided from random importances, each task's export equals what the
    multi-task model serves for it."""
    from slaft.multitask import MultiTaskSlaftModel, TaskInfo

    tasks = [TaskInfo("two", 2), TaskInfo("three", 3)]
    model = MultiTaskSlaftModel(tiny_model(model_type, num_labels=2), SlaftConfig(**CONFIG, total_steps=20), tasks)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "slaft_modules" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        state = model.search.state
        state.importance.copy_(torch.rand(state.importance.shape, generator=generator))
        state.updates.fill_(1)
    model.discretize()
    data = {k: v for k, v in batch("seq-cls").items() if k != "labels"}
    for task in tasks:
        model.set_task(task.name)
        served = outputs(model, data)
        single = SlaftModel.from_pretrained(tiny_model(model_type, num_labels=task.num_labels),
                                            model.export_task(task.name, tmp_path / task.name))
        assert 0 < single.structure().num_params < model.candidate.num_params
        assert close(outputs(single, data), served)
