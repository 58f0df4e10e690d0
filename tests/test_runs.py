"""A run's output directory: checked before any compute, never overwritten by accident, names kept safe."""

from __future__ import annotations

import pytest

from slaft.runs import OutputDirError, latest_checkpoint, prepare_output_dir, safe_name


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


def test_half_written_checkpoints_are_skipped(tmp_path):
    from slaft import SlaftConfig, get_slaft_model

    from conftest import TINY_MODELS

    model = get_slaft_model(TINY_MODELS["bert"](), SlaftConfig(lora_rank=2, adapter_width=8))
    for step in (2, 4, 6):
        model.save_pretrained(tmp_path / f"checkpoint-{step}")
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-6" / "trainer_state.json").unlink()  # killed before the Trainer finished it
    assert latest_checkpoint(tmp_path).endswith("checkpoint-4")
