"""The adapter file format: atomic writes, checksums, no pickle, and clear errors for damaged directories."""

from __future__ import annotations

import errno

import pytest
import torch

from slaft import SlaftConfig, SlaftModel, get_slaft_model
from slaft.io import WEIGHTS_NAME, AdapterLoadError, is_complete_adapter

from conftest import REPO, TINY_MODELS


@pytest.fixture
def saved_adapter(tmp_path):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(adapter_width=4, width_block=2, lora_rank=2))
    model.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_adapter_file_is_refused(saved_adapter, damage):
    path = saved_adapter / WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 3]
    path.write_bytes(bytes(data))
    assert not is_complete_adapter(saved_adapter)
    with pytest.raises(AdapterLoadError, match="corrupted or truncated"):
        SlaftModel.from_pretrained(TINY_MODELS["bert"](), saved_adapter)


def test_failed_save_leaves_the_previous_checkpoint_intact(saved_adapter, monkeypatch):
    import slaft.io

    before = {p.name: p.read_bytes() for p in saved_adapter.iterdir()}

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(slaft.io, "save_file", disk_full)
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(adapter_width=4, width_block=2, lora_rank=2))
    with pytest.raises(OSError, match="No space"):
        model.save_pretrained(saved_adapter)
    assert {p.name: p.read_bytes() for p in saved_adapter.iterdir()} == before  # no temp files, nothing changed
    SlaftModel.from_pretrained(TINY_MODELS["bert"](), saved_adapter)


@pytest.mark.parametrize("content,needle", [('{"config": ', "not valid JSON"), ("[1, 2]", "JSON object"),
                                            ('{"config": {"lora_rank": "x"}}', "no valid slaft adapter config"),
                                            ("\udcff", "not valid JSON")])
def test_broken_adapter_config_is_refused(saved_adapter, content, needle):
    (saved_adapter / "slaft_config.json").write_text(content, errors="surrogateescape")
    with pytest.raises(AdapterLoadError, match=needle):
        SlaftModel.from_pretrained(TINY_MODELS["bert"](), saved_adapter)


def test_missing_directory_or_weights_is_refused(saved_adapter, tmp_path):
    with pytest.raises(AdapterLoadError, match="not a slaft adapter directory"):
        SlaftModel.from_pretrained(TINY_MODELS["bert"](), tmp_path / "nowhere")
    (saved_adapter / WEIGHTS_NAME).unlink()
    with pytest.raises(AdapterLoadError, match="missing"):
        SlaftModel.from_pretrained(TINY_MODELS["bert"](), saved_adapter)


def test_an_adapter_for_another_architecture_is_refused(saved_adapter):
    with pytest.raises(AdapterLoadError, match="does not fit this base model"):
        SlaftModel.from_pretrained(TINY_MODELS["llama"](), saved_adapter)


def test_no_pickle_in_adapter_files_or_the_library(saved_adapter):
    assert sorted(p.name for p in saved_adapter.iterdir()) == ["README.md", "slaft_config.json", "slaft_model.safetensors"]
    source = "\n".join(p.read_text() for p in (REPO / "src" / "slaft").glob("*.py"))
    assert "torch.load(" not in source and "import pickle" not in source and "pickle.load" not in source
    assert "trust_remote_code: bool = field(default=False" in source


def test_search_state_round_trips(saved_adapter, tmp_path):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(adapter_width=4, width_block=2, lora_rank=2))
    state = model.search.state
    state.budgets.fill_(1234)
    state.pool_budget.fill_(1234)
    state.updates.fill_(7)
    state.importance.fill_(0.5)
    state.masks[0, ::2] = False
    model.search.set_task(0)
    model.save_pretrained(tmp_path / "again")
    loaded = SlaftModel.from_pretrained(TINY_MODELS["bert"](), tmp_path / "again")
    again = loaded.search.state
    assert loaded.search.budget == 1234 and int(again.updates[0]) == 7 and torch.all(again.importance == 0.5)
    assert torch.equal(again.masks, state.masks) and torch.equal(loaded.search.mask(), model.search.mask())
