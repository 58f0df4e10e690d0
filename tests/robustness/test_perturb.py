"""Perturbed evaluation texts: every kind acts, at about its rate, the same way every time, and labels stay."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from slaft.config import ConfigError
from slaft.robustness.perturb import KINDS, perturb_split, perturb_texts

TEXTS = ["the film was good and the music was very fine indeed"] * 40 + [
    "a poor book with bad writing and not a single good page in it"] * 40


def touched_fraction(original: list[str], perturbed: list[str]) -> float:
    words = sum(len(t.split()) for t in original)
    import difflib

    changed = 0
    for a, b in zip(original, perturbed):
        matcher = difflib.SequenceMatcher(a=a.split(), b=b.split())
        changed += sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal")
    return changed / words


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "embedding_neighbor"])
def test_each_kind_touches_about_its_rate_and_is_reproducible(kind):
    out = perturb_texts(TEXTS, kind, 0.2, seed=7)
    assert out == perturb_texts(TEXTS, kind, 0.2, seed=7)
    assert out != perturb_texts(TEXTS, kind, 0.2, seed=8)
    assert 0.08 <= touched_fraction(TEXTS, out) <= 0.45, (kind, out[:2])
    assert perturb_texts(TEXTS, kind, 0.0, seed=7) == TEXTS


def test_embedding_neighbors_come_from_the_models_own_embeddings(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    vocab = tokenizer.get_vocab()
    embeddings = torch.randn(len(vocab), 8)
    embeddings[vocab["bad"]] = embeddings[vocab["good"]] + 1e-3  # "good"'s nearest other token is "bad"
    out = perturb_texts(["good good good good good good"], "embedding_neighbor", 0.5, seed=1, tokenizer=tokenizer,
                        embeddings=embeddings)[0].split()
    assert "bad" in out and set(out) <= {"good", "bad"}


def test_a_split_keeps_its_labels_and_other_columns():
    data = Dataset.from_dict({"sentence1": TEXTS[:4], "sentence2": TEXTS[-4:], "label": [0, 1, 0, 1],
                              "idx": [1, 2, 3, 4]})
    out = perturb_split(data, ("sentence1", "sentence2"), "word_delete", 0.3, seed=0)
    assert out["label"] == data["label"] and out["idx"] == data["idx"]
    assert out["sentence1"] != data["sentence1"]


@pytest.mark.parametrize("kind,rate,needle", [("typo", 0.1, "Unknown perturbation"), ("keybord", 0.1, "keyboard"),
                                              ("word_delete", 1.0, "fraction of words"),
                                              ("word_delete", -0.1, "fraction of words")])
def test_bad_perturbation_requests_are_clear_errors(kind, rate, needle):
    with pytest.raises(ConfigError, match=needle):
        perturb_texts(TEXTS, kind, rate, seed=0)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "embedding_neighbor"])
def test_untouched_words_and_spacing_stay_exactly_as_they_were(kind):
    text = "it 's a charming  and often\taffecting journey . "
    for seed in range(20):
        out = perturb_texts([text], kind, 0.1, seed=seed)[0]
        if kind not in ("word_delete", "word_swap"):
            same = [a == b for a, b in zip(text.split(), out.split())]
            assert len(out.split()) >= len(text.split()) and same.count(False) <= len(same)
        assert "' s" not in out and "journey." not in out  # no re-tokenization of words nobody touched
    assert perturb_texts(["short text"], kind, 0.05, seed=0) == ["short text"]  # 5% of two words: usually none
