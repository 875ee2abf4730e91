"""Imports point down the layers, read from the source with `ast`, so a shortcut fails here first.

HTTP -> graphql_schema -> resolvers -> services -> loaders and stores -> domain records. Stores
know SQL and the domain only; resolvers reach data through services and loaders; services know
nothing of GraphQL; and no module imports one that imports it back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "graphql_schema", "resolvers", "loaders")

# What a store may import of ours: its fellow stores, the tables, the domain records and errors, and
# the leaf helpers it writes with (cursors, JSON, sealing, the phones' blind index in app/pii.py).
STORE_MAY_IMPORT = (
    "app.stores",
    "app.db",
    "app.domain",
    "app.errors",
    "app.cursors",
    "app.jsoncodec",
    "app.sealing",
    "app.pii",
)
ABOVE_STORES = ("app.services", "resolvers", "graphql_schema", "loaders", "strawberry")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(nodes: list[ast.stmt], *, top: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, and whether it runs when the module is imported (not deferred)."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, top
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from ((imp, False) for imp, _ in _walk(node.body, top=False))
        else:
            nested = not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _walk([child], top=top and nested)


@cache
def _imports(module: str) -> tuple[tuple[str, bool], ...]:
    """(imported module, imported at load time) for each module `module` names, resolved to ours when ours."""
    path = _modules()[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[str, bool]] = []
    for node, at_load in _walk(tree.body, top=True):
        if isinstance(node, ast.Import):
            out += [(alias.name, at_load) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.append((sub if sub in _modules() else base, at_load))
    return tuple(out)


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module in _modules()
        if module == layer or module.startswith(layer + ".")
        for target, _ in _imports(module)
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    ]


def test_the_walk_sees_the_layers() -> None:
    """A guard on the guard: the walk finds the modules and the imports the rules speak of."""
    assert {
        "app.stores.channel",
        "app.services.identity",
        "resolvers.identity",
        "graphql_schema.schema",
    } <= set(_modules())
    assert ("app.domain.channel_data", True) in _imports("app.stores.channel")


def test_stores_import_only_the_domain_and_sql() -> None:
    """Stores import the domain and nothing above it."""
    found = [
        f"{module} imports {target}"
        for module in _modules()
        if module.startswith("app.stores")
        for target, _ in _imports(module)
        if target.split(".")[0] in PACKAGES
        and not any(target == ok or target.startswith(ok + ".") for ok in STORE_MAY_IMPORT)
    ]
    assert found == []


@pytest.mark.parametrize("layer", ["app.stores", "app.domain"])
def test_lower_layers_import_nothing_above_them(layer: str) -> None:
    assert _violations(layer, ABOVE_STORES) == []


def test_stores_reach_nothing_above_them_through_any_chain() -> None:
    """Importing a store loads no service, loader, resolver or schema module, however indirectly."""
    seen: set[str] = set()
    todo = [m for m in _modules() if m.startswith("app.stores")]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [t for t, at_load in _imports(module) if at_load and t in _modules()]
    assert sorted(m for m in seen if any(m == a or m.startswith(a + ".") for a in ABOVE_STORES)) == []


@pytest.mark.parametrize("layer", ["resolvers", "graphql_schema"])
def test_resolvers_and_the_schema_reach_data_through_services_and_loaders(layer: str) -> None:
    assert _violations(layer, ("app.stores",)) == []


def test_services_know_nothing_of_graphql() -> None:
    forbidden = ("strawberry", "graphql", "resolvers", "graphql_schema")
    assert _violations("app.services", forbidden) == []


def test_no_import_cycles() -> None:
    """No module imports (at load time) one that imports it back, through any chain."""
    graph = {
        module: sorted({t for t, at_load in _imports(module) if at_load and t in _modules() and t != module})
        for module in _modules()
    }
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
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
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            connect(module)
    assert cycles == []
