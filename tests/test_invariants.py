"""The invariant matrix: every (architecture, search space) case keeps the same promises.

only slaft tensors (and the task head) train; discretized == gated at evaluation; merged == unmerged;
saved == loaded; the structure round-trips as data.
"""

from __future__ import annotations

import pytest
import torch

from slaft import SlaftConfig, SlaftModel, Structure, get_slaft_model
from slaft.inject import CONTAINER

from conftest import TINY_MODELS

CASES = [
    ("bert-all-sites", "bert", {}),
    ("llama-all-sites", "llama", {}),
    ("bert-linear-only", "bert", {"activations": ("identity",)}),
    ("llama-serial-lora", "llama", {"sites": ("attn_adapter", "ffn_adapter", "lora_q", "lora_v")}),
    ("bert-one-layer", "bert", {"layers": (1,), "sites": ("parallel_adapter", "lora_ffn_in")}),
    ("llama-hard-choice", "llama", {"hard_choice": True, "activations": ("identity", "gelu")}),
]
IDS = [c[0] for c in CASES]


def build(arch: str, kwargs: dict) -> SlaftModel:
    config = SlaftConfig(adapter_width=8, lora_rank=4, search_steps=20, **kwargs)
    return get_slaft_model(TINY_MODELS[arch](), config)


def randomize(model: SlaftModel, *, close_some: bool = True) -> None:
    """Give adapters non-zero weights and the gates a spread of values, so the invariants are not trivially true."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if CONTAINER in name:
                param.copy_(torch.randn(param.shape, generator=generator) * (3.0 if "log_alpha" in name else 0.3))
        modules = [m for _, _, m in model.slaft_modules()]
        for module in modules:  # module gates open (unit gates stay random: some units close)
            module.module_gate.log_alpha.fill_(3.0)
            module.unit_gate.log_alpha[0] = 3.0
        if close_some:  # shut one whole module for sure
            modules[0].module_gate.log_alpha.fill_(-8.0)


def logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("name,arch,kwargs", CASES, ids=IDS)
def test_only_slaft_tensors_and_head_train(name, arch, kwargs, batch):
    model = build(arch, kwargs)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for n in trainable:
        assert CONTAINER in n.split(".") or n.split(".")[1] in model.head_names or n == "slaft_lagrangian", n
    frozen_before = {n: p.clone() for n, p in model.base_model.named_parameters() if not p.requires_grad}
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model(**batch, labels=torch.tensor([0, 1, 2, 0])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for n, p in model.base_model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), f"frozen tensor {n} changed"


@pytest.mark.parametrize("name,arch,kwargs", CASES, ids=IDS)
def test_discretized_equals_gated(name, arch, kwargs, batch):
    model = build(arch, kwargs)
    randomize(model)
    gated = logits(model, batch)
    before = model.structure()
    structure = model.discretize()
    assert structure.discrete and structure.to_dict() == before.to_dict()
    assert structure.num_sites < model.candidate.num_sites  # the closed module is gone
    assert sum(p.numel() for n, p in model.named_parameters() if CONTAINER in n) == structure.num_params
    torch.testing.assert_close(logits(model, batch), gated, atol=1e-5, rtol=1e-4)


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
        model = build(arch, {"activations": ("identity",), "sites": ("attn_adapter", "ffn_adapter", "lora_q", "lora_v")})
        randomize(model)
        model.discretize()
        expected = logits(model, batch)
        plain = model.merge_and_unload()
        n_params = sum(p.numel() for p in plain.parameters())
        plain.save_pretrained(tmp_path / arch)
        reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / arch)
        assert sum(p.numel() for p in reloaded.parameters()) == n_params
        torch.testing.assert_close(logits(reloaded, batch), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("discrete", [False, True], ids=["search", "discrete"])
@pytest.mark.parametrize("name,arch,kwargs", CASES, ids=IDS)
def test_saved_equals_loaded(name, arch, kwargs, discrete, batch, tmp_path):
    model = build(arch, kwargs)
    randomize(model)
    if discrete:
        model.discretize()
    expected = logits(model, batch)
    model.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["slaft_config.json", "slaft_model.safetensors"]
    loaded = SlaftModel.from_pretrained(TINY_MODELS[arch](), tmp_path)
    assert loaded.discrete == discrete
    assert loaded.structure().to_dict() == model.structure().to_dict()
    torch.testing.assert_close(logits(loaded, batch), expected, atol=1e-6, rtol=1e-5)


def test_adapter_file_holds_only_adapter_tensors(tmp_path):
    from safetensors.torch import load_file

    model = build("bert", {})
    model.discretize()
    model.save_pretrained(tmp_path)
    names = load_file(str(tmp_path / "slaft_model.safetensors")).keys()
    assert names and all(CONTAINER in n.split(".") or n.startswith("classifier.") for n in names)
    stored = sum(t.numel() for n, t in load_file(str(tmp_path / "slaft_model.safetensors")).items() if CONTAINER in n)
    assert stored == model.structure().num_params


def test_structure_round_trip_and_diff():
    model = build("llama", {})
    randomize(model)
    learned = model.structure()
    again = Structure.from_dict(learned.to_dict())
    assert again == learned
    assert learned.diff(again) == []
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


def test_learned_structure_applies_to_a_fresh_model(tmp_path, batch):
    model = build("bert", {})
    randomize(model)
    learned = model.discretize()
    learned.save(tmp_path / "structure.json")
    fresh = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(adapter_width=8, lora_rank=4),
                            structure=Structure.load(tmp_path / "structure.json"))
    assert fresh.discrete and fresh.structure() == learned
    widths = {(layer, site): m.units for layer, site, m in fresh.slaft_modules()}
    assert widths == {(m.layer, m.site): m.width for m in learned.modules}
    with pytest.raises(ValueError, match="discrete"):
        get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(), structure=fresh.candidate)
