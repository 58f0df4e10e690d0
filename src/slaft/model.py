"""SlaftModel: a frozen transformers model with a learnable structure of adapters built into it."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .backbone import FrozenBackbone
from .config import SlaftConfig
from .inject import attach, candidate_structure, detach, host_module, remove_module, restore_module
from .io import AdapterLoadError
from .merge import (BIAS_FLAGS, MergeReport, fold_low_rank, fold_serial, reloadable_bias, unfold_low_rank,
                    unfold_serial)
from .modules import LowRankUpdate
from .search import StructureSearch
from .sites import LORA, block_sites, site
from .structure import Structure


@dataclass
class ParameterSummary:
    backbone: int     # pretrained parameters, frozen
    head: int         # task head, trained
    candidate: int    # the whole candidate space
    kept: int         # kept if the structure were decided now (or kept, once decided)

    def __str__(self) -> str:
        return (
            f"backbone {self.backbone:,} (frozen) | head {self.head:,} | candidate adapters {self.candidate:,} | "
            f"kept {self.kept:,} ({100 * self.kept / max(self.candidate, 1):.1f}% of candidate, "
            f"{100 * self.kept / max(self.backbone, 1):.2f}% of backbone)"
        )


class NonFiniteError(FloatingPointError):
    """Training produced NaN or inf; the message says where and what to do."""


class SlaftModel(FrozenBackbone):
    """A frozen base model plus slaft modules at the sites of a ``Structure``, hooked into its forward pass.

    While searching (``discrete`` False) the modules carry unit gates over the whole candidate space, and
    ``search`` (a ``StructureSearch``) drives them, one call per optimizer step from ``SlaftCallback``; once the
    structure is decided (``discretize``) only the kept units remain, as plain modules. Outputs are the base
    model's outputs: the stock ``transformers.Trainer`` trains it (with ``SlaftCallback``), and ``merge`` folds
    what is linear into the base weights.
    """

    def __init__(self, base_model: nn.Module, config: SlaftConfig, structure: Structure | None = None) -> None:
        config = copy.deepcopy(config)  # the model's own: nothing it fills in or changes reaches the caller's config
        if config.base_model_name_or_path is None:
            config.base_model_name_or_path = getattr(getattr(base_model, "config", None), "_name_or_path", None)
        super().__init__(base_model, config)
        for name in self.head_names:
            base_model.get_submodule(name).requires_grad_(True)
        config = self.slaft_config
        self.candidate = candidate_structure(self.blocks, config)
        self.discrete = structure is not None and structure.discrete
        self.structure_data = structure if structure is not None else self.candidate
        self._handles = attach(base_model, self.blocks, self.structure_data, config, gated=not self.discrete)
        self.search = None if self.discrete else StructureSearch(self, config)
        self.merged = False  # True once linear paths were folded into the base weights
        self._unmerge = None  # what unmerge() needs: the folded modules, the structure and biases before merge()
        self.decided_at_step: int | None = None  # the optimizer step at which a Trainer run decided the structure
        self._warned_undriven = False

    # Plumbing ----------------------------------------------------------------------------------------------------
    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.base_model, name)

    @property
    def target(self) -> int | None:
        """The budget asked for as a parameter count (None in λ mode, and once the structure is decided)."""
        return self.search.target if self.search is not None else None

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, **kwargs):
        """The base model's forward (the named inputs are those the Trainer keeps dataset columns for)."""
        inputs = self.model_inputs({"input_ids": input_ids, "attention_mask": attention_mask,
                                    "token_type_ids": token_type_ids, "position_ids": position_ids,
                                    "inputs_embeds": inputs_embeds, "labels": labels}, kwargs)
        if self.training and self.search is not None and not self.search.driven and not self._warned_undriven:
            self._warned_undriven = True
            warnings.warn("slaft: training a searching model without SlaftCallback: the structure will not be "
                          "searched. Use slaft.SlaftTrainer, or pass callbacks=[slaft.SlaftCallback()] to the "
                          "Trainer.", stacklevel=2)
        return self.base_model(**inputs)

    # Structure ---------------------------------------------------------------------------------------------------
    def structure(self) -> Structure:
        """The learned structure once decided; while searching, the structure the gates would decide on now."""
        if self.discrete:
            return self.structure_data
        masks = self.search.module_masks()
        return self.structure_with(lambda layer, site, _: masks[(layer, site)][0])

    @torch.no_grad()
    def discretize(self, optimizer=None) -> Structure:
        """Gates become decisions: shut modules are removed, the rest keep their kept units and trained weights.

        With the ``optimizer`` that trains the model, its state for kept entries is sliced along with them and
        removed parameters leave it, so training continues where it was. Returns the learned structure.
        """
        if self.discrete:
            return self.structure_data
        self.search.decide(optimizer)
        self.search = None
        self.structure_data = self.structure_with(lambda _l, _s, module: torch.ones(module.width, dtype=torch.bool))
        self.discrete = True
        return self.structure_data

    def parameter_summary(self) -> ParameterSummary:
        """Parameter counts: frozen backbone, trained head, the candidate space, and what is kept (or would be)."""
        head = sum(p.numel() for n, p in self.base_model.named_parameters() if self.is_head(n))
        return ParameterSummary(self.backbone_params, head, self.candidate.num_params, self.structure().num_params)

    # Merge / unload ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def merge(self) -> MergeReport:
        """Fold every linear path into the base weights (decides the structure first). Returns what was folded."""
        self.discretize()
        report = MergeReport()
        modules = list(self.slaft_modules())
        if self._unmerge is None:
            config = getattr(self.base_model, "config", None)
            self._unmerge = {"folded": [], "structure": self.structure_data,
                             "bias_free": [m for m in self.base_model.modules()
                                           if isinstance(getattr(m, "weight", None), torch.Tensor)
                                           and "bias" in m._parameters and m.bias is None],
                             "flags": {flag: getattr(config, flag) for flag in BIAS_FLAGS if hasattr(config, flag)}}
        # Low-rank updates first: a serial adapter on the same linear sees the updated output.
        for layer, name, module in sorted(modules, key=lambda item: site(item[1]).kind != LORA):
            host = host_module(self.base_model, self.blocks[layer], name)
            key = f"{layer}.{name}"
            if isinstance(module, LowRankUpdate):
                fold_low_rank(host, module, key, block_sites(self.blocks[layer])[name].rows)
            elif site(name).reads == "output" and module.activations == ("identity",) and \
                    reloadable_bias(self.base_model, self.blocks, layer, block_sites(self.blocks[layer])[name].host.path):
                fold_serial(host, module, key)
            else:
                report.kept.append(f"{key} ({module.chosen_activation()})")
                continue
            remove_module(self.base_model, self.blocks, layer, name)
            self._unmerge["folded"].append((layer, name, module))
            report.folded.append(key)
        left = {(layer, name) for layer, name, _ in self.slaft_modules()}
        self.structure_data = Structure([m for m in self.structure_data.modules if (m.layer, m.site) in left], True,
                                        self.structure_data.num_layers)
        self.merged = True
        return report

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo ``merge()``: take the folded modules out of the base weights again (equal to the weights before the
        merge within float tolerance), put them back as modules, and drop the biases and config flags the merge
        added. The structure stays decided. Only a merge done in this process can be undone."""
        if not self.merged:
            raise RuntimeError("unmerge(): this model is not merged; there is nothing to undo.")
        if self._unmerge is None:
            raise RuntimeError("unmerge(): this model was merged before it was saved, and the saved directory holds "
                               "the merged weights only. Load the unmerged adapter onto the original base model "
                               "instead.")
        if not self._handles:
            raise RuntimeError("unmerge(): the model was unloaded (its hooks are gone); merge a fresh model instead.")
        for layer, name, module in reversed(self._unmerge["folded"]):
            host = host_module(self.base_model, self.blocks[layer], name)
            module.to(host.weight.device)
            if isinstance(module, LowRankUpdate):
                unfold_low_rank(host, module, f"{layer}.{name}", block_sites(self.blocks[layer])[name].rows)
            else:
                unfold_serial(host, module, f"{layer}.{name}")
            restore_module(self.base_model, self.blocks, layer, name, module)
        for module in self._unmerge["bias_free"]:
            module.bias = None
        config = getattr(self.base_model, "config", None)
        for flag, value in self._unmerge["flags"].items():
            setattr(config, flag, value)
        self.structure_data, self.merged, self._unmerge = self._unmerge["structure"], False, None

    def merge_and_unload(self) -> nn.Module:
        """Merge, then return the plain transformers model; refuses if a nonlinear module survived."""
        report = self.merge()
        if report.kept:
            raise ValueError(
                f"Cannot unload: {len(report.kept)} module(s) survived that cannot be folded into base weights "
                f"({', '.join(report.kept)}). The linear paths are merged in place; save_pretrained() keeps the "
                "rest as adapters beside the merged weights (`slaft export --merge` does both)."
            )
        return self.unload()

    def unload(self) -> nn.Module:
        """Remove every slaft module and hook; return the base model (weights as they are now)."""
        detach(self.base_model, self.blocks, self._handles)
        return self.base_model

    def training_log(self) -> dict[str, float]:
        """What ``SlaftCallback`` adds to the Trainer's logs: the structure's size (and the budget while searching)."""
        if self.search is not None:
            return {f"slaft/{key}": value for key, value in self.search.stats().items()}
        return {"slaft/kept_params": float(self.structure_data.num_params)}

    # Save / load -------------------------------------------------------------------------------------------------
    def payload(self) -> dict:
        config = self.base_model.config
        return {"structure": self.structure_data.to_dict(), "merged": self.merged,
                "num_labels": getattr(config, "num_labels", None),
                "id2label": {str(k): v for k, v in (getattr(config, "id2label", None) or {}).items()}}

    @classmethod
    def arguments_from_payload(cls, payload: dict) -> dict:
        if "tasks" in payload:
            raise AdapterLoadError("it holds a multi-task pool: load it with slaft.multitask.MultiTaskSlaftModel")
        structure = Structure.from_dict(payload["structure"])
        return {"structure": structure if payload.get("phase") == "discrete" else None}

    def restore(self, payload: dict) -> None:
        super().restore(payload)
        self.merged = bool(payload.get("merged"))


def get_slaft_model(model: nn.Module, config: SlaftConfig | None = None, structure: Structure | None = None
                    ) -> SlaftModel:
    """Build the candidate space of ``config`` into ``model`` (frozen) and return the trainable SlaftModel.

    The model works on its own copy of ``config`` (``model.slaft_config``, with the base model's name filled in):
    the caller's config is never changed.

    With a discrete ``structure`` (e.g. one learned on another run, or ``Structure.load(path)``), build exactly that
    structure instead, freshly initialised and without gates: a found architecture, trained from scratch.
    """
    if structure is not None and not structure.discrete:
        raise ValueError("Pass a discrete (learned) structure, e.g. model.structure() or model.discretize().")
    return SlaftModel(model, config or SlaftConfig(), structure)
