"""The invariant matrix: every (architecture, search space) case keeps the same promises.

only slaft tensors (and the task head) train; the decided model computes what the gated one did (evaluation
logits and training loss) with the kept weights unchanged; merged == unmerged; saved == loaded; the structure
round-trips as data.
"""

from __future__ import annotations

import pytest
import torch

from slaft import ConfigError, SlaftConfig, SlaftModel, Structure, get_slaft_model
from slaft.gates import GumbelChoice
from slaft.inject import CONTAINER

from conftest import TINY_MODELS

CASES = [
    ("bert-default", "bert", {}),
    ("llama-default", "llama", {}),
    ("bert-all-sites", "bert", {"sites": ("attn_adapter", "ffn_adapter", "parallel_adapter", "lora_q", "lora_k",
                                          "lora_v", "lora_o", "lora_ffn_in", "lora_ffn_out")}),
    ("bert-linear-only", "bert", {"activations": ("identity",), "sites": ("attn_adapter", "ffn_adapter", "lora_v")}),
    ("llama-gates", "llama", {"allocator": "gates", "sites": ("attn_adapter", "lora_q", "lora_v", "lora_ffn_gate")}),
    ("bert-one-layer", "bert", {"layers": (1,), "sites": ("parallel_adapter", "lora_ffn_in")}),
    ("llama-hard-choice", "llama", {"hard_choice": True, "activations": ("identity", "gelu")}),
]
IDS = [c[0] for c in CASES]
LABELS = torch.tensor([0, 1, 2, 0])


def build(arch: str, kwargs: dict) -> SlaftModel:
    config = SlaftConfig(adapter_width=8, width_block=4, lora_rank=4, rank_block=2, total_steps=20, **kwargs)
    return get_slaft_model(TINY_MODELS[arch](), config)


def randomize(model: SlaftModel, *, close_one_module: bool = True) -> None:
    """Non-zero adapter weights, random choices, and a random decision (one module shut for sure) that the search
    will stand by: its budget is exactly what the decision keeps."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if CONTAINER in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        gates = model.search.gates()
        for i, gate in enumerate(gates):
            gate.mask.copy_(torch.rand(gate.num_units, generator=generator) > 0.4)
            gate.mask[0] = not (close_one_module and i == 0)
            if close_one_module and i == 0:
                gate.mask.zero_()
            if gate.log_alpha is not None:
                gate.log_alpha.copy_(torch.where(gate.mask, 5.0, -5.0))
        model.search.state.masks[0] = torch.cat([gate.mask for gate in gates])
        model.search.state.budgets.fill_(model.search.units.kept_params(model.search.mask()))
        model.search.state.pool_budget.copy_(model.search.state.budgets[0])


def logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def train_loss(model, batch) -> torch.Tensor:
    """The training-mode loss at the expected gates and choices (masks without sampling, the arg-max path)."""
    model.train()
    for gate in model.search.gates() if model.search is not None else []:
        gate.sampling = False
    for module in model.modules():
        if isinstance(module, GumbelChoice):
            module.eval()
    with torch.no_grad():
        return model(**batch, labels=LABELS).loss


@pytest.mark.parametrize("name,arch,kwargs", CASES, ids=IDS)
def test_only_slaft_tensors_and_head_train(name, arch, kwargs, batch):
    model = build(arch, kwargs)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for n in trainable:
        assert CONTAINER in n.split(".") or model.is_head(n.split(".", 1)[1]), n
    frozen_before = {n: p.clone() for n, p in model.base_model.named_parameters() if not p.requires_grad}
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        model(**batch, labels=LABELS).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for n, p in model.base_model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), f"frozen tensor {n} changed"


@pytest.mark.parametrize("name,arch,kwargs", CASES, ids=IDS)
def test_decided_model_computes_what_the_gated_one_did(name, arch, kwargs, batch):
    model = build(arch, kwargs)
    randomize(model)
    gated_logits, gated_loss = logits(model, batch), train_loss(model, batch)
    before = model.structure()
    kept_weights = {}
    modules = {(layer, site): module for layer, site, module in model.slaft_modules()}
    for (layer, site), keeps in model.search.module_masks().items():
        keep = keeps[0]
        module = modules[(layer, site)]
        if keep.any():
            kept_weights[(layer, site)] = [p.detach()[keep] if d == 0 else p.detach()[:, keep]
                                           for p, d in module.sliced_parameters()]
    structure = model.discretize()
    assert structure.discrete and structure.to_dict() == before.to_dict()
    assert structure.num_sites < model.candidate.num_sites  # the shut module is gone
    assert sum(p.numel() for n, p in model.named_parameters() if CONTAINER in n) == structure.num_params
    for layer, site, module in model.slaft_modules():
        for kept, (param, _) in zip(kept_weights[(layer, site)], module.sliced_parameters()):
            assert torch.equal(param.detach(), kept)  # kept units keep their trained weights, unscaled
    torch.testing.assert_close(logits(model, batch), gated_logits, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(train_loss(model, batch), gated_loss, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name,arch,kwargs", CASES, ids=IDS)
def test_merged_equals_unmerged(name, arch, kwargs, batch):
    model = build(arch, kwargs)
    randomize(model)
    model.discretize()
    unmerged = logits(model, batch)
    report = model.merge()
    assert report.folded, "something linear should have been folded"
    torch.testing.assert_close(logits(model, batch), unmerged, atol=1e-5, rtol=1e-4)
    left = {f"{layer}.{site}" for layer, site, _ in model.slaft_modules()}
    assert left == {k.split(" ")[0] for k in report.kept}
    if not report.kept:
        plain = model.merge_and_unload()
        assert not any(CONTAINER in n for n, _ in plain.named_parameters())
        torch.testing.assert_close(logits(plain, batch), unmerged, atol=1e-5, rtol=1e-4)


def test_fully_linear_merge_gives_plain_checkpoint(tmp_path, batch):
    from transformers import AutoModelForSequenceClassification

    for arch in ("bert", "llama"):
        model = build(arch, {"activations": ("identity",), "sites": ("attn_adapter", "ffn_adapter", "lora_q",
                                                                      "lora_v")})
        randomize(model)
        model.discretize()
        expected = logits(model, batch)
        plain = model.merge_and_unload()
        n_params = sum(p.numel() for p in plain.parameters())
        plain.save_pretrained(tmp_path / arch)
        reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / arch)
        assert sum(p.numel() for p in reloaded.parameters()) == n_params
        torch.testing.assert_close(logits(reloaded, batch), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("decided", [False, True], ids=["searching", "decided"])
@pytest.mark.parametrize("name,arch,kwargs", CASES, ids=IDS)
def test_saved_equals_loaded(name, arch, kwargs, decided, batch, tmp_path):
    model = build(arch, kwargs)
    randomize(model)
    if decided:
        model.discretize()
    expected = logits(model, batch)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "slaft_config.json", "slaft_model.safetensors"]
    loaded = SlaftModel.from_pretrained(TINY_MODELS[arch](), tmp_path)
    assert loaded.discrete == decided
    assert loaded.structure().to_dict() == model.structure().to_dict()
    torch.testing.assert_close(logits(loaded, batch), expected, atol=1e-6, rtol=1e-5)


def test_adapter_file_holds_only_adapter_tensors(tmp_path):
    from safetensors.torch import load_file

    model = build("bert", {})
    randomize(model)
    model.discretize()
    model.save_pretrained(tmp_path)
    tensors = load_file(str(tmp_path / "slaft_model.safetensors"))
    assert tensors and all(CONTAINER in n.split(".") or model.is_head(n) for n in tensors)
    stored = sum(t.numel() for n, t in tensors.items() if CONTAINER in n)
    assert stored == model.structure().num_params


def test_structure_round_trip_and_diff():
    model = build("llama", {})
    randomize(model)
    learned = model.structure()
    again = Structure.from_dict(learned.to_dict())
    assert again == learned and learned.diff(again) == []
    changes = model.candidate.diff(learned)
    assert changes and all("->" in line for line in changes)
    assert "layer" in learned.table()


def test_loading_onto_another_base_is_refused(tmp_path):
    from slaft.io import AdapterLoadError

    model = build("bert", {})
    model.save_pretrained(tmp_path)
    other = TINY_MODELS["bert"]()
    with torch.no_grad():
        other.bert.embeddings.word_embeddings.weight.add_(1.0)
    with pytest.raises(AdapterLoadError, match="different base model"):
        SlaftModel.from_pretrained(other, tmp_path)


def test_learned_structure_applies_to_a_fresh_model(tmp_path):
    model = build("bert", {})
    randomize(model)
    learned = model.discretize()
    learned.save(tmp_path / "structure.json")
    config = SlaftConfig(adapter_width=8, width_block=4, lora_rank=4, rank_block=2)
    fresh = get_slaft_model(TINY_MODELS["bert"](), config, structure=Structure.load(tmp_path / "structure.json"))
    assert fresh.discrete and fresh.structure() == learned
    widths = {(layer, site): m.width for layer, site, m in fresh.slaft_modules()}
    assert widths == {(m.layer, m.site): m.width for m in learned.modules}
    with pytest.raises(ValueError, match="discrete"):
        get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(), structure=fresh.candidate)


@pytest.mark.parametrize("kwargs,needle", [
    ({"sites": ("lora_ffn_gate",)}, "exist in no block of this model"),
    ({"layers": (99,)}, "out of range"),
    ({"modules_to_save": ("bert.poolr",)}, "bert.pooler"),
    ({"lora_rank": 64, "rank_block": 2}, "lora_rank=64 is more than"),
    ({"sites": ("ffn_adapter",), "adapter_width": 64, "width_block": 8}, "adapter_width=64 is more than"),
])
def test_a_space_the_model_cannot_hold_is_a_config_error(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(**kwargs))
