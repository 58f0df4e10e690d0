"""``AutoSlaftModel``: an adapter loaded from its directory or hub id alone, onto the base model its config names.

``save_pretrained`` records the base model (``config.base_model_name_or_path``: a hub id, a local path or one of
slaft's packaged short names such as ``"minilm"``), the transformers class it was (``base_model_class``, e.g.
``BertForSequenceClassification``) and its label count; this module loads that base and then the adapter onto it.
"""

from __future__ import annotations

import os

from .hub import resolve_adapter
from .io import AdapterLoadError, read_payload
from .loading import PACKAGED_MODELS, ModelLoadError, load_model_and_tokenizer, resolve_model_path
from .model import SlaftModel

MULTITASK_BASE_LABELS = 2  # the label count a multi-task pool's base is loaded with (its routers replace the head)


def _is_causal(payload: dict) -> bool:
    name = payload.get("base_model_class") or ""
    return name.endswith("ForCausalLM") or (not name and payload.get("objective") == "causal-lm")


def _num_labels(payload: dict) -> int | None:
    return MULTITASK_BASE_LABELS if "tasks" in payload else payload.get("num_labels")


def model_class(payload: dict):
    """The transformers class of the saved base model: the recorded one, else (adapters saved before it was
    recorded) the sequence-classification or causal-LM auto class."""
    import transformers

    name = payload.get("base_model_class")
    if name:
        found = getattr(transformers, name, None)
        if found is None:
            raise AdapterLoadError(f"The adapter was saved on a {name}, which transformers "
                                   f"{transformers.__version__} does not have (custom code?). Load the base model "
                                   "yourself and pass it to SlaftModel.from_pretrained(base_model, adapter).")
        return found
    return transformers.AutoModelForCausalLM if _is_causal(payload) else \
        transformers.AutoModelForSequenceClassification


def load_base_model(payload: dict, name_or_path: str | None = None, **kwargs):
    """The base model the adapter ``payload`` was saved on (or ``name_or_path`` instead of the recorded one), with the
    label count and label names it was trained with; ``kwargs`` go to ``from_pretrained`` (``dtype``,
    ``revision``, ``trust_remote_code``...)."""
    name = name_or_path or (payload.get("config") or {}).get("base_model_name_or_path")
    if not name:
        raise AdapterLoadError("The adapter's config records no base model. Pass base_model_name_or_path=..., or "
                               "load the base yourself and call SlaftModel.from_pretrained(base_model, adapter).")
    labels = _num_labels(payload)
    if name in PACKAGED_MODELS:  # slaft's own loader knows how these are stored (a GGUF file, for one)
        model, _ = load_model_and_tokenizer(name, labels or 2, causal_lm=_is_causal(payload),
                                            trust_remote_code=kwargs.get("trust_remote_code", False),
                                            **({"dtype": kwargs["dtype"]} if "dtype" in kwargs else {}))
        return model
    path, extra = resolve_model_path(name)
    if labels is not None and not _is_causal(payload):
        extra["num_labels"] = labels
        names = payload.get("id2label") or {}
        if names and "tasks" not in payload and len(names) == labels:
            extra["id2label"] = {int(k): v for k, v in names.items()}
            extra["label2id"] = {v: int(k) for k, v in names.items()}
        extra["ignore_mismatched_sizes"] = True  # the adapter carries the trained head
    cls = model_class(payload)
    try:
        model = cls.from_pretrained(path, **extra, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"Could not load the base model {name!r} the adapter was saved on ({err}). Pass "
                             "base_model_name_or_path= with where it is now.") from err
    if payload.get("pad_token_id") is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = payload["pad_token_id"]
    return model


class AutoSlaftModel:
    """Loads a saved slaft adapter without its base model at hand: ``AutoSlaftModel.from_pretrained(id_or_dir)``
    builds the base model the adapter's config names and returns the ``SlaftModel`` (or, for a multi-task pool,
    ``MultiTaskSlaftModel``) on it."""

    @classmethod
    def from_pretrained(cls, adapter_dir_or_hub_id: str | os.PathLike, *, base_model_name_or_path: str | None = None,
                        revision: str | None = None, token: str | bool | None = None, check_base: bool = True,
                        **kwargs):
        """The adapter in a directory (or hub repository: downloaded into the hub cache, read from there alone under
        ``HF_HUB_OFFLINE=1``) on its recorded base model. ``base_model_name_or_path`` replaces the recorded base
        (e.g. where it was moved); ``revision`` and ``token`` are the adapter repository's; other keywords go to the
        base model's ``from_pretrained`` (``dtype``, ``device_map``, ``trust_remote_code``...)."""
        directory = resolve_adapter(adapter_dir_or_hub_id, revision=revision, token=token)
        payload = read_payload(directory)
        base = load_base_model(payload, base_model_name_or_path, **kwargs)
        if "tasks" in payload:
            from .multitask.model import MultiTaskSlaftModel

            return MultiTaskSlaftModel.from_pretrained(base, directory, check_base=check_base)
        return SlaftModel.from_pretrained(base, directory, check_base=check_base)
