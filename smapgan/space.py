"""Assemble the Hugging Face Space: the repository's ``space/`` files plus smapgan's own source.

A Gradio Space runs ``app_file`` from its repo root after pip-installing ``requirements.txt``;
it never installs the project it belongs to. So the Space ships the ``smapgan`` package as
source next to ``app.py``, with the built-in ops (the repository's ``ops/``, installed as
``smapgan.builtin_ops``) copied to ``smapgan/builtin_ops/`` so that the same import works there
without an install. Nothing here talks to the Hub: ``smapgan space deploy`` uploads the result.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
from pathlib import Path
from typing import Sequence

__all__ = ["SPACE_DIR", "SpaceError", "build_space_folder", "package_dir", "builtin_ops_dir"]

# The Space's own files (README with the YAML header, requirements.txt, app.py), kept in the
# repository next to the package: deploying is done from a source checkout.
SPACE_DIR: Path = Path(__file__).resolve().parent.parent / "space"
SPACE_FILES = ("README.md", "requirements.txt", "app.py")
BUILTIN_OPS = "smapgan.builtin_ops"
# Never shipped: byte code, test suites, editor/VCS litter, build metadata.
_IGNORED = ("__pycache__", "*.pyc", "*.pyo", "tests", "test_*.py", ".*", "*.egg-info")
# The line of space/app.py that `--model` rewrites.
_DEPLOYED_MODELS_RE = re.compile(r"^DEPLOYED_MODELS: tuple\[str, \.\.\.\] = \(\)$", re.M)


class SpaceError(ValueError):
    """The Space cannot be assembled as asked; the message says what to change."""


def package_dir() -> Path:
    """The folder of the smapgan package in use (a source checkout or site-packages)."""
    return Path(__file__).resolve().parent


def builtin_ops_dir() -> Path:
    """Where ``smapgan.builtin_ops`` lives: ``ops/`` of a checkout, or inside an installed package."""
    spec = importlib.util.find_spec(BUILTIN_OPS)
    if spec is None or not spec.submodule_search_locations:
        raise SpaceError(f"{BUILTIN_OPS} is not importable; reinstall smapgan (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def gradio_version() -> str:
    """The installed gradio, which the app is tested with: the Space's ``sdk_version``."""
    try:
        return importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:
        raise SpaceError("gradio is not installed; the Space's sdk_version pins the installed gradio") from None


def _check_model_repo(model_repo: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if Path(model_repo).expanduser().exists() or model_repo.startswith((".", "/", "~")):
        raise SpaceError(
            f"--model {model_repo!r} is a local path, which the Space cannot read: push it first "
            "(StyleMapGAN.push_to_hub or `hf upload`) and pass the Hub repo id (user/name)"
        )
    try:
        validate_repo_id(model_repo)
    except HFValidationError as exc:
        raise SpaceError(f"--model {model_repo!r} is not a Hub model repo id (user/name): {exc}") from None
    if "/" not in model_repo:
        raise SpaceError(f"--model {model_repo!r}: give the full repo id, user/name")


def _readme(model_repos: list[str]) -> str:
    """space/README.md with sdk_version pinned to the installed gradio and ``models`` set."""
    from huggingface_hub import SpaceCard

    card = SpaceCard((SPACE_DIR / "README.md").read_text(encoding="utf-8"))
    if card.data.sdk != "gradio" or not card.data.app_file:
        raise SpaceError(f"{SPACE_DIR / 'README.md'} must declare sdk: gradio and an app_file")
    card.data.sdk_version = gradio_version()
    card.data.models = list(model_repos) or None
    return str(card)


def _app(model_repos: list[str]) -> str:
    """space/app.py with the deploy-time models written in (a repr, so any repo id stays one literal)."""
    text = (SPACE_DIR / "app.py").read_text(encoding="utf-8")
    if len(_DEPLOYED_MODELS_RE.findall(text)) != 1:
        raise SpaceError(f"{SPACE_DIR / 'app.py'} must define `DEPLOYED_MODELS: tuple[str, ...] = ()` exactly once")
    if model_repos:
        text = _DEPLOYED_MODELS_RE.sub(lambda _: f"DEPLOYED_MODELS: tuple[str, ...] = {tuple(model_repos)!r}", text)
    return text


def build_space_folder(out_dir: str | os.PathLike, model_repo: str | Sequence[str] | None = None) -> list[str]:
    """Write every file the Space needs to boot into ``out_dir`` (new or empty); return their paths.

    ``model_repo`` (a Hub model repo id, or several: the first is the default) becomes the Space's
    models and its ``models`` metadata; without it the Space serves the bundled model, which must
    then be present.
    """
    model_repos = [model_repo] if isinstance(model_repo, str) else list(model_repo or [])
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpaceError(f"{out} exists and is not an empty folder; the Space is staged into a new one")
    missing = [name for name in SPACE_FILES if not (SPACE_DIR / name).is_file()]
    if missing:
        raise SpaceError(
            f"{SPACE_DIR} lacks {', '.join(missing)}: `smapgan space` deploys from a source checkout of smapgan"
        )
    for repo in model_repos:
        _check_model_repo(repo)
    if not model_repos:
        from .defaults import DEFAULT_MODEL

        if not (DEFAULT_MODEL / "model.safetensors").is_file():
            raise SpaceError(
                f"the bundled default model is missing from {DEFAULT_MODEL}, so the Space would have nothing "
                "to serve: pass --model USER/MODEL (a smapgan model repo on the Hub)"
            )

    readme, app = _readme(model_repos), _app(model_repos)  # fail before writing anything
    ignore = shutil.ignore_patterns(*_IGNORED)
    source, ops = package_dir(), builtin_ops_dir()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, out / "smapgan", ignore=ignore)
    if not ops.is_relative_to(source):  # a checkout: ops/ sits outside the package
        shutil.copytree(ops, out / "smapgan" / "builtin_ops", ignore=ignore)
    (out / "README.md").write_text(readme, encoding="utf-8")
    (out / "app.py").write_text(app, encoding="utf-8")
    shutil.copyfile(SPACE_DIR / "requirements.txt", out / "requirements.txt")
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
