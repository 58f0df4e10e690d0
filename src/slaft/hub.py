"""The Hugging Face Hub: where an adapter lives (a local directory or a hub repository), and pushing one there.

Downloads go through ``huggingface_hub.snapshot_download``, so they are cached (``HF_HUB_CACHE``), honour
``HF_HUB_OFFLINE`` (then only the cache is read) and ``HF_ENDPOINT``; uploads through ``HfApi.create_repo`` and
``HfApi.upload_folder``. Nothing here knows the adapter format beyond "a directory that ``save_pretrained`` wrote".
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .io import AdapterLoadError


def looks_local(location: str) -> bool:
    """True for something that can only be a path: it starts with ``.``, ``/`` or ``~``, or has more than one
    ``/`` (a hub id is ``name`` or ``owner/name``)."""
    return location.startswith((".", "/", "~")) or location.count("/") > 1 or os.sep != "/" and os.sep in location


def resolve_adapter(location: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None,
                    cache_dir: str | os.PathLike | None = None) -> Path:
    """The local directory of the adapter at ``location``: the directory itself when it is one, otherwise the
    snapshot of the hub repository ``location`` names (downloaded once, then read from the cache; only the cache
    when ``HF_HUB_OFFLINE=1``). Raises ``AdapterLoadError`` saying what to do when it is neither."""
    path = Path(location).expanduser()
    if path.is_dir():
        return path
    text = str(location)
    if looks_local(text) or path.exists():
        what = "a file, not a directory" if path.exists() else "no such directory"
        raise AdapterLoadError(f"{text} is not a slaft adapter directory ({what}): pass the directory "
                               "save_pretrained wrote, or a hub id such as 'owner/name'.")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id=text, revision=revision, token=token, cache_dir=cache_dir))
    except HFValidationError as err:
        raise AdapterLoadError(f"{text!r} is neither a local directory nor a valid hub id ({err}). Check the "
                               "path, or pass a hub id such as 'owner/name'.") from err
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise AdapterLoadError(f"{text!r} is not a local directory, and the hub has no repository {text!r} that "
                               "this token can read. Check the spelling, or log in (`hf auth login`, or pass "
                               "token=) for a private or gated repository.") from err
    except RevisionNotFoundError as err:
        raise AdapterLoadError(f"The hub repository {text!r} has no revision {revision!r}: pass an existing "
                               "branch, tag or commit.") from err
    except LocalEntryNotFoundError as err:
        if constants.HF_HUB_OFFLINE:
            raise AdapterLoadError(f"{text!r} is not a local directory, and HF_HUB_OFFLINE is set while the hub "
                                   f"cache ({cache_dir or constants.HF_HUB_CACHE}) holds no copy of it. Download it "
                                   "once online (unset HF_HUB_OFFLINE), or pass the adapter's directory.") from err
        raise AdapterLoadError(f"{text!r} is not a local directory, and the hub ({constants.ENDPOINT}) could not "
                               f"be reached to download it ({err}). Check the network (or HF_ENDPOINT), or pass "
                               "the adapter's directory.") from err
    except HfHubHTTPError as err:
        raise AdapterLoadError(f"Downloading the adapter {text!r} from the hub failed ({err}). Try again, or pass "
                               "the adapter's directory.") from err


def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool | None = None,
                token: str | bool | None = None, revision: str | None = None, create_pr: bool = False,
                commit_message: str = "Upload slaft adapter"):
    """Create the model repository ``repo_id`` if it does not exist, and upload the files of ``folder`` to it in one
    commit. Returns huggingface_hub's ``CommitInfo`` (its ``commit_url`` links the commit)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token, library_name="slaft")
    repo = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
    return api.upload_folder(repo_id=repo.repo_id, folder_path=str(folder), repo_type="model",
                             revision=revision, create_pr=create_pr, commit_message=commit_message)


def push_model(model, repo_id: str, *, tokenizer=None, **kwargs):
    """``model.save_pretrained`` into a temporary directory (with ``tokenizer`` beside it, when given), then
    ``push_folder`` it to ``repo_id``; ``kwargs`` are ``push_folder``'s."""
    with tempfile.TemporaryDirectory(prefix="slaft-push-") as folder:
        model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        return push_folder(folder, repo_id, **kwargs)
