"""The folders are the architecture: arrows point down, and no module imports itself back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import modules of its own layer or of lower layers, never higher ones.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("api.errors", "api.config"),
    ("api.observability", "api.auth"),
    ("api.bundle",),
    ("api.model",),
    ("api.protocol",),
    ("api.monitoring", "api.store"),
    ("api.service", "api.scoring", "api.fleet"),
    ("api.http",),
    ("api.deps", "api.routes"),
    ("api.main", "api.__main__", "api.cli", "api.healthcheck", "api.score", "api.server"),
)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in (ROOT / "api").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {t for t in targets if t in known and t != name}


def _layer(name: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{name} belongs to no layer: add it to LAYERS")


GRAPH = {name: _imports(name, path, set(_modules())) for name, path in _modules().items() if name != "api"}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_arrows_point_down(module: str) -> None:
    upward = sorted(t for t in GRAPH[module] if t != "api" and _layer(t) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports higher layers: {upward}"


def test_no_import_cycles() -> None:
    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            current = stack.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(GRAPH.get(current, ()))
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in GRAPH for b in GRAPH[a] if reaches(b, a)})
    assert not cycles, f"import cycles: {cycles}"
