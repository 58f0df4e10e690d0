"""Perturbed copies of an evaluation split: seeded, reproducible, labels kept.

``rate`` is the fraction of words touched. Character typos and word deletion/swap come from nlpaug (offline, no
downloads); word repetition and replacement by a nearest neighbour in the model's own input-embedding space are
written here, since no library does them offline for any model.

    kind                  what happens to a touched word
    char_insert           a random character inserted
    char_delete           a character deleted
    char_swap             two adjacent characters swapped
    char_substitute       a character replaced by a random one
    keyboard              a character replaced by a neighbour on a QWERTY keyboard
    word_delete           the word deleted
    word_swap             the word swapped with its neighbour
    word_repeat           the word written twice
    embedding_neighbor    the word replaced by the token nearest to it in the model's input embeddings (cosine)
"""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch
from datasets import Dataset

from .config import ConfigError, closest

KINDS = ("char_insert", "char_delete", "char_swap", "char_substitute", "keyboard", "word_delete", "word_swap",
         "word_repeat", "embedding_neighbor")


def check_rate(rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"The perturbation rate is a fraction of words in [0, 1), got {rate}.")


def check(kind: str, rate: float) -> None:
    if kind not in KINDS:
        raise ConfigError(f"Unknown perturbation {kind!r}.{closest(kind, KINDS)} Known: {', '.join(KINDS)}.")
    check_rate(rate)


def _augmenter(kind: str, rate: float):
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw

    if kind == "keyboard":
        return nac.KeyboardAug(aug_word_p=rate, aug_char_max=1, aug_word_max=10**6, include_special_char=False,
                               include_numeric=False)
    if kind.startswith("char_"):
        action = kind.split("_", 1)[1]
        return nac.RandomCharAug(action=action, aug_word_p=rate, aug_char_max=1, aug_word_max=10**6,
                                 include_upper_case=False, spec_char="")
    return naw.RandomWordAug(action=kind.split("_", 1)[1], aug_p=rate, aug_max=None)


class _Neighbors:
    """The nearest other token of each vocabulary token in the model's input-embedding space."""

    def __init__(self, tokenizer, embeddings: torch.Tensor) -> None:
        self.tokenizer = tokenizer
        weights = torch.nn.functional.normalize(embeddings.detach().float(), dim=-1)
        self.weights = weights
        self.special = set(tokenizer.all_special_ids)
        self.cache: dict[int, int] = {}

    def of(self, token: int) -> int:
        if token not in self.cache:
            similarity = self.weights @ self.weights[token]
            similarity[token] = -2.0
            for special in self.special:
                similarity[special] = -2.0
            self.cache[token] = int(similarity.argmax())
        return self.cache[token]

    def replace(self, word: str) -> str:
        ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            return word
        return self.tokenizer.decode([self.of(ids[0]), *ids[1:]]).strip() or word


def _seed(seed: int, index: int, text: str) -> int:
    return (seed * 1_000_003 + index + zlib.crc32(text.encode())) % 2**31


def perturb_texts(texts: list[str], kind: str, rate: float, seed: int, *, tokenizer=None,
                  embeddings: torch.Tensor | None = None) -> list[str]:
    """Each text perturbed at ``rate``; the same (kind, rate, seed) gives the same texts."""
    check(kind, rate)
    if rate == 0:
        return list(texts)
    neighbors = None
    if kind == "embedding_neighbor":
        if tokenizer is None or embeddings is None:
            raise ConfigError("embedding_neighbor perturbations need the model's tokenizer and input embeddings.")
        neighbors = _Neighbors(tokenizer, embeddings)
    augmenter = _augmenter(kind, rate) if kind not in ("word_repeat", "embedding_neighbor") else None
    out = []
    for index, text in enumerate(texts):
        state = _seed(seed, index, text)
        if augmenter is not None:
            random.seed(state)
            np.random.seed(state)
            result = augmenter.augment(text)
            out.append(result[0] if isinstance(result, list) and result else text)
            continue
        rng = np.random.default_rng(state)
        words = text.split()
        touched = rng.random(len(words)) < rate
        if kind == "word_repeat":
            out.append(" ".join(w for word, t in zip(words, touched) for w in ([word, word] if t else [word])))
        else:
            out.append(" ".join(neighbors.replace(w) if t else w for w, t in zip(words, touched)))
    return out


def perturb_split(dataset: Dataset, text_columns: tuple[str, ...], kind: str, rate: float, seed: int, **model
                  ) -> Dataset:
    """A copy of a split with its text columns perturbed (labels and every other column unchanged)."""
    return dataset.map(lambda batch: {c: perturb_texts(batch[c], kind, rate, seed, **model) for c in text_columns},
                       batched=True, batch_size=len(dataset) or 1, desc=f"perturbing ({kind}, {rate:g})")
