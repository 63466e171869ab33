"""The Hugging Face Space: what `smapgan space deploy` uploads is exactly what the Space needs to boot.

Deploys go to the loopback Hub double; the boot tests run the staged folder on its own (cwd and
PYTHONPATH = the staging folder, smapgan's editable-install finder removed), as a Space would.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest
from huggingface_hub import HfApi, SpaceCard

from smapgan.cli import main as cli
from smapgan.defaults import DEFAULT_MODEL
from smapgan.model.hub import push_folder
from smapgan.space import SpaceError, build_space_folder

REPO_ROOT = Path(__file__).resolve().parent.parent
SPACE = "smapgan-tester/demo"
MODEL = "smapgan-tester/tiny"
OP_FILES = sorted(p.name for p in (REPO_ROOT / "ops").glob("*.py"))
# Distributions the gradio sdk installs on the Space besides requirements.txt (gradio[oauth,mcp]==sdk_version);
# fastapi and starlette are gradio's own server (hard dependencies), used by smapgan.app.gate and .blobs.
SDK_PROVIDED = {"gradio", "fastapi", "starlette"}
PLATFORM_OPTIONAL = {"spaces"}
"""Imported only where the platform provides it (ZeroGPU hardware), guarded by ``except ImportError``."""

# Prepended to subprocess code: drop smapgan's editable-install finder so that nothing can be
# imported from the checkout, only from the staging folder (cwd / PYTHONPATH).
_ISOLATE = textwrap.dedent(
    """
    import sys
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
    sys.path_importer_cache.clear()
    """
)


def _space_files(hub) -> dict[str, bytes]:
    return hub.files(SPACE, repo_type="space")


def _deploy(*extra: str) -> int:
    return cli(["space", "deploy", "--repo", SPACE, *extra])


@pytest.fixture
def model_on_hub(hub, tiny_model_dir) -> str:
    """The tiny model pushed as a Hub model repo, for --model."""
    push_folder(tiny_model_dir, MODEL)
    return MODEL


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A staging folder whose deploy-time model is a Hub repo the boot tests override with SMAPGAN_MODEL."""
    out = tmp_path_factory.mktemp("space") / "staged"
    build_space_folder(out, model_repo=MODEL)
    return out


def _requirement_names(text: str) -> set[str]:
    """Normalised distribution names of a requirements file (options and comments skipped)."""
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\s<>=!~\[;@]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _third_party_imports(source: str) -> set[str]:
    """Top-level names of absolute imports that are neither the stdlib nor smapgan itself."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in ("smapgan", "__future__")}


def _load_app(path: Path) -> ModuleType:
    """The staged app.py as a module, without running it (it imports nothing of smapgan at import)."""
    spec = importlib.util.spec_from_file_location("staged_space_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _isolated_env(staging: Path, model: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SMAPGAN_"))}
    env.update(PYTHONPATH=str(staging), SMAPGAN_MODEL=str(model), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", PYTHONDONTWRITEBYTECODE="1")
    return env


# --------------------------------------------------------------------------- deploy to the Hub double


def test_deploy_uploads_what_a_gradio_space_needs(hub, model_on_hub, tmp_path, capsys):
    assert _deploy("--model", model_on_hub) == 0
    out = capsys.readouterr().out
    assert f"/spaces/{SPACE}" in out and "commit:" in out

    repo = hub.repo(SPACE, repo_type="space")
    assert repo.sdk == "gradio" and not repo.private
    files = _space_files(hub)
    expected = build_space_folder(tmp_path / "expected", model_repo=model_on_hub)
    assert sorted(set(files) - {".gitattributes"}) == expected  # the staged folder, all of it, nothing else

    card = SpaceCard(files["README.md"].decode())
    assert card.data.sdk == "gradio"
    assert card.data.sdk_version == importlib.metadata.version("gradio")
    assert card.data.app_file in files
    assert card.data.license == "apache-2.0"
    assert card.data.models == [model_on_hub]
    assert re.fullmatch(r"3\.\d+", str(card.data.python_version))
    assert len(card.data.short_description or "") <= 60  # the Hub's limit

    assert "smapgan/__init__.py" in files
    assert [f"smapgan/builtin_ops/{name}" for name in OP_FILES] == sorted(
        p for p in files if p.startswith("smapgan/builtin_ops/")
    )
    assert "smapgan/assets/examples/index.json" in files
    if (DEFAULT_MODEL / "model.safetensors").is_file():
        bundled = {f"smapgan/assets/default_model/{p.relative_to(DEFAULT_MODEL).as_posix()}"
                   for p in DEFAULT_MODEL.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        assert bundled <= set(files)
    for path in files:
        parts = path.split("/")
        assert "__pycache__" not in parts and ".venv" not in parts and "tests" not in parts, path
        assert not path.endswith((".pyc", ".pyo")) and not parts[-1].startswith("test_"), path
        assert not (parts[0] == "ops" or path.startswith("space/")), path  # only their staged copies

    app = files["app.py"].decode()
    assert f"DEPLOYED_MODELS: tuple[str, ...] = {(model_on_hub,)!r}" in app
    assert "share=True" not in app and 'server_name="0.0.0.0"' in app


def test_requirements_provide_every_third_party_import(hub, model_on_hub):
    """Every module any uploaded file imports is installed on the Space by requirements.txt or the sdk."""
    assert _deploy("--model", model_on_hub) == 0
    files = _space_files(hub)
    requirements = files["requirements.txt"].decode()
    provided_dists = _requirement_names(requirements) | SDK_PROVIDED
    by_module = importlib.metadata.packages_distributions()
    provided = {module for module, dists in by_module.items()
                if {d.lower().replace("_", "-") for d in dists} & provided_dists}
    # top_level.txt may leave packages out (dlib-bin declares only its extension module, not `dlib`):
    # the top-level folders of each provided distribution's installed files count too.
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"].lower().replace("_", "-") in provided_dists:
            provided.update(f.parts[0] for f in dist.files or [] if len(f.parts) > 1 and "." not in f.parts[0])

    imports: dict[str, list[str]] = {}
    for path, data in files.items():
        if path.endswith(".py"):
            for module in _third_party_imports(data.decode()):
                imports.setdefault(module, []).append(path)
    assert {"torch", "gradio", "numpy", "PIL", "safetensors", "huggingface_hub"} <= set(imports)
    missing = {module: paths for module, paths in imports.items() if module not in provided | PLATFORM_OPTIONAL}
    assert not missing, f"imported but not installed on the Space: {missing}"
    assert "gradio" not in _requirement_names(requirements)  # the sdk_version pins it; listing it would clash

    # Same dependencies as the package declares, and the torch the project is tested with, as a CPU wheel.
    declared = {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower().replace("_", "-")
                for r in importlib.metadata.requires("smapgan") or [] if "extra ==" not in r}
    assert declared - SDK_PROVIDED <= _requirement_names(requirements)
    pinned = (REPO_ROOT / "constraints.txt").read_text().split()
    assert [line for line in requirements.splitlines() if line.startswith("torch")] == [
        p for p in pinned if p.startswith("torch==")
    ]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements.splitlines()


def test_redeploy_updates_the_space_and_removes_stale_modules(hub, model_on_hub, tiny_model_dir):
    assert _deploy("--model", model_on_hub) == 0
    first = hub.head(SPACE, repo_type="space")
    api = HfApi(endpoint=hub.url, token=hub.token)
    # A module the package no longer has (a removed op) and a file someone added by hand.
    api.upload_file(path_or_fileobj=b"raise SystemExit\n", path_in_repo="smapgan/builtin_ops/removed_op.py",
                    repo_id=SPACE, repo_type="space")
    api.upload_file(path_or_fileobj=b"notes\n", path_in_repo="NOTES.md", repo_id=SPACE, repo_type="space")
    push_folder(tiny_model_dir, "smapgan-tester/other")

    assert _deploy("--model", "smapgan-tester/other") == 0  # the Space exists: the Hub's 409 is not an error
    files = _space_files(hub)
    assert hub.head(SPACE, repo_type="space") != first
    assert SpaceCard(files["README.md"].decode()).data.models == ["smapgan-tester/other"]
    assert "DEPLOYED_MODELS: tuple[str, ...] = ('smapgan-tester/other',)" in files["app.py"].decode()
    assert "smapgan/builtin_ops/removed_op.py" not in files
    assert files["NOTES.md"] == b"notes\n"

    head = hub.head(SPACE, repo_type="space")
    assert _deploy("--model", "smapgan-tester/other") == 0  # nothing changed: still a success
    assert _space_files(hub) == files
    assert hub.head(SPACE, repo_type="space") == head


def test_private_flag_creates_a_private_space(hub, model_on_hub):
    assert _deploy("--model", model_on_hub, "--private") == 0
    assert hub.repo(SPACE, repo_type="space").private


def test_dry_run_writes_the_folder_and_uploads_nothing(hub, tmp_path, capsys):
    out_dir = tmp_path / "dry"
    assert cli(["space", "deploy", "--model", MODEL, "--dry-run", str(out_dir)]) == 0
    printed = capsys.readouterr().out.splitlines()
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    assert printed[:-1] == written and "nothing uploaded" in printed[-1]
    assert {"README.md", "app.py", "requirements.txt", "smapgan/__init__.py"} <= set(written)
    assert hub.repos == {} and not any(method == "POST" for method, _ in hub.requests)
    assert cli(["space", "deploy", "--model", MODEL, "--dry-run", str(out_dir)]) == 2  # never into a used folder
    assert "not an empty folder" in capsys.readouterr().err


def test_unknown_model_repo_fails_before_creating_the_space(hub, capsys):
    assert _deploy("--model", "smapgan-tester/no-such-model") == 2
    err = capsys.readouterr().err
    assert "smapgan-tester/no-such-model" in err and "not found" in err and "Traceback" not in err
    assert ("space", SPACE) not in hub.repos


@pytest.mark.parametrize("model", ["./some/folder", "not a repo id", "nameonly"])
def test_model_must_be_a_hub_repo_id(tmp_path, model):
    with pytest.raises(SpaceError, match="--model"):
        build_space_folder(tmp_path / "out", model_repo=model)
    assert not (tmp_path / "out").exists()


def test_without_model_or_bundled_model_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import smapgan.defaults

    monkeypatch.setattr(smapgan.defaults, "DEFAULT_MODEL", tmp_path / "missing")
    assert cli(["space", "deploy", "--dry-run", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bundled default model is missing" in err and "--model" in err
    assert not (tmp_path / "out").exists()


def test_repo_is_required_to_upload(capsys):
    assert cli(["space", "deploy"]) == 2
    assert "--repo" in capsys.readouterr().err


# --------------------------------------------------------------------------- the staged app on its own


def test_app_model_precedence(staged, monkeypatch):
    app = _load_app(staged / "app.py")
    assert app.DEPLOYED_MODELS == (MODEL,)
    monkeypatch.delenv(app.MODELS_ENV, raising=False)
    monkeypatch.delenv(app.MODEL_ENV, raising=False)
    assert app.model_sources() == [MODEL]
    monkeypatch.setenv(app.MODEL_ENV, "someone/else")
    assert app.model_sources() == ["someone/else"]
    monkeypatch.setenv(app.MODELS_ENV, " a/one, b/two ,")
    assert app.model_sources() == ["a/one", "b/two"]
    assert app.model_sources(["/a/folder"]) == ["/a/folder"]
    monkeypatch.setattr(app, "DEPLOYED_MODELS", ())
    monkeypatch.delenv(app.MODEL_ENV)
    monkeypatch.delenv(app.MODELS_ENV)
    assert app.model_sources() == []  # the bundled model


def test_deploy_several_models(hub, model_on_hub, tiny_model_dir, tmp_path):
    push_folder(tiny_model_dir, "smapgan-tester/other")
    assert _deploy("--model", model_on_hub, "--model", "smapgan-tester/other") == 0
    files = _space_files(hub)
    assert SpaceCard(files["README.md"].decode()).data.models == [model_on_hub, "smapgan-tester/other"]
    assert f"DEPLOYED_MODELS: tuple[str, ...] = {(model_on_hub, 'smapgan-tester/other')!r}" in files["app.py"].decode()
    assert _deploy("--model", model_on_hub, "--model", "smapgan-tester/missing") == 2  # each one is checked


def test_isolation_sees_only_the_staging_folder(tmp_path, tiny_model_dir):
    """The boot tests' isolation works: a file missing from the staging folder is not found in the checkout."""
    staging = tmp_path / "staged"
    build_space_folder(staging, model_repo=MODEL)
    (staging / "smapgan" / "builtin_ops" / "__init__.py").unlink()
    (staging / "smapgan" / "builtin_ops").rename(tmp_path / "elsewhere")
    code = _ISOLATE + "import smapgan.builtin_ops\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=staging, env=_isolated_env(staging, tiny_model_dir),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "No module named 'smapgan.builtin_ops'" in result.stderr


@pytest.mark.slow
def test_staged_folder_builds_the_app_on_its_own(staged, tiny_model_dir):
    """cwd and PYTHONPATH = the staging folder only: the uploaded files are self-sufficient."""
    code = _ISOLATE + textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        import gradio as gr
        import app
        demo = app.build_demo()  # the model comes from SMAPGAN_MODEL, set to the tiny model folder
        assert isinstance(demo, gr.Blocks)
        from smapgan.ops import discover
        registry = discover()
        here = Path.cwd().resolve()
        outside = sorted(name for name, m in sys.modules.items()
                         if name.split(".")[0] in ("smapgan", "app") and getattr(m, "__file__", None)
                         and not Path(m.__file__).resolve().is_relative_to(here))
        print(json.dumps({"ops": registry.names(), "errors": [str(e) for e in registry.errors],
                          "outside": outside, "builtin": sorted(registry.ops[n].source for n in registry.ops)}))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=staged, env=_isolated_env(staged, tiny_model_dir),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["outside"] == []
    assert report["errors"] == []
    assert len(report["ops"]) >= len([name for name in OP_FILES if not name.startswith("_")])
    assert {source.split(":", 1)[1] for source in report["builtin"]} == {
        f"ops/{name}" for name in OP_FILES if not name.startswith("_")
    }


@pytest.mark.slow
def test_staged_app_serves_like_a_space(staged, tiny_model_dir):
    """`python app.py` as the Space runs it: listens on GRADIO_SERVER_PORT and serves every op's tab."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _isolated_env(staged, tiny_model_dir) | {"GRADIO_SERVER_PORT": str(port)}
    code = _ISOLATE + "import runpy; runpy.run_path('app.py', run_name='__main__')\n"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=staged, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, config = time.monotonic() + 300, None
        while config is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    config = json.loads(response.read())
            except OSError:
                time.sleep(1)
        log = proc.stdout.read() if proc.poll() is not None else ""
        assert config is not None, f"the Space app did not come up:\n{log}"
        text = json.dumps(config)
        assert "Local transplant" in text and "plugin-errors" not in text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
