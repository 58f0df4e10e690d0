"""disable_adapter() gives the frozen base model's outputs and then the adapters back; unmerge() undoes merge():
the base weights, biases and config flags as they were, the modules back, the outputs of the unmerged model."""

from __future__ import annotations

import pytest
import torch

from slaft.inject import CONTAINER

from conftest import TINY_MODELS
from test_invariants import CASES, IDS, build, logits, randomize


def base_state(model) -> dict[str, torch.Tensor]:
    return {n: t.clone() for n, t in model.base_model.state_dict().items() if CONTAINER not in n.split(".")}


@pytest.mark.parametrize("name,arch,kwargs", CASES, ids=IDS)
def test_disable_adapter_gives_the_base_model_outputs(name, arch, kwargs, batch):
    reference = logits(TINY_MODELS[arch](), batch)  # the same seeded weights, never wrapped
    model = build(arch, kwargs)
    randomize(model, close_one_module=False)
    adapted = logits(model, batch)
    assert not torch.allclose(adapted, reference, atol=1e-4)  # the adapters change the outputs
    with model.disable_adapter():
        torch.testing.assert_close(logits(model, batch), reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(logits(model, batch), adapted)  # and they are back


def test_disable_adapter_restores_the_adapters_after_an_error(batch):
    model = build("bert", {})
    randomize(model, close_one_module=False)
    adapted = logits(model, batch)
    with pytest.raises(KeyError), model.disable_adapter():
        raise KeyError("inside")
    torch.testing.assert_close(logits(model, batch), adapted)


def test_disable_adapter_refuses_a_merged_model(batch):
    model = build("bert", {})
    randomize(model)
    model.merge()
    with pytest.raises(RuntimeError, match="unmerge"), model.disable_adapter():
        pass
    model.unmerge()
    with model.disable_adapter():
        torch.testing.assert_close(logits(model, batch), logits(TINY_MODELS["bert"](), batch), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name,arch,kwargs", CASES, ids=IDS)
def test_unmerge_restores_the_base_weights(name, arch, kwargs, batch):
    model = build(arch, kwargs)
    randomize(model)
    model.discretize()
    before, flags = base_state(model), dict(vars(model.base_model.config))
    structure, unmerged = model.structure(), logits(model, batch)
    report = model.merge()
    assert report.folded
    changed = [n for n, t in base_state(model).items() if n not in before or not torch.equal(t, before[n])]
    assert changed  # the fold did write into the base weights
    model.unmerge()
    after = base_state(model)
    assert after.keys() == before.keys()  # no bias the merge added is left
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, atol=1e-5, rtol=1e-5, msg=key)
    assert dict(vars(model.base_model.config)) == flags
    assert not model.merged and model.structure().to_dict() == structure.to_dict()
    torch.testing.assert_close(logits(model, batch), unmerged, atol=1e-5, rtol=1e-4)
    model.merge()  # and it merges again
    torch.testing.assert_close(logits(model, batch), unmerged, atol=1e-5, rtol=1e-4)


def test_unmerge_refuses_what_it_cannot_undo(tmp_path):
    model = build("bert", {})
    with pytest.raises(RuntimeError, match="not merged"):
        model.unmerge()
    randomize(model)
    model.merge()
    model.save_pretrained(tmp_path)
    from slaft import SlaftModel

    loaded = SlaftModel.from_pretrained(TINY_MODELS["bert"](), tmp_path, check_base=False)
    assert loaded.merged
    with pytest.raises(RuntimeError, match="merged before it was saved"):
        loaded.unmerge()
