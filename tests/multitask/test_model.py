"""The multi-task model: a structure per task within the task and pool budgets, per-task outputs equal to the
per-task exports, save/load, adding a task, private sites, and clear errors."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_bert, tiny_llama
from multitask.toy import TASKS, dataset, outputs, train
from slaft import SlaftConfig
from slaft.io import AdapterLoadError
from slaft.model import SlaftModel
from slaft.multitask import MultiTaskConfig, MultiTaskSlaftModel, TaskInfo

pytestmark = pytest.mark.filterwarnings("ignore")


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
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["README.md", "slaft_config.json",
                                                                    "slaft_model.safetensors"]
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

