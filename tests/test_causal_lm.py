"""Causal-LM fine-tuning of a classification task: prompts with verbalized answers, loss on the answers only,
scored by answer log-likelihood; the run improves on the untuned model, and merged and unmerged models generate
the same tokens."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch

from slaft.causal_lm import IGNORE, CausalCollator, PromptEncoder, evaluate_causal, tokenize_causal
from slaft.config import ConfigError
from slaft.data import TaskData, TaskSpec

pytestmark = pytest.mark.filterwarnings("ignore")


def sentiment_csv(root, rows: int = 48):
    lines = ["text,label"]
    for i in range(rows):
        word = ("good", "fine")[i % 2] if i % 4 < 2 else ("bad", "poor")[i % 2]
        lines.append(f"very {word} {('movie', 'book')[i % 3 % 2]},{'positive' if i % 4 < 2 else 'negative'}")
    path = root / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prompts_carry_the_answer_only_as_labels(tiny_causal_dir, tmp_path):
    from transformers import AutoTokenizer

    from slaft.data import load_task

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    data = load_task("csv", train_file=str(sentiment_csv(tmp_path)))
    tokenized = tokenize_causal(data, tokenizer, max_length=64)["train"]
    row = tokenized[0]
    answer = [t for t in row["labels"] if t != IGNORE]
    assert row["labels"][:row["prompt_length"]] == [IGNORE] * row["prompt_length"]
    assert answer == row["input_ids"][row["prompt_length"]:] and answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer[:-1]).strip() in ("negative", "positive")
    batch = CausalCollator(tokenizer)([tokenized[0], tokenized[1]])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}


def test_answer_loglikelihood_picks_the_class_the_model_prefers(tiny_causal_dir):
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    model = LlamaForCausalLM.from_pretrained(tiny_causal_dir)
    spec = TaskSpec("toy", ("text",), 2, ("accuracy",), label_names=("negative", "positive"))
    from datasets import Dataset, DatasetDict

    data = TaskData(spec, DatasetDict({"validation": Dataset.from_dict({"text": ["good movie"] * 4,
                                                                         "label": [1] * 4})}))
    tokenized = tokenize_causal(data, tokenizer, 32)["validation"]
    with torch.no_grad():  # make "positive" far likelier than any other token, everywhere
        model.lm_head.weight.zero_()
        model.lm_head.bias = None
        model.model.norm.weight.fill_(1.0)
    positive = tokenizer.convert_tokens_to_ids("positive")
    hook = model.lm_head.register_forward_hook(lambda m, i, out: out + 50.0 * torch.nn.functional.one_hot(
        torch.tensor(positive), out.shape[-1]))
    assert evaluate_causal(model, spec, tokenized, tokenizer, 32, progress=False)["accuracy"] == 1.0
    hook.remove()


def test_regression_and_too_short_prompts_are_clear_errors(tiny_causal_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    with pytest.raises(ConfigError, match="regression"):
        PromptEncoder(tokenizer, TaskSpec("stsb", ("a", "b"), 1, ("pearson",)), 64)
    with pytest.raises(ConfigError, match="max-length"):
        PromptEncoder(tokenizer, TaskSpec("toy", ("text",), 2, ("accuracy",), label_names=("no", "yes")), 12)


@pytest.mark.slow
def test_slaft_train_causal_lm_improves_on_the_untuned_model_and_merges_exactly(tiny_causal_dir, tmp_path):
    from slaft.cli import main
    from slaft.inference import load_directory

    out = tmp_path / "run"
    code = main(["train", "--model", str(tiny_causal_dir), "--objective", "causal-lm", "--task", "csv",
                 "--train-file", str(sentiment_csv(tmp_path, rows=96)), "--epochs", "8", "--batch-size", "8",
                 "--learning-rate", "1e-2", "--max-length", "48", "--lora-rank", "4", "--output-dir", str(out),
                 # LoRA sites only, so that the merged export below is a plain transformers model
                 "--sites", "lora_q", "lora_k", "lora_v", "lora_o", "lora_ffn_gate", "lora_ffn_in", "lora_ffn_out"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["objective"] == "causal-lm" and metrics["params"]["head"] == 0
    assert metrics["eval"]["accuracy"] > metrics["untuned"]["accuracy"]
    assert metrics["eval"]["accuracy"] >= 0.9, metrics

    model, tokenizer, payload = load_directory(out / "adapter")
    assert payload["objective"] == "causal-lm"
    prompt = torch.tensor([tokenizer("classify the text : very good movie")["input_ids"]])
    unmerged = model.generate(input_ids=prompt, max_new_tokens=4, do_sample=False)
    model.merge()
    merged = model.generate(input_ids=prompt, max_new_tokens=4, do_sample=False)
    assert torch.equal(unmerged, merged) and not np.array_equal(unmerged.shape, prompt.shape)

    # `slaft eval` scores the saved run as training did; a merged export is a plain causal LM that generates alike.
    assert main(["eval", str(out / "adapter"), "--output", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["eval"] == metrics["eval"]
    assert main(["export", str(out / "adapter"), str(tmp_path / "merged"), "--merge"]) == 0
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert torch.equal(plain.generate(input_ids=prompt, max_new_tokens=4, do_sample=False), merged)

    # `slaft generate` answers a prompt posed as in training with the class name; bad options are clear errors.
    from slaft.inference import generate_text

    posed = "Classify the text into one of: negative, positive.\n\nText: very good movie\nAnswer:"
    assert generate_text(out / "adapter", posed, max_new_tokens=2).split()[0] == "positive"
    assert main(["generate", str(out / "adapter"), "--prompt", posed, "--max-new-tokens", "2"]) == 0
    for bad in (["--prompt", " "], ["--prompt", "x", "--max-new-tokens", "0"], ["--prompt", "x", "--max-new-tokens",
                                                                              "abc"]):
        with pytest.raises(SystemExit) if "abc" in bad else contextlib.nullcontext():
            assert main(["generate", str(out / "adapter"), *bad]) == 2


@pytest.mark.parametrize("model_kind", ["tiny", "chat"])
def test_cached_answer_scores_equal_full_forward_passes(tiny_causal_dir, tmp_path, model_kind):
    """The prompt-once, cache-per-class scoring gives each answer's summed log-probability as a full forward pass
    of prompt + answer does, for prompts of different lengths in one batch."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from slaft.causal_lm import answer_scores
    from slaft.data import load_task

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    if model_kind == "chat":
        tokenizer.chat_template = "{% for m in messages %}<s> {{ m['content'] }} </s>{% endfor %}<s>"
    model = LlamaForCausalLM.from_pretrained(tiny_causal_dir).eval()
    lines = ["text,label", "very good movie,positive", "bad,negative", "not a very very fine book,positive"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    data = load_task("csv", train_file=str(tmp_path / "t.csv"), validation_file=str(tmp_path / "t.csv"))
    rows = tokenize_causal(data, tokenizer, 48)["validation"]
    cached = answer_scores(model, rows, tokenizer, data.spec, 48, batch_size=3, progress=False)
    encoder = PromptEncoder(tokenizer, data.spec, 48)
    for i, (ids, length) in enumerate(zip(rows["input_ids"], rows["prompt_length"])):
        for c, answer in enumerate(encoder.answers):
            full = torch.tensor([list(ids[:length]) + answer])
            logprobs = torch.log_softmax(model(input_ids=full).logits[0, :-1].float(), dim=-1)
            expected = sum(logprobs[length - 1 + k, token] for k, token in enumerate(answer))
            assert abs(cached[i, c] - float(expected)) < 1e-4, (i, c)


def test_a_chat_answer_ends_with_the_token_that_ends_the_turn_not_a_mislabelled_eos(tiny_causal_dir):
    """SmolLM2's GGUF tokenizer names <|im_start|> as its eos token while its chat turns end with <|im_end|>: the
    answer must end as the template ends an assistant turn, or generation never stops after the class name."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
                               "{% if add_generation_prompt %}assistant : {% endif %}")
    tokenizer.eos_token = "<s>"  # mislabelled, as in the GGUF tokenizer
    encoder = PromptEncoder(tokenizer, TaskSpec("toy", ("text",), 2, ("accuracy",),
                                                label_names=("negative", "positive")), 48)
    assert [tokenizer.convert_ids_to_tokens(a) for a in encoder.answers] == [["negative", "</s>"],
                                                                             ["positive", "</s>"]]


def test_padding_goes_through_the_tokenizer_and_leaves_it_as_it_was():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from slaft.causal_lm import _left_padded, without_pad_gap

    backend = Tokenizer(models.WordLevel({"<unk>": 0, "</s>": 1, "a": 2, "b": 3}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>",
                                        padding_side="left")  # no pad token, pads left by default
    batch = CausalCollator(tokenizer)([{"input_ids": [2, 3, 2], "attention_mask": [1, 1, 1], "labels": [IGNORE, 3, 2]},
                                       {"input_ids": [3], "attention_mask": [1], "labels": [3]}])
    assert batch["input_ids"].tolist() == [[2, 3, 2], [3, 1, 1]]  # right-padded with eos for training
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 3, 2], [3, IGNORE, IGNORE]]
    ids, mask = _left_padded(without_pad_gap(tokenizer), [[2, 3, 2], [3]])
    assert ids.tolist() == [[2, 3, 2], [1, 1, 3]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert tokenizer.pad_token is None and tokenizer.padding_side == "left"
