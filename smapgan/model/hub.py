"""Hub I/O: turn a folder-or-repo-id into a local model folder, and push a folder to the Hub.

huggingface_hub raises a dozen exception types whose messages talk about HTTP, ETags and
``local_files_only``. Users of smapgan need to know one thing: what to do next. Every failure
here becomes a :class:`HubError` whose message names the repo, the revision and the remedy.

``HF_HUB_OFFLINE`` is read from ``huggingface_hub.constants`` at call time (not at import), so
tests and applications that flip it after import are honoured.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

__all__ = ["HubError", "resolve_model_dir", "push_folder"]

CONFIG_NAME = "config.json"
_COMMIT_ID_LEN = 40


class HubError(RuntimeError):
    """Any failure to resolve, download or push; the message says what to do about it."""


def _download_hint(repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"connect and run once, or `hf download {repo_id}{rev}` "
        f"(`huggingface-cli download {repo_id}{rev}` with older huggingface_hub), or pass a local directory"
    )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level failures of whichever HTTP client this huggingface_hub uses."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _why_unreachable(exc: BaseException, offline: bool) -> str:
    """Why the Hub could not answer, from the first telling error in ``exc``'s cause chain."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__
    if offline or any(isinstance(e, OfflineModeIsEnabled) for e in chain):
        return "HF_HUB_OFFLINE=1 forbids downloading it"
    for e in chain:
        if isinstance(e, HfHubHTTPError) and _status(e):
            return f"the Hub at {constants.ENDPOINT} answered HTTP {_status(e)}"
    return f"the Hub at {constants.ENDPOINT} could not be reached ({type(chain[-1]).__name__})"


def _local_dir(name_or_path: str | os.PathLike) -> Path | None:
    """The local folder meant by ``name_or_path``, or None when it should be read as a repo id."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise HubError(f"{path} is a file; pass the model folder that contains {CONFIG_NAME}, or a Hub repo id")
        return path
    text = os.fspath(name_or_path)
    looks_local = (
        not isinstance(name_or_path, str)
        or text.startswith((".", "/", "~", "\\"))
        or (os.sep != "/" and os.sep in text)
        or text.count("/") > 1
    )
    if looks_local:
        raise HubError(f"No such local directory: {path}. Pass an existing model folder or a Hub repo id (user/name).")
    try:
        validate_repo_id(text)
    except HFValidationError as exc:
        raise HubError(f"{text!r} is neither an existing local directory nor a valid Hub repo id ({exc})") from exc
    return None


def resolve_model_dir(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    allow_patterns: Sequence[str] | str | None = None,
    *,
    required_files: Sequence[str] = (CONFIG_NAME,),
) -> Path:
    """A local folder holding the model files: ``name_or_path`` itself, or a Hub snapshot of it.

    A local directory is returned as is (it must contain every ``required_files``); anything
    else is a model repo id downloaded with ``snapshot_download`` at ``revision`` (a branch,
    tag or commit id; default ``main``) into the Hugging Face cache, offline when
    ``HF_HUB_OFFLINE`` is set. ``allow_patterns`` restricts which files are fetched; the
    required files are always fetched.
    """
    local = _local_dir(name_or_path)
    if local is not None:
        missing = [name for name in required_files if not (local / name).is_file()]
        if missing:
            raise HubError(f"{local} is not a smapgan model folder: it has no {', '.join(missing)}")
        return local

    repo_id = os.fspath(name_or_path)
    rev = revision or constants.DEFAULT_REVISION
    patterns = None
    if allow_patterns is not None:
        patterns = [allow_patterns] if isinstance(allow_patterns, str) else list(allow_patterns)
        patterns += [name for name in required_files if name not in patterns]
    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        folder = Path(
            snapshot_download(
                repo_id, repo_type="model", revision=revision, allow_patterns=patterns, local_files_only=offline
            )
        )
    except Exception as exc:
        error = _download_error(exc, repo_id, revision, offline)
        if error is None:
            raise
        raise error from exc

    missing = [name for name in required_files if not (folder / name).is_file()]
    if missing:
        present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        raise HubError(
            f"Hub repo {repo_id!r} (revision {rev!r}) has no {', '.join(missing)}, so it is not a smapgan model "
            f"repo (it holds: {', '.join(present) or 'nothing'}). Check the repo id and revision."
        )
    return folder


def _download_error(exc: Exception, repo_id: str, revision: str | None, offline: bool) -> HubError | None:
    """The HubError to raise for a failed ``snapshot_download``; None lets an unknown error through."""
    rev = revision or constants.DEFAULT_REVISION
    endpoint = constants.ENDPOINT
    where = f"{repo_id!r} (revision {rev!r})"
    if isinstance(exc, IncompleteSnapshotError):
        return HubError(
            f"Model {where} is only partly in the local cache ({constants.HF_HUB_CACHE}) and cannot be completed "
            f"now ({exc}). To complete it: {_download_hint(repo_id, revision)}."
        )
    if isinstance(exc, LocalEntryNotFoundError):
        return HubError(
            f"Model {where} is not in the local cache ({constants.HF_HUB_CACHE}) and "
            f"{_why_unreachable(exc, offline)}. "
            f"To use it: {_download_hint(repo_id, revision)}."
        )
    if isinstance(exc, GatedRepoError):
        return HubError(
            f"Hub repo {repo_id!r} is gated: request access on {endpoint}/{repo_id}, then log in "
            "(`hf auth login`) or set HF_TOKEN."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(
            f"Hub repo {repo_id!r} was not found on {endpoint}. Check the spelling (user/name); if it is "
            "private, log in (`hf auth login`) or set HF_TOKEN; or pass a local directory."
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubError(
            f"Revision {rev!r} was not found in Hub repo {repo_id!r}. Pass a branch (e.g. 'main'), a tag or a "
            f"full {_COMMIT_ID_LEN}-character commit id that exists in the repo."
        )
    if isinstance(exc, HfHubHTTPError):
        return HubError(
            f"Downloading {where} failed: the Hub at {endpoint} answered HTTP {_status(exc)}. Retry later; "
            "files already cached are kept."
        )
    if isinstance(exc, _transport_errors()):
        return HubError(
            f"Downloading {where} from {endpoint} was interrupted ({type(exc).__name__}: {exc}). Retry; "
            f"or {_download_hint(repo_id, revision)}."
        )
    if isinstance(exc, HFValidationError):
        return HubError(f"Invalid Hub repo id or revision for {where}: {exc}")
    if isinstance(exc, OSError):
        return HubError(f"Downloading {where} failed: {exc}")
    return None


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    repo_type: str = "model",
    revision: str | None = None,
    commit_message: str = "Upload with smapgan",
    private: bool = False,
    token: str | None = None,
    delete_patterns: Sequence[str] | None = None,
) -> str:
    """Upload every file of ``folder`` as one commit to ``repo_id`` and return the commit URL.

    The repo is created if needed (``private`` only applies then; a new Space is a Gradio
    Space, as smapgan's demo is); a ``revision`` other than ``main`` is a branch, created from
    ``main`` if missing. Remote files matching ``delete_patterns`` that the folder no longer
    has are deleted in the same commit (a re-deploy leaves no stale module behind). The local
    folder is only read.
    """
    path = Path(folder)
    if not path.is_dir():
        raise HubError(f"Cannot push {path}: it is not a directory")
    endpoint = constants.ENDPOINT
    target = f"{repo_type} repo {repo_id!r}" + (f" (branch {revision!r})" if revision else "")
    if constants.HF_HUB_OFFLINE:
        raise HubError(f"Cannot push to {target}: HF_HUB_OFFLINE=1 is set. Unset it and connect to {endpoint}.")
    if revision is not None and len(revision) == _COMMIT_ID_LEN and all(c in "0123456789abcdef" for c in revision):
        raise HubError(f"Cannot push to commit id {revision!r}: push to a branch name instead (e.g. 'main').")

    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo_url = api.create_repo(
            repo_id,
            repo_type=repo_type,
            private=private,
            exist_ok=True,
            space_sdk="gradio" if repo_type == "space" else None,
        )
        repo_id = getattr(repo_url, "repo_id", None) or repo_id
        if revision is not None and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=path,
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message,
            delete_patterns=list(delete_patterns) if delete_patterns else None,
        )
    except Exception as exc:
        error = _push_error(exc, target, endpoint, path)
        if error is None:
            raise
        raise error from exc
    return str(info.commit_url)


def _push_error(exc: Exception, target: str, endpoint: str, folder: Path) -> HubError | None:
    """The HubError to raise for a failed push; None lets an unknown error through."""
    untouched = f"The local folder {folder} was not modified."
    if isinstance(exc, OfflineModeIsEnabled):
        return HubError(f"Cannot push to {target}: HF_HUB_OFFLINE=1 is set. {untouched}")
    status = _status(exc)
    if isinstance(exc, RepositoryNotFoundError) or status in (401, 403):
        return HubError(
            f"Cannot push to {target} on {endpoint}: not authorized or not found (HTTP {status}). Log in with "
            f"`hf auth login`, set HF_TOKEN or pass token=, and check you may write to that namespace. {untouched}"
        )
    if isinstance(exc, HfHubHTTPError) and status is not None and status >= 500:
        return HubError(
            f"Pushing to {target} failed: the Hub at {endpoint} answered HTTP {status}. Retry later. {untouched}"
        )
    if isinstance(exc, HfHubHTTPError):
        return HubError(f"Pushing to {target} failed with HTTP {status}: {exc}. {untouched}")
    if isinstance(exc, _transport_errors()):
        return HubError(
            f"Pushing to {target} failed: the Hub at {endpoint} could not be reached ({type(exc).__name__}). "
            f"Check your connection (and HF_ENDPOINT), then retry. {untouched}"
        )
    if isinstance(exc, ValueError):
        return HubError(f"Cannot push to {target}: {exc}")
    return None
