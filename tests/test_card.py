"""The model card save_pretrained writes: huggingface_hub reads its metadata back, it states what was kept, and a
README.md someone else wrote is left alone."""

from __future__ import annotations

import json

from huggingface_hub import ModelCard

from slaft import SlaftConfig, get_slaft_model
from slaft.card import MARKER, model_card
from slaft.structure import Structure

from conftest import TINY_MODELS
from test_invariants import randomize


def saved(tmp_path, *, base=None):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(lora_rank=4, rank_block=2, total_steps=20,
                                                              base_model_name_or_path=base))
    randomize(model)
    model.discretize()
    model.save_pretrained(tmp_path)
    return model


def test_the_card_records_library_base_model_and_kept_structure(tmp_path):
    model = saved(tmp_path, base="someone/tiny-bert")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "slaft"
    assert card.data.base_model == "someone/tiny-bert"
    assert {"slaft", "adapter", "lora"} <= set(card.data.tags)
    structure = model.structure()
    assert f"kept parameters: {structure.num_params:,} in {structure.num_sites} modules" in card.text
    assert f"of a candidate space of {model.candidate.num_params:,}" in card.text
    assert f"sites: {', '.join(structure.sites())}" in card.text
    assert structure.table() in card.text
    assert "BertForSequenceClassification" in card.text


def test_a_local_base_path_is_not_claimed_as_a_hub_base_model(tmp_path):
    saved(tmp_path / "adapter", base=str(tmp_path / "my-base"))
    card = ModelCard.load(tmp_path / "adapter" / "README.md")
    assert card.data.base_model is None
    assert str(tmp_path / "my-base") in card.text


def test_a_users_readme_is_kept_and_slafts_own_is_rewritten(tmp_path):
    (tmp_path / "README.md").write_text("# my notes\n")
    saved(tmp_path)
    assert (tmp_path / "README.md").read_text() == "# my notes\n"
    (tmp_path / "README.md").unlink()
    saved(tmp_path)
    first = (tmp_path / "README.md").read_text()
    assert MARKER in first
    payload = json.loads((tmp_path / "slaft_config.json").read_text())
    payload["structure"] = Structure(modules=[], discrete=True, num_layers=2).to_dict()
    assert "kept parameters: 0 in 0 modules" in str(model_card(payload))
    saved(tmp_path)  # slaft's own card is rewritten, not duplicated
    assert (tmp_path / "README.md").read_text().count(MARKER) == 1


def test_a_multi_task_and_merged_payload_is_tagged():
    structure = Structure(modules=[], discrete=True, num_layers=2).to_dict()
    card = model_card({"config": {}, "structure": structure, "merged": True, "phase": "discrete",
                       "tasks": [{"name": "sst2"}, {"name": "rte"}]})
    assert {"multi-task", "merged"} <= set(card.data.tags)
    assert "tasks: sst2, rte" in card.text
