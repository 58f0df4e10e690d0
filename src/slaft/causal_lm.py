"""A classification task posed to a causal language model: prompts with verbalized answers, trained with the loss on
the answer tokens only, and scored by answer log-likelihood (the class whose name the model finds likeliest).

    prompt   "Classify the text into one of: business, entertainment, politics, sport, tech.\n\nText: ..."
             wrapped in the tokenizer's chat template as a user turn when it has one, else followed by "\nAnswer:"
    answer   the class name and the end-of-sequence token; every prompt token has label -100

Scoring runs the prompt with every class's answer and sums the answer tokens' log-probabilities; the scores act as
logits for the task's usual metrics, so a causal-LM run reports what a classification run reports. Regression tasks
have no names to verbalize and are refused.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from torch import nn
from tqdm.auto import tqdm

from .config import ConfigError
from .data import TaskData, TaskSpec, compute_metrics

IGNORE = -100


def class_names(spec: TaskSpec) -> list[str]:
    if spec.is_regression:
        raise ConfigError(f"Task {spec.name!r} is a regression: a causal LM needs class names to answer with. Use "
                          "--objective classification for it.")
    names = spec.label_names or tuple(str(i) for i in range(spec.num_labels))
    return [str(name).replace("_", " ") for name in names]


def _prompt(spec: TaskSpec, texts: dict[str, str]) -> str:
    fields = "\n".join(f"{column.replace('_', ' ').capitalize()}: {texts[column]}" for column in spec.text_columns)
    return f"Classify the {' and '.join(spec.text_columns)} into one of: {', '.join(class_names(spec))}.\n\n{fields}"


class PromptEncoder:
    """Token ids of prompts and answers for one tokenizer, with the prompt's texts cut to fit ``max_length``."""

    def __init__(self, tokenizer, spec: TaskSpec, max_length: int) -> None:
        if tokenizer.eos_token_id is None:
            raise ConfigError("The tokenizer has no end-of-sequence token; a causal-LM answer needs one to end.")
        self.tokenizer, self.spec, self.max_length = tokenizer, spec, max_length
        self.chat = bool(getattr(tokenizer, "chat_template", None))
        self.answers = [self.answer_ids(name) for name in class_names(spec)]
        overhead = len(self.prompt_ids(_prompt(spec, {c: "" for c in spec.text_columns})))
        room = max_length - overhead - max(len(a) for a in self.answers)
        if room < 8 * len(spec.text_columns):
            raise ConfigError(f"max_length={max_length} leaves no room for the text after the prompt ({overhead} "
                              f"tokens) and the longest answer; pass a larger --max-length.")
        self.text_budget = room // len(spec.text_columns)

    def _chat(self, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
        """Token ids of ``messages`` in the chat template (a plain list under transformers 4 and 5 alike: 5 returns
        a dict unless told not to)."""
        return list(self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                                       tokenize=True, return_dict=False))

    def prompt_ids(self, prompt: str) -> list[int]:
        if self.chat:
            return self._chat([{"role": "user", "content": prompt}], add_generation_prompt=True)
        return self.tokenizer(prompt + "\nAnswer:")["input_ids"]

    def answer_ids(self, answer: str) -> list[int]:
        """The answer as the model should write it: with a chat template, the assistant turn as the template renders
        it, up to the special token that ends the turn (a tokenizer's eos token need not be that token: SmolLM2's
        GGUF tokenizer names <|im_start|>); without one, the answer and the eos token."""
        if self.chat:
            user = [{"role": "user", "content": "x"}]
            head = self._chat(user, add_generation_prompt=True)
            turn = self._chat(user + [{"role": "assistant", "content": answer}])
            if turn[:len(head)] == head and len(turn) > len(head):
                tail = turn[len(head):]
                special = set(self.tokenizer.all_special_ids) | set(self.tokenizer.get_added_vocab().values())
                end = next((i for i, token in enumerate(tail) if token in special), len(tail) - 1)
                return tail[:end + 1]
        text = answer if self.chat else f" {answer}"
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def _cut(self, text: str) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= self.text_budget else self.tokenizer.decode(ids[:self.text_budget])

    def prompt_of(self, row: dict) -> list[int]:
        return self.prompt_ids(_prompt(self.spec, {c: self._cut(str(row[c])) for c in self.spec.text_columns}))


def tokenize_causal(data: TaskData, tokenizer, max_length: int) -> DatasetDict:
    """Every split as input_ids / attention_mask / labels (answer tokens only), plus "prompt_length" and "label"
    (the class id, for scoring)."""
    encoder = PromptEncoder(tokenizer, data.spec, max_length)

    def encode(row: dict) -> dict:
        prompt, answer = encoder.prompt_of(row), encoder.answers[int(row["label"])]
        ids = prompt + answer
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [IGNORE] * len(prompt) + answer,
                "prompt_length": len(prompt), "label": int(row["label"])}

    out = {}
    for split, dataset in data.splits.items():
        drop = [c for c in dataset.column_names if c != "label"]
        out[split] = dataset.map(encode, remove_columns=drop, desc=f"Encoding prompts ({split})")
    return DatasetDict(out)


def without_pad_gap(tokenizer):
    """A copy of the tokenizer that pads, with its eos token where it has no pad token (a deep copy then: the
    special tokens of a shallow one are the caller's)."""
    if tokenizer.pad_token_id is not None:
        return copy.copy(tokenizer)
    padded = copy.deepcopy(tokenizer)
    padded.pad_token = padded.eos_token
    return padded


class CausalCollator:
    """Right-pads input_ids (pad token), attention_mask (0) and labels (-100) with transformers'
    ``DataCollatorForSeq2Seq`` (the tokenizer's own ``pad``, on the right whatever side the tokenizer pads by
    default); drops the scoring columns."""

    def __init__(self, tokenizer) -> None:
        from transformers import DataCollatorForSeq2Seq

        right = without_pad_gap(tokenizer)
        right.padding_side = "right"  # on a copy: the caller's tokenizer keeps its padding side
        self.collate = DataCollatorForSeq2Seq(right, padding=True, label_pad_token_id=IGNORE, return_tensors="pt")

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return self.collate([{key: row[key] for key in ("input_ids", "attention_mask", "labels")} for row in rows])


def _left_padded(tokenizer, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts left-padded by the tokenizer's own ``pad``, so that they all end at the last position."""
    batch = tokenizer.pad({"input_ids": prompts}, padding=True, padding_side="left", return_attention_mask=True,
                          return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


@torch.no_grad()
def answer_scores(model: nn.Module, dataset: Dataset, tokenizer, spec: TaskSpec, max_length: int, *,
                  batch_size: int = 16, progress: bool = True) -> np.ndarray:
    """(N, classes) summed log-probabilities of each class's answer after each example's prompt.

    Each batch of prompts runs once (left-padded, so they all end at the last position) and its key/value cache
    serves every class's answer, which is the same token sequence for every example: the cost is one prompt pass
    plus one short pass per class, not one full pass per class."""
    encoder = PromptEncoder(tokenizer, spec, max_length)
    tokenizer = without_pad_gap(tokenizer)
    prompts = [list(ids[:length]) for ids, length in zip(dataset["input_ids"], dataset["prompt_length"])]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="scoring answers", leave=False,
                      disable=not progress):
        ids, mask = (t.to(device) for t in _left_padded(tokenizer, prompts[start:start + batch_size]))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # the first answer token's distribution
        batch_scores = []
        for answer in encoder.answers:
            total = first[:, answer[0]].clone()
            if len(answer) > 1:
                follow = torch.tensor(answer[:-1], device=device).expand(len(ids), -1)
                step_mask = torch.cat([mask, torch.ones_like(follow)], dim=-1)
                step_positions = positions[:, -1:] + torch.arange(1, follow.shape[1] + 1, device=device)
                logits = model(input_ids=follow, attention_mask=step_mask, position_ids=step_positions,
                               past_key_values=copy.deepcopy(out.past_key_values), use_cache=True).logits
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                targets = torch.tensor(answer[1:], device=device)
                total += logprobs.gather(-1, targets.expand(len(ids), -1).unsqueeze(-1)).squeeze(-1).sum(-1)
            batch_scores.append(total.cpu())
        scores.append(torch.stack(batch_scores, dim=-1))
    model.train(was_training)
    return torch.cat(scores).numpy()


def evaluate_causal(model: nn.Module, spec: TaskSpec, dataset: Dataset, tokenizer, max_length: int, *,
                    batch_size: int = 16, progress: bool = True) -> dict[str, float]:
    """The task's metrics with the likeliest class name as the prediction."""
    scores = answer_scores(model, dataset, tokenizer, spec, max_length, batch_size=batch_size, progress=progress)
    return compute_metrics(spec, scores, np.asarray(dataset["label"]))
