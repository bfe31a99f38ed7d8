"""The layering of the packages: no import circle among the project's modules, the MoE layer's pieces
(kernel, selection, gate families, gating) below its router and the layer, and no import placed inside
a function except those that spare the common path a real cost or need an optional package."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("simulations", "fits", "figures", "theory")
#: The imports that may sit inside a function: the theory (sympy, ~1.5 s, which the fits and figures
#: pay only when they use it), scipy.special (which `import theory` avoids), Ray (an optional extra) and
#: the TOML readers (tomllib from Python 3.11, tomli before).
LAZY = {"theory", "theory.approximation", "scipy.special", "ray", "tomllib", "tomli"}
#: The modules the batched MoE layer (simulations.moe) and its router (simulations.router) are built from:
#: each imports no project module, so the router and the layer sit on top of them and none reaches back
#: into them or into the others.
LAYER_PIECES = ("simulations.expert_kernel", "simulations.selection", "simulations.gates",
                "simulations.gating")
#: What the router and the layer may import of the project: the router the pieces, the layer the pieces
#: and the router (never the arms, estimators or families built on them).
ON_THE_PIECES = {"simulations.router": set(LAYER_PIECES),
                 "simulations.moe": {*LAYER_PIECES, "simulations.router"}}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that module `name` imports, anywhere in it (a submodule named by `from P
    import m` included), less its own ancestor packages: Python initialises those before it, so
    importing them back closes no circle."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in modules and m != name and not name.startswith(f"{m}.")}


def test_no_import_circle():
    modules = _modules()
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_the_moe_layers_pieces_import_no_project_module():
    modules = _modules()
    for name in LAYER_PIECES:
        assert _imported(name, modules[name], modules) == set(), name


def test_the_router_sits_on_the_pieces_and_the_layer_on_the_router():
    modules = _modules()
    for name, allowed in ON_THE_PIECES.items():
        assert _imported(name, modules[name], modules) <= allowed, name


def test_imports_inside_functions_are_only_the_costly_or_optional_ones():
    for path in _modules().values():
        lines = path.read_text().splitlines()
        for func in ast.walk(ast.parse(path.read_text())):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import):
                    names = {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    names = {node.module or ""}
                else:
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                assert names <= LAZY, f"{where}: import {', '.join(sorted(names - LAZY))} at the module top"
                assert "#" in lines[node.lineno - 1], f"{where}: say why this import is lazy"
