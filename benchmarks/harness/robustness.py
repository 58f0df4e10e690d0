"""What a robustness suite adds to a run: noise in training (labels or inputs) and scores on perturbed copies of
the validation split. Both use slaft's own noise and perturbation code, so the harness and `slaft sweep` perturb
alike, and both are the same for every method: the noise is drawn from the run's seed, not the method."""

from __future__ import annotations

from collections.abc import Callable

from datasets import DatasetDict

from slaft.data import TaskData, tokenize_task
from slaft.robustness.noise import InputNoise, label_noise
from slaft.robustness.perturb import perturb_split

from .suites import Suite


def add_training_noise(suite: Suite, data: TaskData, model, tokenizer, seed: int) -> dict:
    """Replace the suite's share of training labels and hook its input noise into ``model``; returns what was
    done, for the record."""
    done = {}
    if suite.label_noise > 0:
        data.splits["train"], report = label_noise(data.splits["train"], data.spec, suite.label_noise, seed)
        done["label"] = report.to_dict()
    if suite.input_noise is not None:
        InputNoise(model, suite.input_noise, suite.input_noise_ratio, seed=seed,
                   special_ids=tokenizer.all_special_ids)
        done["input"] = {"kind": suite.input_noise, "ratio": suite.input_noise_ratio}
    return done


def noise_fields(suite: Suite) -> dict:
    """The record's noise_kind and noise_ratio."""
    if suite.label_noise > 0:
        return {"noise_kind": "label", "noise_ratio": suite.label_noise}
    if suite.input_noise is not None:
        return {"noise_kind": suite.input_noise, "noise_ratio": suite.input_noise_ratio}
    return {"noise_kind": None, "noise_ratio": 0.0}


def perturbed_scores(suite: Suite, data: TaskData, tokenizer, embeddings, seed: int,
                     score: Callable[[object], float]) -> list[dict]:
    """The validation score on a perturbed copy per (kind, rate) of the suite; ``score`` scores a tokenized
    split with the trained model."""
    split = data.splits[data.eval_split]
    out = []
    for kind in suite.perturbations:
        for rate in suite.perturbation_rates:
            perturbed = perturb_split(split, data.spec.text_columns, kind, rate, seed, tokenizer=tokenizer,
                                      embeddings=embeddings)
            one = TaskData(data.spec, DatasetDict({data.eval_split: perturbed}))
            tokenized = tokenize_task(one, tokenizer, suite.max_length)[data.eval_split]
            out.append({"perturbation": kind, "perturbation_rate": rate, "score": score(tokenized)})
    return out
