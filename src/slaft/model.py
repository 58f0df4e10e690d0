"""SlaftModel: a frozen transformers model with a learnable structure of adapters built into it."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .version import __version__
from .backbone import FrozenBackbone
from .config import ConfigError, SlaftConfig
from .discovery import DiscoveryError
from .inject import CONTAINER, attach, candidate_structure, detach, host_module, remove_module
from .io import AdapterLoadError, read_payload, read_tensors, write_adapter
from .merge import MergeReport, fold_low_rank, fold_serial, reloadable_bias
from .modules import LowRankUpdate
from .search import StructureSearch
from .sites import LORA, block_sites, site
from .structure import Structure

SEARCH_STATE = ("slaft_budget", "slaft_importance_updates")  # buffers a search-phase checkpoint must carry


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


def remove_from_optimizer(optimizer, params: list[nn.Parameter]) -> None:
    """Drop ``params`` (and their state) from a torch optimizer."""
    if optimizer is None or not params:
        return
    gone = {id(p) for p in params}
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if id(p) not in gone]
    for param in params:
        optimizer.state.pop(param, None)


class SlaftModel(FrozenBackbone):
    """A frozen base model plus slaft modules at the sites of a ``Structure``, hooked into its forward pass.

    While searching (``discrete`` False) the modules carry unit gates over the whole candidate space, and
    ``search`` (a ``StructureSearch``) drives them, one call per optimizer step from ``SlaftCallback``; once the
    structure is decided (``discretize``) only the kept units remain, as plain modules. Outputs are the base
    model's outputs: the stock ``transformers.Trainer`` trains it (with ``SlaftCallback``), and ``merge`` folds
    what is linear into the base weights.
    """

    def __init__(self, base_model: nn.Module, config: SlaftConfig, structure: Structure | None = None) -> None:
        super().__init__(base_model, config)
        for name in self.head_names:
            base_model.get_submodule(name).requires_grad_(True)
        config = self.slaft_config
        self.candidate = candidate_structure(self.blocks, config)
        self.discrete = structure is not None and structure.discrete
        self.structure_data = structure if structure is not None else self.candidate
        self._handles = attach(base_model, self.blocks, self.structure_data, config, gated=not self.discrete)
        self.target = None if self.discrete else config.resolve_target(self.backbone_params,
                                                                        self.candidate.num_params)
        self.register_buffer("slaft_budget", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("slaft_importance_updates", torch.tensor(0, dtype=torch.long))
        self.search = None if self.discrete else StructureSearch(self, config)
        self.merged = False  # True once linear paths were folded into the base weights
        self.decided_at_step: int | None = None  # the optimizer step at which a Trainer run decided the structure
        self._warned_undriven = False

    # Plumbing ----------------------------------------------------------------------------------------------------
    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.base_model, name)

    def structure_parameters(self) -> list[nn.Parameter]:
        """Gate and activation-choice logits (empty once the structure is decided)."""
        return self.search.structure_parameters() if self.search is not None else []

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
        masks = self.search.final_masks()
        return self.structure_with(lambda layer, site, _: masks[(layer, site)])

    @torch.no_grad()
    def discretize(self, optimizer=None) -> Structure:
        """Gates become decisions: shut modules are removed, the rest keep their kept units and trained weights.

        With the ``optimizer`` that trains the model, its state for kept entries is sliced along with them and
        removed parameters leave it, so training continues where it was. Returns the learned structure.
        """
        if self.discrete:
            return self.structure_data
        optimizer = getattr(optimizer, "optimizer", optimizer)  # the torch optimizer inside accelerate's wrapper
        masks = self.search.final_masks()
        learned = self.structure_with(lambda layer, site, _: masks[(layer, site)])
        removed = list(self.structure_parameters())
        for layer, name, module in list(self.slaft_modules()):
            removed += list(module.gate.parameters())  # the hard-concrete logits, if any
            keep = masks[(layer, name)]
            if keep.any():
                module.prune_(keep, optimizer)
            else:
                removed += list(module.parameters())
                remove_module(self.base_model, self.blocks, layer, name)
        remove_from_optimizer(optimizer, removed)
        self.search, self.target = None, None
        self.structure_data, self.discrete = learned, True
        return learned

    def parameter_summary(self) -> ParameterSummary:
        head = sum(p.numel() for n, p in self.base_model.named_parameters() if self.is_head(n))
        return ParameterSummary(self.backbone_params, head, self.candidate.num_params, self.structure().num_params)

    def print_trainable_parameters(self) -> None:
        trainable = sum(p.numel() for p in self.weight_parameters())
        total = sum(p.numel() for p in self.parameters())
        print(f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}")

    # Merge / unload ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def merge(self) -> MergeReport:
        """Fold every linear path into the base weights (decides the structure first). Returns what was folded."""
        self.discretize()
        report = MergeReport()
        modules = list(self.slaft_modules())
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
            report.folded.append(key)
        left = {(layer, name) for layer, name, _ in self.slaft_modules()}
        self.structure_data = Structure([m for m in self.structure_data.modules if (m.layer, m.site) in left], True,
                                        self.structure_data.num_layers)
        self.merged = True
        return report

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

    # Save / load -------------------------------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors that make this model what it is beyond its base: slaft modules (with gate state while
        searching) and the task head, named as in the base model; while searching also the search's buffers."""
        state = {name: tensor for name, tensor in self.base_model.state_dict().items()
                 if CONTAINER in name.split(".") or self.is_head(name)}
        if not self.discrete:
            state.update({name: getattr(self, name) for name in SEARCH_STATE})
        return state

    def save_pretrained(self, save_directory: str | os.PathLike, *, extra: dict | None = None) -> None:
        """``slaft_config.json`` + ``slaft_model.safetensors`` (surviving tensors only), both written atomically."""
        config = self.base_model.config
        payload = {
            "slaft_version": __version__,
            "config": self.slaft_config.to_dict(),
            "structure": self.structure_data.to_dict(),
            "candidate": self.candidate.to_dict(),
            "phase": "discrete" if self.discrete else "search",
            "merged": self.merged,
            "decided_at_step": self.decided_at_step,
            "heads": self.head_names,
            "num_labels": getattr(config, "num_labels", None),
            "id2label": {str(k): v for k, v in (getattr(config, "id2label", None) or {}).items()},
            "base_fingerprint": self.base_fingerprint(),
            **(extra or {}),
        }
        write_adapter(save_directory, self.adapter_state_dict(), payload)

    def load_adapter_weights(self, directory: str | os.PathLike, payload: dict | None = None) -> None:
        """Load saved tensors into a model of the same structure (checksum and fit checked first)."""
        payload = payload or read_payload(directory)
        state = read_tensors(directory, payload)
        expected = set(self.adapter_state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise AdapterLoadError(f"The tensors in {directory} do not fit their structure: missing "
                                   f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}.")
        for name in SEARCH_STATE:
            if name in state:
                getattr(self, name).copy_(state.pop(name))
        self.base_model.load_state_dict(state, strict=False)

    @classmethod
    def from_pretrained(cls, base_model: nn.Module, adapter_directory: str | os.PathLike, *,
                        check_base: bool = True) -> "SlaftModel":
        """Rebuild the saved structure into ``base_model`` and load its tensors (safetensors only, never pickle)."""
        directory = Path(adapter_directory)
        payload = read_payload(directory)
        try:
            config = SlaftConfig.from_dict(payload["config"])
            structure = Structure.from_dict(payload["structure"])
        except (KeyError, TypeError, ValueError) as err:
            raise AdapterLoadError(f"{directory} holds no valid slaft adapter config ({err}).") from err
        try:
            model = cls(base_model, config, structure if payload.get("phase") == "discrete" else None)
        except (ConfigError, DiscoveryError) as err:
            raise AdapterLoadError(f"The adapter in {directory} does not fit this base model: {err}") from err
        saved = Structure.from_dict(payload["candidate"]) if "candidate" in payload else None
        if saved is not None and not saved.fits(model.candidate):
            raise AdapterLoadError(f"The adapter in {directory} does not fit this base model: it was built on blocks "
                                   "whose linears differ from this model's (another architecture or size).")
        if check_base and payload.get("base_fingerprint") and model.base_fingerprint() != payload["base_fingerprint"]:
            raise AdapterLoadError(
                f"The adapters in {directory} were trained on a different base model (base recorded: "
                f"{config.base_model_name_or_path!r}). Load them onto the model they were trained on."
            )
        model.load_adapter_weights(directory, payload)
        model.merged = bool(payload.get("merged"))
        model.decided_at_step = payload.get("decided_at_step")
        return model


def get_slaft_model(model: nn.Module, config: SlaftConfig | None = None, structure: Structure | None = None
                    ) -> SlaftModel:
    """Build the candidate space of ``config`` into ``model`` (frozen) and return the trainable SlaftModel.

    With a discrete ``structure`` (e.g. one learned on another run, or ``Structure.load(path)``), build exactly that
    structure instead, freshly initialised and without gates: a found architecture, trained from scratch.
    """
    if structure is not None and not structure.discrete:
        raise ValueError("Pass a discrete (learned) structure, e.g. model.structure() or model.discretize().")
    return SlaftModel(model, config or SlaftConfig(), structure)
