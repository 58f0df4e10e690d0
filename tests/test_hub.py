"""Adapters on the hub: push_to_hub uploads the adapter with its card (create_repo + upload_folder), a hub id loads
like a directory (snapshot_download into the hub cache), and with HF_HUB_OFFLINE=1 the cache alone serves it. The
hub is a local mock of its HTTP API (tests/hub_mock.py): nothing leaves the machine."""

from __future__ import annotations

import json

import pytest
import torch
from huggingface_hub import ModelCard, constants
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from slaft import AdapterLoadError, AutoSlaftModel, SlaftConfig, SlaftModel, get_slaft_model
from slaft.hub import resolve_adapter

from hub_mock import MockHub
from test_invariants import randomize

REPO_ID = "someone/tiny-slaft"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The mock hub as huggingface_hub's endpoint, online, with an empty cache of this test's own."""
    with MockHub() as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        yield server
        assert not server.unknown, f"huggingface_hub called endpoints the mock lacks: {server.unknown}"


def outputs(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture
def trained(tiny_model_dir, batch):
    model = get_slaft_model(AutoModelForSequenceClassification.from_pretrained(tiny_model_dir),
                            SlaftConfig(lora_rank=4, rank_block=2, total_steps=20))
    randomize(model)
    model.discretize()
    batch = {k: v.clamp(max=12) for k, v in batch.items()}
    return model, batch, outputs(model, batch)


def test_push_then_load_by_id_online_then_offline_from_the_cache(hub, trained, tiny_model_dir, monkeypatch):
    model, batch, expected = trained
    commit = model.push_to_hub(REPO_ID, tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir),
                               token="test-token")
    assert REPO_ID in commit.commit_url
    files = hub.repos[REPO_ID]
    assert {"README.md", "slaft_config.json", "slaft_model.safetensors", "tokenizer.json"} <= set(files)
    assert json.loads(files["slaft_config.json"])["config"]["base_model_name_or_path"] == str(tiny_model_dir)
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "slaft" and "slaft" in card.data.tags
    assert hub.validated == [card.data.to_dict()]  # the hub's metadata check saw the card before the upload

    loaded = AutoSlaftModel.from_pretrained(REPO_ID)  # online: downloaded into the cache
    torch.testing.assert_close(outputs(loaded, batch), expected, atol=1e-6, rtol=1e-5)
    assert (tmp := resolve_adapter(REPO_ID)).is_dir() and str(tmp).startswith(constants.HF_HUB_CACHE)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = len(hub.requests)
    offline = AutoSlaftModel.from_pretrained(REPO_ID)
    torch.testing.assert_close(outputs(offline, batch), expected, atol=1e-6, rtol=1e-5)
    onto = SlaftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(tiny_model_dir), REPO_ID)
    torch.testing.assert_close(outputs(onto, batch), expected, atol=1e-6, rtol=1e-5)
    assert len(hub.requests) == before  # the cache alone served both


def test_offline_without_a_cached_copy_says_what_to_do(hub, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(AdapterLoadError, match="HF_HUB_OFFLINE.*holds no copy.*unset HF_HUB_OFFLINE"):
        AutoSlaftModel.from_pretrained("someone/never-downloaded")
    assert hub.requests == []


def test_an_unknown_repository_or_path_says_what_to_do(hub, tmp_path):
    with pytest.raises(AdapterLoadError, match="no repository 'someone/missing'.*log in"):
        resolve_adapter("someone/missing")
    with pytest.raises(AdapterLoadError, match="not a slaft adapter directory.*hub id"):
        resolve_adapter(tmp_path / "nowhere")
    (tmp_path / "file.json").write_text("{}")
    with pytest.raises(AdapterLoadError, match="a file, not a directory"):
        resolve_adapter(tmp_path / "file.json")
    with pytest.raises(AdapterLoadError, match="neither a local directory nor a valid hub id"):
        resolve_adapter("bad name with spaces")


def test_a_local_directory_wins_over_the_hub(hub, trained, tmp_path, monkeypatch):
    model, _, _ = trained
    monkeypatch.chdir(tmp_path)
    model.save_pretrained(tmp_path / "someone" / "tiny-slaft")  # a relative path that looks like a hub id
    assert resolve_adapter(REPO_ID).resolve() == (tmp_path / "someone" / "tiny-slaft").resolve()
    assert hub.requests == []


def test_the_command_line_reads_an_adapter_by_hub_id_and_draws_beside_the_user(hub, trained, tiny_model_dir, tmp_path,
                                                                                monkeypatch):
    from conftest import run_cli

    model, _, _ = trained
    model.push_to_hub(REPO_ID, tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # nothing downloaded yet: the cache is empty
    code, message = run_cli(tmp_path, "inspect", REPO_ID)
    assert code == 2 and "HF_HUB_OFFLINE" in message  # offline with nothing cached: a clear refusal
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    code, message = run_cli(tmp_path, "inspect", REPO_ID)
    assert code == 0, message
    assert (tmp_path / "structure.png").stat().st_size > 0  # in the working directory, not in the hub cache
    assert not any(constants.HF_HUB_CACHE in str(p) for p in tmp_path.rglob("structure.png"))
    code, message = run_cli(tmp_path, "export", REPO_ID, str(tmp_path / "merged"), "--merge")
    assert code == 0, message
    assert (tmp_path / "merged" / "config.json").is_file()
