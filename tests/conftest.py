"""Shared fixtures: tiny randomly-initialised BERT and Llama task models built from configs (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
)

REPO = Path(__file__).resolve().parents[1]
GLUE_DIR = REPO.parent / "shared" / "data" / "glue"


def tiny_bert(num_labels: int = 3) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config).eval()


def tiny_llama(num_labels: int = 3) -> LlamaForSequenceClassification:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                         num_labels=num_labels, pad_token_id=0)
    return LlamaForSequenceClassification(config).eval()


TINY_MODELS = {"bert": tiny_bert, "llama": tiny_llama}


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 120, (4, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


WORDS = ["good", "bad", "fine", "poor", "movie", "book", "very", "not"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny BERT task model (2 labels) and a word-level tokenizer saved like a hub checkpoint."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("tiny-model")
    # Built from the tokenizers library directly: transformers 5's BertTokenizerFast no longer reads a vocab.txt.
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A:0 [SEP]:0", pair="[CLS] $A:0 [SEP]:0 $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]").save_pretrained(root)
    tiny_bert(num_labels=2).save_pretrained(root)
    return root


CAUSAL_WORDS = ["good", "bad", "fine", "poor", "movie", "book", "very", "not", "positive", "negative", "classify",
                "the", "text", "into", "one", "of", ":", ",", ".", "answer"]


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory) -> Path:
    """A tiny Llama causal LM and a word-level tokenizer (with bos, eos and pad) saved like a hub checkpoint."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("tiny-causal")
    vocab = {token: i for i, token in enumerate(["<pad>", "<unk>", "<s>", "</s>", *CAUSAL_WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>")
    tokenizer.save_pretrained(root)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128, pad_token_id=0,
                         bos_token_id=2, eos_token_id=3, tie_word_embeddings=True, initializer_range=0.5)
    LlamaForCausalLM(config).save_pretrained(root)
    return root


def model_workspace(tmp_path_factory, model_dir: Path, name: str, files: dict[str, list[str]]) -> Path:
    """A fresh directory with a copy of ``model_dir`` as ``model/`` and one CSV file per entry of ``files``
    (file name: its lines, header first)."""
    import shutil

    root = tmp_path_factory.mktemp(name)
    shutil.copytree(model_dir, root / "model")
    for file, lines in files.items():
        (root / file).write_text("\n".join(lines) + "\n")
    return root


def run_cli(cwd, *argv: str) -> tuple[int, str]:
    """The CLI in-process: (exit code, stderr); any exception escaping it fails the test."""
    import contextlib
    import io
    import os

    err = io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                from slaft.cli import main

                code = main(list(argv))
            except SystemExit as exit_:  # argparse refuses a value
                code = exit_.code
    finally:
        os.chdir(previous)
    message = err.getvalue()
    assert "Traceback" not in message
    return code, (message.strip() if code else "")
