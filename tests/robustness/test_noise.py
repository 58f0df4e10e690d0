"""Noise injected in training: seeded label noise that never keeps the label, and input noise in training only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset, Value

from slaft.config import ConfigError
from slaft.data import TaskSpec
from slaft.robustness.noise import InputNoise, label_noise

from conftest import tiny_bert

CLASSES = TaskSpec("t", ("text",), 4, ("accuracy",))
REGRESSION = TaskSpec("r", ("text",), 1, ("pearson",))


def labelled(n: int, regression: bool = False) -> Dataset:
    labels = np.linspace(0, 5, n).astype(np.float32).tolist() if regression else [i % 4 for i in range(n)]
    data = Dataset.from_dict({"text": [f"x{i}" for i in range(n)], "label": labels})
    return data.cast_column("label", Value("float32" if regression else "int64"))


def test_label_noise_changes_exactly_the_ratio_to_other_labels_and_is_seeded():
    data = labelled(200)
    noisy, report = label_noise(data, CLASSES, 0.15, seed=3)
    changed = np.asarray(noisy["label"]) != np.asarray(data["label"])
    assert report.changed == changed.sum() == 30 and report.total == 200
    assert set(noisy["label"]) <= {0, 1, 2, 3} and noisy.features["label"].dtype == "int64"
    again, _ = label_noise(data, CLASSES, 0.15, seed=3)
    assert again["label"] == noisy["label"]
    assert label_noise(data, CLASSES, 0.0, seed=3)[1].changed == 0


def test_regression_noise_has_the_ratio_of_the_targets_spread():
    data = labelled(4000, regression=True)
    noisy, report = label_noise(data, REGRESSION, 0.2, seed=0)
    difference = np.asarray(noisy["label"]) - np.asarray(data["label"])
    assert report.changed == 4000
    assert difference.std() == pytest.approx(0.2 * np.asarray(data["label"]).std(), rel=0.05)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 2.0])
def test_a_ratio_outside_the_unit_interval_is_refused(ratio):
    with pytest.raises(ConfigError, match=r"fraction in \[0, 1\)"):
        label_noise(labelled(10), CLASSES, ratio, seed=0)


@pytest.mark.parametrize("kind", ["token", "embedding"])
def test_input_noise_acts_in_training_only(kind):
    model = tiny_bert()
    ids = torch.randint(5, 100, (4, 12))
    model.eval()
    with torch.no_grad():
        clean = model(input_ids=ids).logits
    noise = InputNoise(model, kind, 0.5, seed=0, special_ids=[0, 1, 2])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, clean)  # evaluation: untouched
        model.train()
        noisy = model(input_ids=ids).logits
    assert not torch.allclose(noisy, clean)
    noise.remove()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, clean)


def test_token_noise_never_touches_special_tokens():
    model = tiny_bert().train()
    noise = InputNoise(model, "token", 0.99, seed=0, special_ids=[2, 3])
    seen = {}
    model.get_input_embeddings().register_forward_pre_hook(lambda _m, args: seen.setdefault("ids", args[0]))
    ids = torch.tensor([[2, 50, 51, 52, 3]])
    model(input_ids=ids)
    assert seen["ids"][0, 0] == 2 and seen["ids"][0, -1] == 3
    noise.remove()
