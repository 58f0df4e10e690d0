"""SlaftModel: a frozen transformers model with a learnable structure of adapters built into it.

The sparsity objective is added to ``outputs.loss`` inside ``forward`` (as AdaLoRA does), and the schedules advance
by themselves, so the stock ``transformers.Trainer`` trains it; ``SlaftTrainer`` adds parameter groups, exact step
counts and logging on top.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .architectures import find_heads, find_layers, resolve_architecture
from .config import SlaftConfig
from .gates import STRUCTURE_MODULE_TYPES, GumbelChoice, annealed_temperature, warmup_ramp
from .inject import CONTAINER, attach, candidate_structure, detach, iter_modules
from .modules import BottleneckAdapter
from .structure import ModuleSpec, Structure

DEFAULT_SEARCH_STEPS = 1000
PARAMS_UNIT = 1e6  # the sparsity weight is loss per million expected parameters


@dataclass
class ParameterSummary:
    backbone: int     # pretrained parameters, frozen
    head: int         # task head, trained
    candidate: int    # the whole candidate space
    expected: float   # E[kept] under the current gates
    kept: int         # kept if discretized now (or kept, once discrete)

    def __str__(self) -> str:
        return (
            f"backbone {self.backbone:,} (frozen) | head {self.head:,} | candidate adapters {self.candidate:,} | "
            f"expected now {self.expected:,.0f} | kept {self.kept:,} "
            f"({100 * self.kept / max(self.candidate, 1):.1f}% of candidate, "
            f"{100 * self.kept / max(self.backbone, 1):.2f}% of backbone)"
        )


class NonFiniteError(FloatingPointError):
    """Training produced NaN or inf; the message says where and what to do."""


def _reversed_gradient(x: torch.Tensor) -> torch.Tensor:
    """Value x, gradient -dL/dx: the optimizer then does gradient *ascent* on Lagrange multipliers."""
    return 2 * x.detach() - x


class SlaftModel(nn.Module):
    def __init__(self, base_model: nn.Module, config: SlaftConfig, structure: Structure | None = None) -> None:
        super().__init__()
        self.base_model = base_model
        self.slaft_config = config
        self.arch = resolve_architecture(base_model, config.architecture)
        config.architecture = self.arch.name
        if config.base_model_name_or_path is None:
            config.base_model_name_or_path = getattr(getattr(base_model, "config", None), "_name_or_path", None)
        for param in base_model.parameters():
            param.requires_grad_(False)
        self.head_names = find_heads(base_model, self.arch)
        for name in self.head_names:
            base_model.get_submodule(name).requires_grad_(True)
        self.candidate = candidate_structure(base_model, self.arch, config)
        self.structure_data = structure or self.candidate
        self.discrete = self.structure_data.discrete
        self._handles = attach(base_model, self.arch, self.structure_data, config, gated=not self.discrete)
        self.backbone_params = sum(
            p.numel() for n, p in base_model.named_parameters() if CONTAINER not in n and not self._is_head(n)
        )
        self.target = config.resolve_target(self.backbone_params, self.candidate.num_params)
        if self.target is not None:
            self.slaft_lagrangian = nn.Parameter(torch.zeros(2))
        self.schedule_step = 0
        self.schedule_driven = False  # True once a Trainer callback sets steps itself
        self.total_steps = config.search_steps
        self.last_stats: dict[str, float] = {}
        self.merged = False  # True once linear paths were folded into the base weights

    # Plumbing ----------------------------------------------------------------------------------------------------
    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.base_model, name)

    def _is_head(self, name: str) -> bool:
        return any(name == h or name.startswith(h + ".") for h in self.head_names)

    @property
    def config(self):
        """The base model's transformers config (what Trainer and generation code expect)."""
        return self.base_model.config

    def slaft_modules(self):
        return iter_modules(self.base_model, self.arch)

    def structure_parameters(self) -> list[nn.Parameter]:
        params = [p for m in self.modules() if isinstance(m, STRUCTURE_MODULE_TYPES) for p in m.parameters()]
        return params + ([self.slaft_lagrangian] if self.target is not None else [])

    def weight_parameters(self) -> list[nn.Parameter]:
        structure = {id(p) for p in self.structure_parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in structure]

    # Schedules ---------------------------------------------------------------------------------------------------
    def set_schedule(self, step: int, total_steps: int | None = None) -> None:
        """Called by SlaftCallback at each optimizer step; without it, forward passes count the steps."""
        self.schedule_driven = True
        self.schedule_step = int(step)
        if total_steps and self.slaft_config.search_steps is None:
            self.total_steps = int(total_steps)

    def _total(self) -> int:
        if self.total_steps is None:
            warnings.warn(
                f"slaft: schedule length unknown; using {DEFAULT_SEARCH_STEPS} steps. Set SlaftConfig.search_steps "
                "or train with SlaftTrainer/SlaftCallback.", stacklevel=3,
            )
            self.total_steps = DEFAULT_SEARCH_STEPS
        return self.total_steps

    def temperature(self) -> float:
        c = self.slaft_config
        return annealed_temperature(self.schedule_step, self._total(), c.tau_start, c.tau_end)

    # Objective ---------------------------------------------------------------------------------------------------
    def expected_params(self) -> torch.Tensor:
        values = [m.expected_params() for _, _, m in self.slaft_modules()]
        return torch.stack(values).sum() if values else torch.zeros(())

    def sparsity_loss(self) -> torch.Tensor:
        """λ·E[params]/1e6, or in budget mode the Lagrangian λ1·d + λ2·d², d = (E - T_t) / T (Xia et al. 2022)."""
        c = self.slaft_config
        ramp = warmup_ramp(self.schedule_step, self._total(), c.penalty_warmup_ratio)
        expected = self.expected_params()
        stats = {"expected_params": float(expected.detach()), "tau": self.temperature(), "penalty_ramp": ramp}
        if self.target is None:
            loss = c.sparsity_weight * ramp * expected / PARAMS_UNIT
        else:
            # The target itself ramps from the full candidate space down to the budget.
            current_target = self.candidate.num_params - ramp * (self.candidate.num_params - self.target)
            gap = (expected - current_target) / self.target
            lam = _reversed_gradient(self.slaft_lagrangian)
            loss = lam[0] * gap + lam[1] * gap**2
            stats.update(target_now=current_target, lambda_1=float(lam[0].detach()), lambda_2=float(lam[1].detach()))
        stats["sparsity_loss"] = float(loss.detach())
        self.last_stats = stats
        return loss

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        kwargs.pop("num_items_in_batch", None)  # Trainer's loss-normalisation hint; the base models' losses ignore it
        searching = self.training and not self.discrete
        if searching:
            tau = self.temperature()
            for module in self.modules():
                if isinstance(module, GumbelChoice):
                    module.tau = tau
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                  "labels": labels}
        outputs = self.base_model(**{k: v for k, v in inputs.items() if v is not None}, **kwargs)
        loss = getattr(outputs, "loss", None)
        if loss is not None and self.training and not torch.isfinite(loss.detach()).all():
            raise NonFiniteError(f"The task loss is {float(loss.detach())} at step {self.schedule_step}: the model or "
                                 "the data produced NaN/inf. Lower the learning rate, check the labels, and resume.")
        if searching and loss is not None:
            outputs.loss = loss + self.sparsity_loss()
        if searching and not self.schedule_driven:
            self.schedule_step += 1
        return outputs

    # Structure ---------------------------------------------------------------------------------------------------
    def _decisions(self) -> dict[tuple[int, str], torch.Tensor]:
        """Surviving-unit masks per module.

        With a sparsity weight, the gates decide alone. In budget mode the budget decides how much survives and the
        gates decide what: units are taken in order of P(keep) (module gate times unit gate) while they fit, so the
        structure lands at the budget even when a short or noisy search closed more gates than it should have (or
        fewer). A unit taken back from a closed gate has gate value 0 folded into its output weights, so the
        discrete model computes what the gated one did, and the fine-tune trains the unit from zero, as LoRA starts.
        """
        if self.target is None or self.discrete:
            return {(i, s): m.decided_units().cpu() for i, s, m in self.slaft_modules()}
        modules = {(i, s): m for i, s, m in self.slaft_modules()}
        masks = {key: torch.zeros(m.units, dtype=torch.bool) for key, m in modules.items()}
        costs = {key: m.unit_and_fixed_cost() for key, m in modules.items()}
        candidates = []
        for order, (key, module) in enumerate(modules.items()):
            with torch.no_grad():
                score = (module.module_gate.prob_nonzero() * module.unit_gate.prob_nonzero()).cpu()
            candidates += [(-float(score[u]), order, u, key) for u in range(module.units)]
        total = 0
        for _, _, unit, key in sorted(candidates):
            unit_cost, fixed = costs[key]
            cost = unit_cost + (0 if masks[key].any() else fixed)
            if total + cost <= self.target:
                masks[key][unit] = True
                total += cost
        return masks

    def structure(self) -> Structure:
        """The structure the gates decide on now (the learned one once discrete), as data."""
        return self.structure_data if self.discrete else self._structure_from(self._decisions())

    def _structure_from(self, masks: dict[tuple[int, str], torch.Tensor]) -> Structure:
        modules = []
        for layer, site, module in self.slaft_modules():
            spec = self.candidate.get(layer, site)
            width = int(masks[(layer, site)].sum())
            if width == 0:
                continue
            acts = (module.chosen_activation(),) if isinstance(module, BottleneckAdapter) else ()
            modules.append(ModuleSpec(layer, site, width, spec.in_features, spec.out_features, acts))
        return Structure(modules=modules, discrete=True, num_layers=self.candidate.num_layers)

    @torch.no_grad()
    def discretize(self) -> Structure:
        """Gates become decisions: closed modules are removed, the rest shrink to their surviving units."""
        if self.discrete:
            return self.structure_data
        masks = self._decisions()
        learned = self._structure_from(masks)
        blocks = find_layers(self.base_model, self.arch)
        for layer, site, module in list(self.slaft_modules()):
            container = getattr(blocks[layer], CONTAINER)
            mask = masks[(layer, site)]
            module.unit_gate.close(~mask)  # the gated model at evaluation now equals the discrete one
            smaller = module.shrink(mask.to(module.unit_gate.log_alpha.device))
            if smaller is None:
                del container[site]
            else:
                container[site] = smaller
        if self.target is not None:
            del self.slaft_lagrangian
            self.target = None
        self.structure_data, self.discrete = learned, True
        return learned

    def parameter_summary(self) -> ParameterSummary:
        head = sum(p.numel() for n, p in self.base_model.named_parameters() if self._is_head(n))
        with torch.no_grad():
            expected = float(self.expected_params())
        return ParameterSummary(self.backbone_params, head, self.candidate.num_params, expected,
                                self.structure().num_params)

    def print_trainable_parameters(self) -> None:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        print(f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}")

    # Merge / unload / save ---------------------------------------------------------------------------------------
    def merge(self):
        """Fold every linear path into the base weights (discretizes first). Returns a MergeReport."""
        from .merge import merge_linear_paths

        self.discretize()
        return merge_linear_paths(self)

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
        detach(self.base_model, self.arch, self._handles)
        return self.base_model

    def save_pretrained(self, save_directory: str, **kwargs) -> None:
        from .io import save_slaft

        save_slaft(self, save_directory, **kwargs)

    @classmethod
    def from_pretrained(cls, base_model: nn.Module, adapter_directory: str, **kwargs) -> "SlaftModel":
        from .io import load_slaft

        return load_slaft(base_model, adapter_directory, **kwargs)


def get_slaft_model(model: nn.Module, config: SlaftConfig | None = None, structure: Structure | None = None
                    ) -> SlaftModel:
    """Build the candidate space of ``config`` into ``model`` (frozen) and return the trainable SlaftModel.

    With a discrete ``structure`` (e.g. one learned on another run, or ``Structure.load(path)``), build exactly that
    structure instead, freshly initialised and without gates: a found architecture, re-trained from scratch.
    """
    if structure is not None and not structure.discrete:
        raise ValueError("Pass a discrete (learned) structure, e.g. model.structure() or model.discretize().")
    return SlaftModel(model, config or SlaftConfig(), structure)
