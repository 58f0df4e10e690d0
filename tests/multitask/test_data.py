"""Task batches: one task per batch (per aligned group of batches), sampling modes, passes, length grouping."""

from __future__ import annotations

import pytest

from slaft.config import ConfigError
from slaft.multitask import MultiTaskConfig, TaskBatchSampler


def task_of(index: int) -> int:
    return 0 if index < 10 else 1 if index < 35 else 2


def test_proportional_sampling_sees_every_example_with_one_task_per_aligned_group_of_batches():
    sampler = TaskBatchSampler([10, 25, 7], 4, group=2, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4 + 8 + 2  # 3, 7 and 2 batches, each rounded up to whole groups
    assert set(i for batch in batches for i in batch) == set(range(42))
    assert all(len({task_of(i) for i in batch}) == 1 for batch in batches)
    tasks = [task_of(batch[0]) for batch in batches]
    assert all(tasks[k] == tasks[k + 1] for k in range(0, len(tasks), 2))  # both ranks of a step: one task
    sampler.set_epoch(1)
    assert list(sampler) != batches
    assert list(TaskBatchSampler([10, 25, 7], 4, seed=3)) != batches  # group 1: no top-up
    assert len(TaskBatchSampler([10, 25, 7], 4, seed=3)) == 3 + 7 + 2


def test_temperature_and_uniform_sampling_flatten_task_frequencies():
    sizes = [1000, 10]
    proportional = TaskBatchSampler(sizes, 10).probabilities()
    tempered = TaskBatchSampler(sizes, 10, sampling="temperature", temperature=2.0).probabilities()
    uniform = TaskBatchSampler(sizes, 10, sampling="uniform").probabilities()
    assert proportional[1] < tempered[1] < uniform[1] == 0.5
    drawn = [b[0] >= 1000 for b in TaskBatchSampler(sizes, 10, sampling="uniform", seed=0)]
    assert len(drawn) == 101 and 30 < sum(drawn) < 70
    grouped = [task_of(b[0]) for b in TaskBatchSampler([10, 25, 7], 4, sampling="uniform", group=3, seed=1)]
    assert len(grouped) % 3 == 0 and all(len(set(grouped[k:k + 3])) == 1 for k in range(0, len(grouped), 3))


def test_passes_give_a_task_more_batches_per_epoch_in_every_sampling_mode():
    sampler = TaskBatchSampler([10, 25, 7], 4, passes=[2, 1, 0.5], seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2 * 3 + 7 + 1
    seen = [i for batch in batches for i in batch]
    assert all(seen.count(i) == 2 for i in range(10))  # two whole passes over the first task
    assert all(seen.count(i) == 1 for i in range(10, 35))
    assert len([i for i in seen if i >= 35]) == 4  # half a pass: one batch
    proportional = TaskBatchSampler([10, 10], 5, passes=[3, 1]).probabilities()
    assert proportional == pytest.approx([0.75, 0.25])
    tempered = TaskBatchSampler([10, 10], 5, passes=[3, 1], sampling="temperature").probabilities()
    assert 0.5 < tempered[0] < 0.75
    assert list(TaskBatchSampler([10, 25, 7], 4, passes=[1, 1, 1], seed=3)) == \
        list(TaskBatchSampler([10, 25, 7], 4, seed=3))  # passes of 1: the sampler as before
    for bad in ([1, 0, 1], [1, 1], [1, float("inf"), 1]):
        with pytest.raises(ValueError, match="passes"):
            TaskBatchSampler([10, 25, 7], 4, passes=bad)


def test_length_grouping_keeps_every_example_and_batches_similar_lengths_within_each_task():
    import random

    rng = random.Random(0)
    lengths = [[rng.randint(4, 128) for _ in range(400)], [rng.randint(4, 128) for _ in range(200)]]
    flat = lengths[0] + lengths[1]
    grouped = TaskBatchSampler([400, 200], 8, lengths=lengths, seed=1)
    shuffled = TaskBatchSampler([400, 200], 8, seed=1)
    batches = list(grouped)
    assert sorted(i for batch in batches for i in batch) == list(range(600))
    assert all(len({i < 400 for i in batch}) == 1 for batch in batches)  # still one task per batch
    padding = lambda sampler: sum(max(flat[i] for i in b) * len(b) - sum(flat[i] for i in b)  # noqa: E731
                                  for b in sampler)
    assert padding(grouped) < 0.3 * padding(shuffled)
    assert list(grouped) == batches  # the same seed and epoch: the same order (a resumed run skips what it saw)
    grouped.set_epoch(1)
    assert list(grouped) != batches
    with pytest.raises(ValueError, match="lengths"):
        TaskBatchSampler([400, 200], 8, lengths=[lengths[0]])


def test_task_passes_are_parsed_and_checked_against_the_run_s_tasks():
    config = MultiTaskConfig(task_passes=["cola=2", "mrpc = 0.5"])
    assert config.passes_for(["sst2", "cola", "mrpc"]) == [1.0, 2.0, 0.5]
    assert MultiTaskConfig.from_dict(config.to_dict()) == config
    assert MultiTaskConfig().passes_for(["a", "b"]) == [1.0, 1.0]
    with pytest.raises(ConfigError, match="not tasks of this run"):
        config.passes_for(["sst2", "cola"])
    for bad in (["cola"], ["cola=0"], ["cola=x"], ["=2"], ["cola=2", "cola=3"], ["cola=1e9"], ["cola=2,cola=3"]):
        with pytest.raises(ConfigError, match="task_passes"):
            MultiTaskConfig(task_passes=bad)


def test_task_passes_take_commas_and_task_aliases_as_tasks_does():
    """``--task-passes`` reads its entries as ``--tasks`` reads its own: comma-separated, a known task by any alias."""
    config = MultiTaskConfig(task_passes=["SST-2=2,CoLA=3", "kind=0.5"])
    assert config.passes_for(["sst2", "cola", "kind"]) == [2.0, 3.0, 0.5]  # "kind": a NAME=FILE task, as written
    with pytest.raises(ConfigError, match="twice"):
        MultiTaskConfig(task_passes=["sst2=2", "SST-2=3"]).passes_for(["sst2", "cola"])

