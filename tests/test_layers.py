"""The package's layers: no import runs back up them, and no modules import each other in a circle.

Follow one image (docs/DESIGN.md): intake -> model -> latent algorithms -> renderer -> ops -> app.
Each module may import its own layer and the ones below, never one above; the CLI and the app sit
on top. Imports inside functions count too (they are deferred, not absent).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# lowest first; a module belongs to the longest prefix listed
LAYERS: list[tuple[str, ...]] = [
    ("smapgan.defaults", "smapgan.cache", "smapgan.intake", "smapgan.networks"),
    ("smapgan.model",),
    ("smapgan.latent", "smapgan"),  # the package's face re-exports the model and the latent algorithms
    ("smapgan.render", "smapgan.fast", "smapgan.device", "smapgan.preview", "smapgan.train"),
    ("smapgan.ops", "smapgan.builtin_ops"),
    ("smapgan.app", "smapgan.space"),
    ("smapgan.commands", "smapgan.cli"),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "ops":
        parts = ["smapgan", "builtin_ops", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    files = list((ROOT / "smapgan").rglob("*.py")) + list((ROOT / "ops").glob("*.py"))
    return {module_name(p): p for p in files}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The smapgan modules ``name`` imports (a `from X import y` counts X.y where that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def layer(name: str) -> int:
    best, level = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    assert level >= 0, f"{name} is in no layer: add it to LAYERS"
    return level


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_no_import_runs_back_up_the_layers() -> None:
    upward = [f"{a} -> {b}" for a, targets in graph().items() for b in targets if layer(b) > layer(a)]
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(sorted(upward))


def test_no_import_circles() -> None:
    edges = graph()
    # a package's face (its __init__) importing its own modules is not a circle of concepts
    edges = {a: {b for b in bs if not a or not b.startswith(a + ".")} for a, bs in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "modules that import each other in a circle:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an import of the app from the intake layer is reported."""
    source = tmp_path / "probe.py"
    source.write_text("from smapgan.app import builder\n")
    found = imports("smapgan.intake.probe", source, {"smapgan.app", "smapgan.app.builder"})
    assert found == {"smapgan.app.builder"}
    assert layer("smapgan.app.builder") > layer("smapgan.intake.probe")
