"""The architecture table: known models resolve, unknown ones get an error that says how to add them."""

import pytest
from transformers import GPT2Config, GPT2ForSequenceClassification

from slaft import (
    ARCHITECTURES,
    ArchitectureError,
    ArchitectureSpec,
    SlaftConfig,
    get_slaft_model,
    register_architecture,
)

from conftest import TINY_MODELS


def test_known_architectures_resolve():
    for arch, factory in TINY_MODELS.items():
        model = get_slaft_model(factory(), SlaftConfig())
        assert model.arch.name == arch
        assert model.candidate.num_sites == model.candidate.num_layers * len(model.candidate.sites())


def test_unknown_architecture_names_supported_ones_and_the_fix():
    model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(ArchitectureError) as err:
        get_slaft_model(model, SlaftConfig())
    message = str(err.value)
    assert "'gpt2'" in message and "bert" in message and "llama" in message and "register_architecture" in message


def test_every_site_of_the_table_exists_where_the_entry_says():
    for arch, factory in TINY_MODELS.items():
        sites = ARCHITECTURES[arch].sites()
        model = get_slaft_model(factory(), SlaftConfig(sites=sites))
        assert model.candidate.sites() == list(sites)


def test_an_entry_that_does_not_fit_the_model_names_the_path():
    linears = {**ARCHITECTURES["bert"].linears, "q": "attention.self.quary"}
    spec = ArchitectureSpec(**{**ARCHITECTURES["bert"].__dict__, "name": "typo", "linears": linears})
    register_architecture(spec)
    try:
        with pytest.raises(ArchitectureError, match="attention.self.quary"):
            get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(architecture="typo", sites=("lora_q",)))
    finally:
        ARCHITECTURES.pop("typo")


def test_registering_an_entry_by_data():
    spec = ArchitectureSpec(**{**ARCHITECTURES["bert"].__dict__, "name": "my-bert", "model_types": ("my-bert",)})
    register_architecture(spec)
    try:
        model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(architecture="my-bert"))
        assert model.arch.name == "my-bert"
    finally:
        ARCHITECTURES.pop("my-bert")
