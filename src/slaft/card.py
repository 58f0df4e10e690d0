"""The model card (README.md) of an adapter directory, built with huggingface_hub's ``ModelCard``/``ModelCardData``
from the payload ``save_pretrained`` writes: the base model, tags, and the structure that was kept (parameters,
sites, the layers x sites table). A README.md that slaft did not write is never replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

from .io import atomic_write_text
from .sites import LORA
from .structure import Structure

CARD_NAME = "README.md"
MARKER = "<!-- slaft: this card is rewritten by save_pretrained; delete this line to keep your edits -->"


def _hub_base_model(name: str | None) -> str | None:
    """The base model as the hub's ``base_model`` metadata wants it: a hub id, never a local path."""
    if not name:
        return None
    from huggingface_hub.utils import validate_repo_id

    from .hub import looks_local

    if looks_local(name) or Path(name).expanduser().exists():
        return None
    try:
        validate_repo_id(name)
    except ValueError:
        return None
    return name if "/" in name else None  # a bare name is a packaged short name (e.g. "minilm"), not a repo


def model_card(payload: dict):
    """A ``huggingface_hub.ModelCard`` describing the adapter whose saved payload is ``payload``."""
    from huggingface_hub import ModelCard, ModelCardData

    config = payload.get("config") or {}
    base = config.get("base_model_name_or_path")
    structure = Structure.from_dict(payload["structure"]) if "structure" in payload else None
    candidate = Structure.from_dict(payload["candidate"]) if "candidate" in payload else None
    tasks = [task.get("name") for task in payload.get("tasks") or ()]
    tags = ["slaft", "adapter", "lora" if structure and any(m.kind == LORA for m in structure.modules) else None,
            "multi-task" if tasks else None, "merged" if payload.get("merged") else None]
    data = ModelCardData(library_name="slaft", base_model=_hub_base_model(base),
                         tags=[tag for tag in tags if tag])
    lines = [MARKER, "", "# slaft adapter", "",
             f"Structure-learnable adapters for `{base or 'an unrecorded base model'}`"
             + (f" ({payload['base_model_class']})" if payload.get("base_model_class") else "") + ", saved by slaft "
             f"{payload.get('slaft_version', '?')}.", ""]
    phase = payload.get("phase")
    lines.append(f"- phase: {'structure decided' if phase == 'discrete' else 'structure still searching'}")
    if structure is not None:
        lines.append(f"- kept parameters: {structure.num_params:,} in {structure.num_sites} modules"
                     + (f" (of a candidate space of {candidate.num_params:,})" if candidate else ""))
        lines.append(f"- sites: {', '.join(structure.sites()) or 'none'}")
    if payload.get("merged"):
        lines.append("- merged: the linear modules are folded into the base weights; the table lists what is left")
    if tasks:
        lines.append(f"- tasks: {', '.join(tasks)}")
    if payload.get("num_labels") and not tasks:
        lines.append(f"- labels: {payload['num_labels']}")
    if structure is not None:
        lines += ["", "## Structure (layers x sites)", "", "```", structure.table(), "```"]
    lines += ["", "## Use", "", "```python", "import slaft", "",
              'model = slaft.AutoSlaftModel.from_pretrained("THIS_REPO_OR_DIRECTORY")', "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def write_card(directory: str | os.PathLike, payload: dict) -> bool:
    """Write the card as ``directory/README.md`` unless a README.md that slaft did not write is there; returns whether
    it was written."""
    path = Path(directory) / CARD_NAME
    if path.is_file() and MARKER not in path.read_text(encoding="utf-8", errors="replace"):
        return False
    atomic_write_text(path, str(model_card(payload)))
    return True
