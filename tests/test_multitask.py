"""Multi-task structure learning on tiny models: sharing-aware allocation, one-task batches, per-task outputs equal to
the per-task exports, adding a task, save/load, and the CLI end to end on the user's own CSV files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from datasets import Dataset

from conftest import WORDS, run_cli, tiny_bert, tiny_llama
from slaft import SlaftConfig
from slaft.allocation import Units, select, sharing_matrix
from slaft.config import ConfigError
from slaft.io import AdapterLoadError
from slaft.model import SlaftModel
from slaft.multitask import (MultiTaskConfig, MultiTaskDataset, MultiTaskSlaftModel, MultiTaskTrainer,
                             TaskBatchSampler, TaskInfo)

pytestmark = pytest.mark.filterwarnings("ignore")
TASKS = [TaskInfo("pos", 2, ("no", "yes")), TaskInfo("topic", 3), TaskInfo("score", 1)]


# Allocation -----------------------------------------------------------------------------------------------------------
def units(n: int = 12) -> Units:
    return Units(torch.arange(n) // 2, torch.full((n,), 10.0), torch.zeros(n // 2))


def test_every_task_and_the_pool_stay_within_their_budgets_and_a_shared_unit_counts_once():
    table = units()
    scores = torch.rand(3, 12, generator=torch.Generator().manual_seed(0))
    masks = select(scores, table, [60, 60, 60], 90)
    for mask in masks:
        assert table.kept_params(mask) <= 60
    assert table.kept_params(masks.any(0)) <= 90 < sum(table.kept_params(m) for m in masks)
    assert sharing_matrix(masks, table)[0, 0] == table.kept_params(masks[0])


def test_a_smaller_pool_makes_tasks_share_more():
    table = units()
    scores = torch.rand(3, 12, generator=torch.Generator().manual_seed(1))
    loose, tight = select(scores, table, [60] * 3, 120), select(scores, table, [60] * 3, 60)
    off_diagonal = ~torch.eye(3, dtype=torch.bool)
    assert sharing_matrix(tight, table)[off_diagonal].sum() > sharing_matrix(loose, table)[off_diagonal].sum()


def test_tasks_that_rank_alike_share_their_units():
    table = units()
    same = torch.linspace(1, 0, 12).repeat(2, 1)
    masks = select(same, table, [40, 40], 40)
    assert torch.equal(masks[0], masks[1]) and table.kept_params(masks[0]) == 40


def test_an_exclusive_unit_serves_one_task_at_most():
    table = units()
    same = torch.linspace(1, 0, 12).repeat(2, 1)
    exclusive = torch.zeros(12, dtype=torch.bool)
    exclusive[:4] = True
    masks = select(same, table, [60, 60], 80, exclusive=exclusive)
    assert not (masks[0] & masks[1])[:4].any() and (masks[0] | masks[1])[:4].all()
    assert (masks[0] & masks[1])[4:].any()  # the other units are still shared


def test_private_sites_give_each_task_units_of_its_own():
    config = MultiTaskConfig(private_sites=["lora_q", "lora_v"])
    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(target_params=1500, total_steps=20), TASKS, config)
    model.search.state.importance.uniform_()
    model.search.state.updates.fill_(1)
    model.search.begin_step(10)
    masks = model.search.final_masks()
    private = model.search.exclusive
    assert private.any() and not private.all()
    overlap = (masks.int().sum(0) > 1)
    assert not overlap[private].any()


# Sampling -------------------------------------------------------------------------------------------------------------
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


# The model ------------------------------------------------------------------------------------------------------------
def dataset(n: int, num_labels: int, seed: int) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 120, (n, 8), generator=generator)
    labels = torch.randint(0, num_labels, (n,)).tolist() if num_labels > 1 else torch.rand(n).tolist()
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * 8] * n, "labels": labels})


def collate(features: list[dict]) -> dict[str, torch.Tensor]:
    return {key: torch.tensor([f[key] for f in features]) for key in features[0]}


def train(model, datasets, tmp_path, task_ids=None, epochs: int = 3):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=8,
                             num_train_epochs=epochs, learning_rate=1e-2, logging_steps=4, save_strategy="no",
                             report_to=[], remove_unused_columns=False, disable_tqdm=True, use_cpu=True)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=MultiTaskDataset(datasets, task_ids),
                               data_collator=collate)
    trainer.train()
    return trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mt")
    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(target_params=2000), TASKS, MultiTaskConfig(pool_share=0.5))
    trainer = train(model, [dataset(64, 2, 0), dataset(32, 3, 1), dataset(48, 1, 2)], tmp)
    return model, trainer, tmp


@pytest.fixture
def probe():
    generator = torch.Generator().manual_seed(9)
    return {"input_ids": torch.randint(5, 120, (4, 8), generator=generator),
            "attention_mask": torch.ones(4, 8, dtype=torch.long)}


def outputs(model, probe) -> dict[str, torch.Tensor]:
    model.eval()
    out = {}
    with torch.no_grad():
        for task in model.tasks:
            model.set_task(task.name)
            out[task.name] = model(**probe).logits
    return out


def test_training_decides_a_structure_per_task_within_the_task_and_pool_budgets(trained):
    model, trainer, _ = trained
    assert model.discrete and model.decided_at_step is not None
    structures = model.task_structures()
    for task in TASKS:
        assert 0 < structures[task.name].num_params <= 2000
    assert model.pool_params() <= 0.5 * 3 * 2000 < sum(s.num_params for s in structures.values())
    assert model.pool_params() < model.candidate.num_params
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"loss_pos", "loss_topic", "loss_score", "slaft/pool_params"} <= logged
    sharing = model.sharing()
    assert all(sharing[i, i] == structures[t.name].num_params for i, t in enumerate(TASKS))


def test_each_task_from_one_loaded_model_equals_its_single_task_export(trained, probe, tmp_path):
    model, _, _ = trained
    served = outputs(model, probe)
    for task in TASKS:
        directory = model.export_task(task.name, tmp_path / task.name)
        single = SlaftModel.from_pretrained(tiny_bert(task.num_labels), directory).eval()
        assert single.structure().num_params == model.task_structures()[task.name].num_params
        with torch.no_grad():
            assert torch.allclose(single(**probe).logits, served[task.name], atol=1e-6)
    assert served["topic"].shape[-1] == 3 and served["score"].shape[-1] == 1


def test_the_saved_set_reloads_with_identical_outputs(trained, probe, tmp_path):
    model, _, _ = trained
    model.save_pretrained(tmp_path / "set")
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["README.md", "slaft_config.json", "slaft_model.safetensors"]
    with pytest.raises(AdapterLoadError, match="multi-task pool"):
        SlaftModel.from_pretrained(tiny_bert(2), tmp_path / "set")
    again = MultiTaskSlaftModel.from_pretrained(tiny_bert(2), tmp_path / "set")
    before, after = outputs(model, probe), outputs(again, probe)
    assert all(torch.equal(before[t], after[t]) for t in before)


def test_adding_a_task_leaves_the_other_tasks_outputs_unchanged(trained, probe, tmp_path):
    model, _, _ = trained
    model.save_pretrained(tmp_path / "before")
    grown = MultiTaskSlaftModel.from_pretrained(tiny_bert(2), tmp_path / "before")
    before = outputs(grown, probe)
    grown.add_task(TaskInfo("extra", 4))
    head = grown.base_model.classifier.tasks["extra"].weight.detach().clone()
    grown.train()
    train(grown, [dataset(40, 4, 5)], tmp_path, task_ids=[3], epochs=2)
    after = outputs(grown, probe)
    assert all(torch.equal(before[t], after[t]) for t in before)
    assert after["extra"].shape[-1] == 4
    assert not torch.equal(head, grown.base_model.classifier.tasks["extra"].weight)


def test_a_search_phase_save_resumes_with_the_same_masks_and_importances(tmp_path):
    model = MultiTaskSlaftModel(tiny_llama(2), SlaftConfig(target_params=3000, total_steps=40), TASKS)
    state = model.search.state
    state.importance.uniform_()
    state.updates.fill_(1)
    model.search.begin_step(20)
    model.save_pretrained(tmp_path / "ckpt")
    again = MultiTaskSlaftModel.from_pretrained(tiny_llama(2), tmp_path / "ckpt").search.state
    assert torch.equal(again.masks, state.masks) and torch.equal(again.importance, state.importance)
    assert not state.masks.all()  # pruning had started


def test_bad_multitask_input_gets_clear_errors():
    from slaft.config import ConfigError

    with pytest.raises(ConfigError, match="distinct names"):
        MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(), [TaskInfo("a", 2), TaskInfo("a", 3)])
    with pytest.raises(ConfigError, match="cannot name files"):
        MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(), [TaskInfo("a/b", 2), TaskInfo("c", 3)])
    with pytest.raises(ConfigError, match="by importance"):
        MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(allocator="gates"), TASKS)
    with pytest.raises(ConfigError, match="sampling"):
        MultiTaskConfig(sampling="random")
    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(), TASKS)
    with pytest.raises(ValueError, match="one task"):
        model(input_ids=torch.ones(2, 4, dtype=torch.long), task=torch.tensor([0, 1]))


# The CLI on the user's own files --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("mt-cli")
    shutil.copytree(tiny_model_dir, root / "model")
    for name, labels in (("sentiment", 2), ("kind", 3)):
        rows = ["text,label"] + [f"{WORDS[i % 4]} {WORDS[4 + i % 2]} {WORDS[6]},{i % labels}" for i in range(40)]
        (root / f"{name}.csv").write_text("\n".join(rows) + "\n")
    return root


def cli_train(root, *argv: str) -> tuple[int, str]:
    return run_cli(root, "train", "--model", str(root / "model"), "--epochs", "2", "--batch-size", "8",
                   "--max-length", "16", "--adapter-width", "8", "--lora-rank", "4", "--target-params", "1500", *argv)


def test_cli_trains_evaluates_inspects_and_exports_a_multitask_run(workspace):
    code, message = cli_train(workspace, "--tasks", f"sentiment={workspace / 'sentiment.csv'},kind="
                              f"{workspace / 'kind.csv'}", "--output-dir", str(workspace / "run"))
    assert code == 0, message
    run = workspace / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tasks"] == ["sentiment", "kind"] and set(metrics["scores"]) == {"sentiment", "kind"}
    assert metrics["stored_params"] == metrics["params"]["pool"] + sum(metrics["params"]["heads"].values())
    assert (run / "sharing.png").stat().st_size > 1000 and (run / "structures" / "kind.png").is_file()
    assert run_cli(workspace, "eval", str(run / "multitask"), "--output", str(workspace / "e.json"))[0] == 0
    scores = json.loads((workspace / "e.json").read_text())
    for task in ("sentiment", "kind"):
        assert scores[task]["eval"] == pytest.approx(metrics["scores"][task]["validation"], abs=1e-6)
    assert run_cli(workspace, "eval", str(run / "tasks" / "kind"))[0] == 0  # a task's export alone
    assert run_cli(workspace, "inspect", str(run / "multitask"), "--png", str(workspace / "png"))[0] == 0
    assert (workspace / "png" / "sharing.png").is_file()
    assert run_cli(workspace, "export", str(run / "multitask"), str(workspace / "out"), "--task", "kind")[0] == 0
    assert (workspace / "out" / "kind" / "slaft_config.json").is_file()
    assert run_cli(workspace, "export", str(run / "multitask"), str(workspace / "merged"), "--merge")[0] == 0
    assert {p.name for p in (workspace / "merged").iterdir()} == {"sentiment", "kind"}
    assert run_cli(workspace, "eval", str(workspace / "merged" / "sentiment"), "--output",
                   str(workspace / "m.json"))[0] == 0
    merged = json.loads((workspace / "m.json").read_text())["eval"]
    assert merged == pytest.approx(metrics["scores"]["sentiment"]["validation"], abs=1e-5)


@pytest.mark.parametrize("tasks, message", [
    ("a={csv},a={csv}", "listed twice"),
    ("sst2,sst-2", "same task"),
    ("{csv}", "at least two tasks"),
])
def test_cli_refuses_bad_task_lists(workspace, tmp_path, tasks, message):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.jsonl").write_text('{"sentence": "good", "label": 1, "idx": 0}\n' * 8)
    code, error = cli_train(workspace, "--tasks", tasks.format(csv=workspace / "kind.csv"), "--data-dir",
                            str(tmp_path), "--output-dir", str(tmp_path / "run"))
    assert code == 2 and message in error


def test_cli_refuses_a_task_without_a_train_split(workspace, tmp_path):
    (tmp_path / "rte").mkdir()
    (tmp_path / "rte" / "validation.jsonl").write_text('{"sentence1": "a", "sentence2": "b", "label": 1}\n')
    code, error = cli_train(workspace, "--tasks", f"rte,kind={workspace / 'kind.csv'}", "--data-dir", str(tmp_path),
                            "--output-dir", str(tmp_path / "run"))
    assert code == 2 and "train" in error


def test_cli_task_passes_give_a_task_more_steps_and_refuse_an_unknown_task(workspace, tmp_path):
    tasks = f"sentiment={workspace / 'sentiment.csv'},kind={workspace / 'kind.csv'}"
    code, message = cli_train(workspace, "--tasks", tasks, "--task-passes", "kind=2", "--output-dir",
                              str(tmp_path / "run"))
    assert code == 0, message
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["multitask"]["task_passes"] == ["kind=2"]
    assert metrics["steps"] == 2 * (5 + 2 * 5)  # 2 epochs of 5 batches per task (the resume test's 20 steps), kind x2
    code, error = cli_train(workspace, "--tasks", tasks, "--task-passes", "topic=2", "--output-dir",
                            str(tmp_path / "bad"))
    assert code == 2 and "not tasks of this run" in error


def test_the_trainer_groups_each_task_by_length_when_asked(tmp_path):
    from slaft.compat import training_arguments
    from slaft.multitask.data import TaskBatchSampler

    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(target_params=2000), TASKS[:2])
    args = training_arguments(str(tmp_path), per_device_train_batch_size=8, group_by_length=True,
                              report_to=[], remove_unused_columns=False, use_cpu=True)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=MultiTaskDataset([dataset(32, 2, 0),
                               dataset(16, 3, 1)]), data_collator=collate, task_passes=[1, 2])
    loader = trainer.get_train_dataloader()
    sampler = next(s for s in (getattr(loader, "batch_sampler", None), getattr(loader, "base_dataloader", None))
                   if isinstance(s, TaskBatchSampler))
    assert sampler.lengths == [[8] * 32, [8] * 16] and sampler.passes == [1.0, 2.0] and len(loader) == 4 + 2 * 2


def test_a_killed_multitask_run_resumes_to_the_same_result(workspace):
    tasks = f"sentiment={workspace / 'sentiment.csv'},kind={workspace / 'kind.csv'}"
    code, message = cli_train(workspace, "--tasks", tasks, "--save-steps", "7", "--output-dir",
                              str(workspace / "whole"))
    assert code == 0, message
    whole = json.loads((workspace / "whole" / "metrics.json").read_text())
    # A run killed after its checkpoint of step 14 of 20 (the structures were decided at step 10); a search-phase
    # checkpoint's round trip is test_a_search_phase_save_resumes_with_the_same_masks_and_importances.
    killed = workspace / "killed"
    shutil.copytree(workspace / "whole" / "checkpoints" / "checkpoint-14", killed / "checkpoints" / "checkpoint-14")
    code, message = cli_train(workspace, "--tasks", tasks, "--save-steps", "7", "--output-dir", str(killed),
                              "--resume")
    assert code == 0, message
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["resumed"] and resumed["decided_at_step"] == whole["decided_at_step"]
    assert resumed["params"] == whole["params"] and resumed["sharing"] == whole["sharing"]
    for task in ("sentiment", "kind"):
        assert resumed["scores"][task]["validation"] == pytest.approx(whole["scores"][task]["validation"], abs=1e-6)


def test_gradient_checkpointing_still_trains_the_pool():
    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(), TASKS)
    model.gradient_checkpointing_enable()
    model.train()
    ids = torch.randint(5, 120, (4, 8), generator=torch.Generator().manual_seed(0))
    model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 2, 0]),
          task=torch.ones(4, dtype=torch.long)).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "slaft_modules" in n and "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_per_task_evaluation_during_training_logs_each_tasks_metrics(tmp_path):
    from transformers import TrainingArguments

    from slaft.data import GLUE_TASKS, compute_metrics

    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(target_params=2000), TASKS[:2])
    train_sets = [dataset(32, 2, 0), dataset(32, 3, 1)]
    eval_sets = {"pos": dataset(16, 2, 3), "topic": dataset(16, 3, 4)}
    spec = GLUE_TASKS["sst2"]
    metrics = {name: (lambda p: compute_metrics(spec, p.predictions, p.label_ids)) for name in eval_sets}
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=2,
                             eval_strategy="epoch", save_strategy="no", report_to=[], remove_unused_columns=False,
                             disable_tqdm=True, use_cpu=True, learning_rate=1e-2)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=MultiTaskDataset(train_sets),
                               eval_dataset=eval_sets, data_collator=collate, task_metrics=metrics)
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"eval_pos_accuracy", "eval_topic_accuracy", "eval_pos_loss", "eval_topic_loss"} <= logged


def test_idle_entries_keep_their_values_and_adam_state_through_a_step():
    from slaft.training import IdleEntries

    def two_steps(hold: bool):
        param = torch.nn.Parameter(torch.ones(4))
        optimizer = torch.optim.AdamW([param], lr=0.1, weight_decay=0.0)
        param.grad = torch.tensor([1.0, 1.0, -1.0, 2.0])
        optimizer.step()
        before = param.detach().clone(), {k: v.clone() for k, v in optimizer.state[param].items()}
        param.grad = torch.tensor([0.5, 0.0, 0.2, 0.0])  # entries 1 and 3: another task's units
        idle = IdleEntries([param], optimizer) if hold else None
        optimizer.step()
        if idle is not None:
            idle.restore(optimizer)
        return before, param.detach(), optimizer.state[param]

    (values, state), after, new_state = two_steps(hold=True)
    assert torch.equal(after[[1, 3]], values[[1, 3]]) and not torch.equal(after[[0, 2]], values[[0, 2]])
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(new_state[key][[1, 3]], state[key][[1, 3]])
    (values, _), after, _ = two_steps(hold=False)
    assert not torch.equal(after[[1, 3]], values[[1, 3]])  # without it Adam's momentum moves them anyway


def test_the_trainer_holds_idle_units_when_asked(tmp_path, monkeypatch):
    from slaft import training

    held = []
    restore = training.IdleEntries.restore
    monkeypatch.setattr(training.IdleEntries, "restore",
                        lambda self, optimizer: (held.append(len(self.saved)), restore(self, optimizer)))
    config = MultiTaskConfig(pool_share=1.0, private_sites=["lora_q", "lora_v"], hold_idle_units=True)
    model = MultiTaskSlaftModel(tiny_bert(2), SlaftConfig(sites=["lora_q", "lora_v"], target_params=1000), TASKS,
                                config)
    train(model, [dataset(32, 2, 0), dataset(32, 3, 1), dataset(32, 1, 2)], tmp_path, epochs=2)
    assert held and max(held) > 0  # the steps after pruning began held the other tasks' units
    assert MultiTaskConfig.from_dict(config.to_dict()).hold_idle_units  # saved with the model's config
