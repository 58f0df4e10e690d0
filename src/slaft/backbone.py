"""What every slaft model shares: a frozen transformers model, its blocks (found by ``discovery.py``) and task heads,
the slaft modules hooked into it, the search that drives them (``search.py``), and what is built on them: parameter
groups, fingerprint, structure read-out, and the adapter directory (``io.py``) written and read back.

``SlaftModel`` (one task) and ``MultiTaskSlaftModel`` (several tasks over one pool) are both a ``FrozenBackbone``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .card import write_card
from .config import ConfigError, SlaftConfig, closest
from .discovery import DiscoveryError, find_blocks, find_heads
from .hub import push_model, resolve_adapter
from .inject import CONTAINER, iter_modules, set_enabled
from .io import AdapterLoadError, fingerprint, read_payload, read_tensors, write_adapter
from .modules import BottleneckAdapter
from .search import STATE_NAME
from .structure import ModuleSpec, Structure
from .version import __version__


def enable_gradient_checkpointing(base_model: nn.Module, gradient_checkpointing_kwargs: dict | None = None) -> None:
    """The base model's gradient checkpointing, non-reentrant by default: with transformers' reentrant default and a
    frozen embedding layer, no gradient would reach the adapters inside checkpointed blocks. A caller who asks for
    the reentrant variant gets input embeddings that require grad, which makes it work too."""
    kwargs = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
    base_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if kwargs["use_reentrant"]:
        base_model.enable_input_require_grads()


def task_heads(model: nn.Module, extra: tuple[str, ...] = ()) -> list[str]:
    """The modules that train fully and are saved with the adapters: the model's task head (``find_heads``) and the
    ``modules_to_save`` a config names, which must exist."""
    names = {name for name, _ in model.named_modules()}
    missing = [name for name in extra if name not in names]
    if missing:
        raise ConfigError(f"modules_to_save names {missing}, which the model does not have."
                          f"{closest(missing[0], sorted(n for n in names if n))} Use paths as print(model) shows them.")
    return list(dict.fromkeys(find_heads(model) + list(extra)))


class FrozenBackbone(nn.Module):
    """A frozen ``base_model`` with its blocks and its task heads found (not yet trainable: each
    subclass decides which head parts train). ``backbone_params`` counts what stays frozen."""

    # The base models' task losses are means over the batch: the Trainer must not rescale them as if they were sums
    # over ``num_items_in_batch`` (it does so for models whose forward takes **kwargs, doubling gradients under DDP).
    accepts_loss_kwargs = False
    search = None  # a StructureSearch while the structure is searched, None once it is decided
    adapter_kind = "adapter"  # what a saved directory of this class is called in messages
    hold_idle_units = False  # SlaftCallback: entries a step's batch does not train keep their values (multi-task)

    def __init__(self, base_model: nn.Module, config: SlaftConfig) -> None:
        super().__init__()
        self.base_model, self.slaft_config = base_model, config
        self.blocks = find_blocks(base_model, config.block_lists, config.split_fused)
        if config.base_model_name_or_path is None:  # a copy: the caller's config stays as it was
            config = dataclasses.replace(config, base_model_name_or_path=getattr(
                getattr(base_model, "config", None), "_name_or_path", None))
            self.slaft_config = config
        base_model.requires_grad_(False)
        self.head_names = task_heads(base_model, config.modules_to_save or ())
        self.backbone_params = sum(p.numel() for n, p in base_model.named_parameters()
                                   if CONTAINER not in n and not self.is_head(n))

    @property
    def config(self):
        """The base model's transformers config (what Trainer and generation code expect)."""
        return self.base_model.config

    def is_head(self, name: str) -> bool:
        """True for a parameter name (relative to the base model) inside a task head."""
        return any(name == h or name.startswith(h + ".") for h in self.head_names)

    def slaft_modules(self):
        """(layer, site, module) of every slaft module now in the model."""
        return iter_modules(self.base_model, self.blocks)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        enable_gradient_checkpointing(self.base_model, gradient_checkpointing_kwargs)

    def structure_parameters(self) -> list[nn.Parameter]:
        """Gate and activation-choice logits, trained at ``structure_lr`` (none once the structure is decided)."""
        return self.search.structure_parameters() if self.search is not None else []

    def weight_parameters(self) -> list[nn.Parameter]:
        """Adapter weights and the task head: what the optimizer trains at the main learning rate."""
        skip = {id(p) for p in self.structure_parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in skip]

    def base_fingerprint(self) -> str:
        """A hash of the frozen backbone: saved adapters refuse to load onto another base."""
        return fingerprint((n, p) for n, p in self.base_model.named_parameters()
                           if CONTAINER not in n and not self.is_head(n))

    @staticmethod
    def model_inputs(inputs: dict, kwargs: dict) -> dict:
        """The base model's inputs: the named ones given, and any other keyword (the Trainer's loss-normalisation
        hint, which base models do not take, dropped)."""
        kwargs.pop("num_items_in_batch", None)
        return {**{k: v for k, v in inputs.items() if v is not None}, **kwargs}

    def structure_with(self, kept: Callable[[int, str, nn.Module], torch.Tensor]) -> Structure:
        """The decided structure that keeps, of each module now in the model, the components ``kept(layer, site,
        module)`` marks (a bool tensor over its ranks / hidden units)."""
        modules = []
        for layer, site, module in self.slaft_modules():
            width = int(kept(layer, site, module).sum())
            if width:
                spec = self.candidate.get(layer, site)
                acts = (module.chosen_activation(),) if isinstance(module, BottleneckAdapter) else ()
                modules.append(ModuleSpec(layer, site, width, spec.in_features, spec.out_features, acts, spec.host))
        return Structure(modules=modules, discrete=True, num_layers=self.candidate.num_layers)

    # Save / load -------------------------------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors that make this model what it is beyond its base: slaft modules (with gate state while
        searching) and the task heads, named as in the base model; while searching also the search's state."""
        state = {name: tensor for name, tensor in self.base_model.state_dict().items()
                 if CONTAINER in name.split(".") or self.is_head(name)}
        if self.search is not None:
            state.update({f"{STATE_NAME}.{n}": t for n, t in self.search.state.state_dict().items()})
        return state

    def payload(self) -> dict:
        """What the subclass records in the adapter config beyond what every slaft model records."""
        return {}

    def save_pretrained(self, save_directory: str | os.PathLike, *, extra: dict | None = None) -> None:
        """``slaft_config.json`` + ``slaft_model.safetensors`` (surviving tensors only), both written atomically, and
        a model card as ``README.md`` (unless a README.md slaft did not write is there). The config records the
        base model (name or path, and its transformers class) so ``AutoSlaftModel`` can rebuild it."""
        payload = {
            "slaft_version": __version__, "config": self.slaft_config.to_dict(), "candidate": self.candidate.to_dict(),
            "phase": "discrete" if self.discrete else "search", "decided_at_step": self.decided_at_step,
            "heads": self.head_names, "base_fingerprint": self.base_fingerprint(),
            "base_model_class": type(self.base_model).__name__,
            "pad_token_id": getattr(getattr(self.base_model, "config", None), "pad_token_id", None),
            **self.payload(), **(extra or {}),
        }
        write_adapter(save_directory, self.adapter_state_dict(), payload)
        write_card(save_directory, payload)

    def push_to_hub(self, repo_id: str, *, tokenizer=None, private: bool | None = None,
                    token: str | bool | None = None, revision: str | None = None, create_pr: bool = False,
                    commit_message: str = "Upload slaft adapter"):
        """Save the adapter (with its model card, and ``tokenizer`` when given) and upload it to the hub model
        repository ``repo_id``, created if missing. Load it back with ``AutoSlaftModel.from_pretrained(repo_id)``
        or ``from_pretrained(base_model, repo_id)``. Returns huggingface_hub's ``CommitInfo``."""
        return push_model(self, repo_id, tokenizer=tokenizer, private=private, token=token, revision=revision,
                          create_pr=create_pr, commit_message=commit_message)

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Inside ``with model.disable_adapter():`` every slaft module is bypassed, so the model computes what its
        frozen base model computes (task heads, which slaft trains in place, stay as trained); on leaving, the
        modules are back. A merged model refuses: its base weights hold the modules (``unmerge()`` first)."""
        if getattr(self, "merged", False):
            raise RuntimeError("disable_adapter() cannot bypass modules merged into the base weights: call "
                               "model.unmerge() first, or use the model as it is.")
        set_enabled(self.base_model, self.blocks, False)
        try:
            yield
        finally:
            set_enabled(self.base_model, self.blocks, True)

    def load_adapter_weights(self, directory: str | os.PathLike, payload: dict | None = None) -> None:
        """Load saved tensors into a model of the same structure (checksum and fit checked first)."""
        payload = payload or read_payload(directory)
        state = read_tensors(directory, payload)
        expected = set(self.adapter_state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if "slaft_budget" in unexpected:
            raise AdapterLoadError(f"{directory} is a checkpoint written during the structure search by slaft "
                                   f"{payload.get('slaft_version', '0.2')}, whose search state this version does not "
                                   "read: finish that run with the version that started it, or train again.")
        if missing or unexpected:
            raise AdapterLoadError(f"The tensors in {directory} do not fit their structure: missing "
                                   f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}.")
        prefix = STATE_NAME + "."
        search_state = {n[len(prefix):]: state.pop(n) for n in list(state) if n.startswith(prefix)}
        if search_state:
            self.search.state.load_state_dict(search_state)
            self.search.set_task(self.search.active)
        self.base_model.load_state_dict(state, strict=False)

    @classmethod
    def arguments_from_payload(cls, payload: dict) -> dict:
        """The constructor's arguments beyond base model and config, read from a saved payload."""
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, base_model: nn.Module, adapter_directory: str | os.PathLike, *,
                        check_base: bool = True, revision: str | None = None, token: str | bool | None = None):
        """Rebuild the saved structure into ``base_model`` and load its tensors (safetensors only, never pickle).

        ``adapter_directory`` is a directory ``save_pretrained`` wrote or a hub id (``owner/name``; downloaded once
        into the hub cache, which is all that is read under ``HF_HUB_OFFLINE=1``; ``revision`` and ``token`` are the
        hub's)."""
        directory = resolve_adapter(adapter_directory, revision=revision, token=token)
        payload = read_payload(directory)
        try:
            config = SlaftConfig.from_dict(payload["config"])
            arguments = cls.arguments_from_payload(payload)
        except (KeyError, TypeError, ValueError) as err:
            raise AdapterLoadError(f"{directory} holds no valid slaft {cls.adapter_kind} config ({err}).") from err
        try:
            model = cls(base_model, config, **arguments)
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
        model.restore(payload)
        return model

    def restore(self, payload: dict) -> None:
        """What a loaded model takes from its payload beyond tensors."""
        self.decided_at_step = payload.get("decided_at_step")
