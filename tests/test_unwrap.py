"""training.unwrap finds the slaft model inside the wrappers a launch puts around it (through accelerate)."""

from __future__ import annotations

import torch
from torch import nn

from slaft import SlaftConfig, SlaftModel, get_slaft_model
from slaft.multitask import MultiTaskSlaftModel
from slaft.training import unwrap

from conftest import tiny_bert


def test_unwrap_takes_off_parallel_and_compile_wrappers():
    model = get_slaft_model(tiny_bert(), SlaftConfig(lora_rank=2, rank_block=2))
    assert unwrap(model) is model
    assert unwrap(nn.DataParallel(model)) is model
    compiled = torch.compile(model)  # wrapped only; nothing compiles until it is called
    assert unwrap(compiled) is model
    assert unwrap(nn.DataParallel(compiled)) is model
    assert unwrap(nn.DataParallel(model), SlaftModel) is model
    assert unwrap(nn.DataParallel(model), MultiTaskSlaftModel) is None  # another kind of slaft model
    assert unwrap(nn.Linear(2, 2)) is None and unwrap(None) is None
