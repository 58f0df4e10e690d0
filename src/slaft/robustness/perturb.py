"""Perturbed copies of an evaluation split: seeded, reproducible, labels kept.

``rate`` is the fraction of words touched: each whitespace-separated word is touched with that probability, the
same rule for every kind, and untouched words and the whitespace between them stay exactly as they were. The
character typos come from nlpaug (offline, no downloads; the optional extra ``pip install 'slaft[robustness]'``,
imported only when a character kind is asked for), applied to the touched word alone: nlpaug run on a whole
text re-tokenizes it and changes words it did not touch ("it 's" becomes "it ' s", "journey ." becomes "journey."),
which would perturb more than the rate says. Deleting, swapping and repeating words and replacing a word by its
nearest neighbour in the model's own input-embedding space are written here (no library does the last offline for
any model).

    kind                  what happens to a touched word
    char_insert           a random character inserted
    char_delete           a character deleted
    char_swap             two adjacent characters swapped
    char_substitute       a character replaced by a random one
    keyboard              a character replaced by a neighbour on a QWERTY keyboard
    word_delete           the word deleted
    word_swap             the word swapped with the next one
    word_repeat           the word written twice
    embedding_neighbor    the word's first token replaced by the token nearest to it in the model's input
                          embeddings (cosine)
"""

from __future__ import annotations

import importlib.util
import random
import re
import zlib

import numpy as np
import torch
from datasets import Dataset

from ..config import ConfigError, closest

KINDS = ("char_insert", "char_delete", "char_swap", "char_substitute", "keyboard", "word_delete", "word_swap",
         "word_repeat", "embedding_neighbor")


CHARACTER_KINDS = ("char_insert", "char_delete", "char_swap", "char_substitute", "keyboard")  # need nlpaug
INSTALL_HINT = "pip install 'slaft[robustness]'"


class MissingDependencyError(ImportError):
    """An optional dependency a requested feature needs is not installed; the message names the install command."""


def require_nlpaug(kind: str = "character") -> None:
    """Raise ``MissingDependencyError`` unless nlpaug (the character typos' library) can be imported."""
    try:
        found = importlib.util.find_spec("nlpaug") is not None
    except (ImportError, ValueError):  # an import hook refused it, or a half-imported module
        found = False
    if not found:
        raise MissingDependencyError(f"{kind} perturbations need nlpaug: {INSTALL_HINT} (or pip install nlpaug). "
                                     f"The word kinds ({', '.join(k for k in KINDS if k not in CHARACTER_KINDS)}) "
                                     "work without it.")


def check_rate(rate: float) -> None:
    """Refuse a perturbation rate outside [0, 1) (a fraction of words)."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"The perturbation rate is a fraction of words in [0, 1), got {rate}.")


def check(kind: str, rate: float) -> None:
    """Refuse an unknown kind or a bad rate, and a character kind when nlpaug is missing (before any training)."""
    if kind not in KINDS:
        raise ConfigError(f"Unknown perturbation {kind!r}.{closest(kind, KINDS)} Known: {', '.join(KINDS)}.")
    check_rate(rate)
    if kind in CHARACTER_KINDS:
        require_nlpaug(kind)


def _typo_augmenter(kind: str):
    """nlpaug's augmenter for one character edit in one word (words of 2+ characters; case and digits kept)."""
    require_nlpaug(kind)
    try:
        import nlpaug.augmenter.char as nac
    except ImportError as err:  # installed but broken (a dependency of its own missing)
        raise MissingDependencyError(f"{kind} perturbations need nlpaug, which failed to import ({err}): "
                                     f"{INSTALL_HINT}") from err

    one_edit = dict(aug_word_p=1.0, aug_word_min=1, aug_word_max=1, aug_char_min=1, aug_char_max=1, min_char=2)
    if kind == "keyboard":
        return nac.KeyboardAug(include_special_char=False, include_numeric=False, include_upper_case=False,
                               **one_edit)
    return nac.RandomCharAug(action=kind.split("_", 1)[1], include_upper_case=False, include_numeric=False,
                             spec_char="", **one_edit)


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


def _typo(augmenter, word: str, state: int) -> str:
    """One character edit in the word's longest run of letters (punctuation around or inside it stays: nlpaug would
    split "don't" into "don ' t"); a word without two letters in a row stays as it is."""
    runs = list(re.finditer(r"[^\W\d_]{2,}", word))
    if not runs:
        return word
    run = max(runs, key=lambda match: len(match.group()))
    random.seed(state)  # nlpaug draws from the global generators
    np.random.seed(state % 2**32)
    result = augmenter.augment(run.group())
    changed = result[0] if isinstance(result, list) and result else result
    if not isinstance(changed, str) or not changed.strip() or " " in changed:
        return word
    return word[:run.start()] + changed + word[run.end():]


def _perturb_one(text: str, kind: str, rate: float, state: int, augmenter, neighbors) -> str:
    parts = re.split(r"(\s+)", text)
    words, spaces = parts[0::2], parts[1::2] + [""]  # spaces[i] follows words[i]
    rng = np.random.default_rng(state)
    touched = [bool(word) and draw < rate for word, draw in zip(words, rng.random(len(words)))]
    if kind == "word_swap":
        i = 0
        while i < len(words) - 1:
            if touched[i] and words[i + 1]:
                words[i], words[i + 1] = words[i + 1], words[i]
                i += 1  # a word moves once
            i += 1
    elif kind == "word_delete":
        kept = [(w, s) for w, s, t in zip(words, spaces, touched) if not t]
        joined = "".join(w + s for w, s in kept)
        return joined if text[-1:].isspace() else joined.rstrip()
    else:
        for i, word in enumerate(words):
            if not touched[i]:
                continue
            if kind == "word_repeat":
                words[i] = f"{word} {word}"
            elif kind == "embedding_neighbor":
                words[i] = neighbors.replace(word)
            else:
                words[i] = _typo(augmenter, word, state + i)
    return "".join(w + s for w, s in zip(words, spaces))


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
    augmenter = _typo_augmenter(kind) if kind in CHARACTER_KINDS else None
    return [_perturb_one(text, kind, rate, _seed(seed, index, text), augmenter, neighbors)
            for index, text in enumerate(texts)]


def perturb_split(dataset: Dataset, text_columns: tuple[str, ...], kind: str, rate: float, seed: int, **model
                  ) -> Dataset:
    """A copy of a split with its text columns perturbed (labels and every other column unchanged)."""
    return dataset.map(lambda batch: {c: perturb_texts(batch[c], kind, rate, seed, **model) for c in text_columns},
                       batched=True, batch_size=len(dataset) or 1, desc=f"perturbing ({kind}, {rate:g})")
