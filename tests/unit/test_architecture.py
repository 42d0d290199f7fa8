"""Import rules that keep the layers apart: the core (domain, store, service) knows nothing
of HTTP, MCP or the command line; the client needs nothing but the API's models; and no
two modules import each other, directly or in a ring."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Folder in the repository -> package name once installed (pyproject's package-dir).
PACKAGES = {
    "app": "ctxsearch",
    "embeddings": "ctxsearch.embeddings",
    "evals": "ctxsearch.evals",
    "bench": "ctxsearch.bench",
    "client": "ctxsearch.client",
}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """ctxsearch modules that `name` imports anywhere in its file (function-level imports too)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != name)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}

# layer -> prefixes it must not import
RULES = {
    "ctxsearch.domain": [
        "ctxsearch.store",
        "ctxsearch.service",
        "ctxsearch.http",
        "ctxsearch.mcp",
        "ctxsearch.cli",
        "ctxsearch.capture",
        "ctxsearch.bench",
        "ctxsearch.evals",
    ],
    "ctxsearch.store": [
        "ctxsearch.service",
        "ctxsearch.http",
        "ctxsearch.mcp",
        "ctxsearch.cli",
        "ctxsearch.capture",
        "ctxsearch.bench",
        "ctxsearch.evals",
    ],
    "ctxsearch.service": ["ctxsearch.http", "ctxsearch.mcp", "ctxsearch.cli", "ctxsearch.bench", "ctxsearch.evals"],
    "ctxsearch.embeddings": [
        "ctxsearch.store",
        "ctxsearch.service",
        "ctxsearch.http",
        "ctxsearch.mcp",
        "ctxsearch.cli",
    ],
    "ctxsearch.capture": ["ctxsearch.http", "ctxsearch.mcp", "ctxsearch.cli"],
    "ctxsearch.mcp": ["ctxsearch.http", "ctxsearch.cli"],
    "ctxsearch.http": ["ctxsearch.cli"],
    "ctxsearch.web": ["ctxsearch.http", "ctxsearch.mcp", "ctxsearch.cli"],
    "ctxsearch.client": [
        m
        for m in (
            "ctxsearch.store",
            "ctxsearch.service",
            "ctxsearch.http",
            "ctxsearch.mcp",
            "ctxsearch.cli",
            "ctxsearch.embeddings",
            "ctxsearch.domain",
        )
    ],
}


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_stay_inward(layer):
    bad = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if _under(m, layer)
        for t in sorted(targets)
        if any(_under(t, p) for p in RULES[layer])
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    # Tarjan's strongly connected components over the module graph.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            w = w if w in GRAPH else v
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # A package's __init__ re-exporting its own modules is not a cycle worth naming.
            if len(component) > 1 and not all(c.startswith(min(component, key=len)) for c in component):
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_rules_see_the_code():
    # The graph is built from the files: if the walk found nothing, every rule above would pass.
    assert len(MODULES) > 30
    assert "ctxsearch.store.db" in GRAPH["ctxsearch.service.facade"]
