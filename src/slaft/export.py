"""Exporting a saved run: the compact adapter, or a merged checkpoint plain transformers loads, with a model card."""

from __future__ import annotations

import json
from pathlib import Path

from .inject import CONTAINER
from .io import CONFIG_NAME, AdapterLoadError, atomic_write_text
from .inference import EXPORT_NAME, load_directory
from .structure import Structure


FORMATS = ("slaft", "peft")


def model_card(payload: dict, structure: Structure, *, merged: bool, kept: list[str], peft: bool = False) -> str:
    """README.md of an export: base model, task and scores, the learned structure, and how to load it."""
    config = payload.get("config", {})
    base = config.get("base_model_name_or_path")
    lines = [f"# slaft export of `{base}` for {payload.get('task') or 'a task'}", "",
             "Trained with slaft (structure-learnable adapter fine-tuning): the structure below was learned, not "
             "chosen by hand.", ""]
    names = payload.get("id2label") or {}
    if names:
        lines += ["Classes: " + ", ".join(f"`{names[k]}`" for k in sorted(names, key=int)), ""]
    scores = payload.get("scores") or {}
    for split, metrics in scores.items():
        lines.append(f"- {split}: " + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    if scores:
        lines.append("")
    lines += ["## Learned structure", "", "```", str(structure), "```", ""]
    lines += ["## Loading", ""]
    if peft:
        lines += ["A peft LoRA adapter (`rank_pattern` and `alpha_pattern` carry the learned ranks):", "", "```python",
                  "from peft import PeftModel", "from transformers import AutoModelForSequenceClassification", "",
                  f'base = AutoModelForSequenceClassification.from_pretrained("{base}", num_labels=...)',
                  'model = PeftModel.from_pretrained(base, "PATH")', "```"]
    elif merged and not kept:
        lines += ["Every kept module was linear and is folded into the weights: this is a plain transformers "
                  "checkpoint.", "", "```python", "from transformers import pipeline", "",
                  'classify = pipeline("text-classification", model="PATH")', "```"]
    else:
        lines += [("Linear modules are folded into the weights. " if merged else "") +
                  f"{len(kept) if merged else structure.num_sites} module(s) stay slaft modules"
                  + (f" ({', '.join(kept)})" if merged else "") + ". `AutoModelForSequenceClassification."
                  "from_pretrained` alone loads " + ("the folded part only" if merged else "nothing of them") +
                  "; load the whole model with slaft:", "", "```python",
                  "from slaft.inference import load_directory", "", 'model, tokenizer, _ = load_directory("PATH")',
                  "```"]
    return "\n".join(lines) + "\n"


def export(directory: str | Path, out: str | Path, *, merge: bool = False, format: str = "slaft") -> str:
    """Compact: the decided adapter alone. Merged: linear paths folded into a full checkpoint (plus what stayed).
    ``format="peft"``: a peft LoRA adapter directory, when the structure is LoRA only."""
    if format not in FORMATS:
        raise AdapterLoadError(f"Unknown export format {format!r}; choose one of {FORMATS}.")
    if format == "peft" and merge:
        raise AdapterLoadError("--merge and --format peft exclude each other: a peft adapter stays unmerged.")
    if not (Path(directory) / CONFIG_NAME).is_file() and (Path(directory) / "config.json").is_file():
        raise AdapterLoadError(f"{directory} is already a plain model; there is nothing to export.")
    model, tokenizer, payload = load_directory(directory)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    extra = {key: payload.get(key) for key in ("task", "data", "max_length", "scores", "objective")}
    if format == "peft":
        from .peft_export import to_peft

        structure = model.discretize()
        to_peft(model).save_pretrained(out)
        atomic_write_text(out / "README.md", model_card(payload, structure, merged=False, kept=[], peft=True))
        return f"peft LoRA adapter: {structure.num_sites} modules, {structure.num_params:,} parameters -> {out}"
    if not merge:
        structure = model.discretize()
        model.save_pretrained(out, extra=extra)
        atomic_write_text(out / "README.md", model_card(payload, structure, merged=False, kept=[]))
        return f"compact adapter: {structure.num_sites} modules, {structure.num_params:,} parameters -> {out}"
    structure = model.discretize()
    report = model.merge()
    card = model_card(payload, structure, merged=True, kept=report.kept)
    if not report.kept:
        model.unload().save_pretrained(out)
        atomic_write_text(out / EXPORT_NAME, json.dumps({**extra, "merge": str(report)}, indent=2) + "\n")
        atomic_write_text(out / "README.md", card)
        return f"{report}\nplain transformers checkpoint -> {out}"
    base = model.base_model
    base.save_pretrained(out, state_dict={k: v for k, v in base.state_dict().items() if CONTAINER not in k.split(".")})
    model.save_pretrained(out, extra=extra)
    atomic_write_text(out / "README.md", card)
    return (f"{report}\nmerged checkpoint with the kept modules as slaft adapters -> {out}\nnote: plain "
            "transformers loads the folded part only; load the whole model with slaft.inference.load_directory")
