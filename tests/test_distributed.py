"""Training under DDP (two CPU processes, gloo): both ranks end with the identical structure and weights, and match a
single process that trains on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

pytestmark = pytest.mark.slow
SCRIPT = REPO / "tests" / "distributed_run.py"


def launch(out, *extra: str, processes: int, per_device: int, steps: int = 12) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    runner = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
              if processes > 1 else [sys.executable])
    result = subprocess.run([*runner, str(SCRIPT), str(out), str(per_device), str(steps), *extra], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(processes)]


def test_two_ddp_ranks_agree_and_match_one_process(tmp_path):
    ranks = launch(tmp_path / "ddp", processes=2, per_device=8)
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["decided_at"] == 6 and all(r["discrete"] for r in ranks)  # decided at search_end, cut at the end
    assert ranks[0]["structure"] == ranks[1]["structure"] and ranks[0]["structure"]["modules"]
    assert ranks[0]["state"] == ranks[1]["state"]  # identical weights, bit for bit
    (single,) = launch(tmp_path / "single", processes=1, per_device=16)
    assert single["structure"] == ranks[0]["structure"]
    assert single["state"].keys() == ranks[0]["state"].keys()
    # The same updates up to float summation order: within 1e-5 after 12 steps (the tensors are of order 0.03-0.1).
    for name, value in single["state"].items():
        torch.testing.assert_close(torch.tensor(ranks[0]["state"][name]), torch.tensor(value), atol=1e-5, rtol=0)


def test_two_ddp_ranks_decide_the_same_multitask_structures(tmp_path):
    ranks = launch(tmp_path / "ddp-mt", "multitask", processes=2, per_device=4)
    assert ranks[0]["decided_at"] == 6 and all(r["discrete"] for r in ranks)
    assert ranks[0]["structure"] == ranks[1]["structure"] and ranks[0]["sharing"] == ranks[1]["sharing"]
    assert all(structure["modules"] for structure in ranks[0]["structure"].values())
    assert ranks[0]["state"] == ranks[1]["state"]
