"""Small modules and short functions: no module of the packages or the benchmarks over MAX_MODULE_LINES
lines and no function over MAX_FUNCTION_LINES (issue 28's limits; a longer one is split into named
steps)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("simulations", "fits", "figures", "theory", "bench")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def long_pieces(path: Path) -> list[str]:
    """'path: what (n lines)' for the module and each function of `path` over its limit."""
    text = path.read_text()
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    out = []
    if len(text.splitlines()) > MAX_MODULE_LINES:
        out.append(f"{rel}: module ({len(text.splitlines())} lines)")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                out.append(f"{rel}:{node.lineno}: {node.name} ({n} lines)")
    return out


def test_no_module_or_function_over_its_limit():
    assert _sources(), "no sources found"
    assert [piece for path in _sources() for piece in long_pieces(path)] == []


@pytest.mark.parametrize("lines, expected", [(MAX_FUNCTION_LINES, []), (MAX_FUNCTION_LINES + 1, ["f"])])
def test_a_long_function_is_found(tmp_path, lines, expected):
    body = "\n".join(f"    x{i} = {i}" for i in range(lines - 1))
    path = tmp_path / "m.py"
    path.write_text(f"def f():\n{body}\n")
    assert [p.split(": ")[1].split(" ")[0] for p in long_pieces(path)] == expected
