"""Every repository path the docs cite exists: README.md and docs/*.md, in their inline code, code blocks
and link targets.

A cited path is a token of inline code or of a code block whose first component is one of the
repository's top-level entries (TOP) and that holds a '/' or ends in a file extension
(`simulations/arms/top_p.py`, `configs/adaptive.yaml`, `pyproject.toml`), or the target of a relative
markdown link or image (resolved from the doc's folder). `path::name` (a pytest node id) must also define
`name` in the file. `python -m a.b.c` must name a module of the repository that runs: `a/b/c.py` or a
package `a/b/c/` with a `__main__.py` (modules of other packages, `python -m pytest`, are not checked).
Generated outputs (`results/`, `figures/out/`) are not checked, nor paths with a placeholder (`<name>`)
or a glob (`*.yaml`); a path that leaves the repository (`../x` from the root) is an error: nothing may
read a path outside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The repository's top-level entries a cited path may start with (results/ is generated, not tracked).
TOP = ("bench", "configs", "docs", "figures", "fits", "simulations", "tests", "theory", ".ci", "Makefile",
       "README.md", "pyproject.toml", "environment.yml")
#: Generated outputs: cited, never tracked.
GENERATED = ("results/", "figures/out/")
EXTENSIONS = (".py", ".yaml", ".yml", ".md", ".csv", ".json", ".toml", ".png", ".pdf", ".parquet", ".txt")

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
_CODE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
_MODULE = re.compile(r"\bpython3?\s+-m\s+([A-Za-z_][\w.]*)")
_OPEN, _CLOSE = "\"'([{", "\"')]},;:.!?"


def docs(root: Path = ROOT) -> list[Path]:
    """The docs whose citations are checked: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _code(text: str) -> list[tuple[int, str]]:
    """(line, text) of every inline code span and every line of every code block."""
    out = []
    for m in _FENCE.finditer(text):
        first = _line(text, m.start())
        out += [(first + i, line) for i, line in enumerate(m.group(0).splitlines()[1:-1], start=1)]
    outside = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # line numbers kept
    out += [(_line(outside, m.start(2)), m.group(2)) for m in _CODE.finditer(outside)]
    return sorted(out)


def _is_path(token: str, top: tuple[str, ...]) -> bool:
    first = token.split("/", 1)[0]
    return (first in top or first == "..") and ("/" in token or token.endswith(EXTENSIONS))


def _skipped(path: str) -> bool:
    """A placeholder, a glob or a generated output: not a path that must exist."""
    return (any(c in path for c in "<>*?{}|$~") or path.startswith(GENERATED)
            or path.rstrip("/") + "/" in GENERATED)


def _problem(root: Path, base: Path, path: str) -> str | None:
    """Why `path` (relative to `base`, with an optional `::name` suffix) is not a repository path that
    exists, or None."""
    path, *names = path.split("::")
    resolved = (base / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        return "outside the repository"
    rel = resolved.relative_to(root.resolve()).as_posix()
    if _skipped(rel + ("/" if path.endswith("/") else "")):
        return None
    if not resolved.exists():
        return "no such file or folder"
    if path.endswith("/") and not resolved.is_dir():
        return "not a folder"
    for name in names:
        if not re.search(rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b", resolved.read_text(), re.M):
            return f"defines no {name}"
    return None


def _module_problem(root: Path, module: str, top: tuple[str, ...]) -> str | None:
    """Why `python -m module` does not run a module of the repository, or None (or a module of another
    package)."""
    parts = module.rstrip(".").split(".")
    if parts[0] not in top or not (root / parts[0]).is_dir():
        return None
    path = root.joinpath(*parts)
    if path.with_suffix(".py").is_file() or (path / "__main__.py").is_file():
        return None
    return f"no {'/'.join(parts)}.py and no {'/'.join(parts)}/__main__.py"


def missing_paths(doc: Path, root: Path = ROOT, top: tuple[str, ...] = TOP) -> list[str]:
    """'doc:line: `path` (why)' for every cited path of `doc` that is not in the repository at `root`."""
    text = doc.read_text()
    name = doc.relative_to(root).as_posix()
    found = []
    for line, code in _code(text):
        for m in _MODULE.finditer(code):
            why = _module_problem(root, m.group(1), top)
            if why:
                found.append((line, f"python -m {m.group(1).rstrip('.')}", why))
        for raw in code.split():
            token = raw.rsplit("=", 1)[-1].lstrip(_OPEN).rstrip(_CLOSE)
            if not _is_path(token.split("::")[0], top) or _skipped(token):
                continue
            why = _problem(root, root, token)
            if why:
                found.append((line, token, why))
    for m in _LINK.finditer(text):
        target = m.group(1).split("#", 1)[0]
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("/"):
            continue  # an anchor in the doc, a URL or an absolute path
        why = _problem(root, doc.parent, target)
        if why:
            found.append((_line(text, m.start()), target, why))
    return [f"{name}:{line}: `{path}` ({why})" for line, path, why in sorted(set(found))]


def test_every_path_the_docs_cite_exists():
    missing = [entry for doc in docs() for entry in missing_paths(doc)]
    assert not missing, "paths the docs cite that are not in the repository:\n" + "\n".join(missing)


def test_top_level_entries_exist():
    """TOP lists entries of the repository (so that a renamed one does not silently go unchecked)."""
    assert [t for t in TOP if not (ROOT / t).exists()] == []


def test_missing_paths_finds_every_kind_of_broken_citation(tmp_path):
    """A fake repository and doc: each broken citation is listed with its doc and line; present paths,
    generated outputs, placeholders, globs, URLs and other packages' modules are not."""
    (tmp_path / "fits" / "pkg").mkdir(parents=True)
    (tmp_path / "fits" / "a.py").write_text("def test_here():\n    pass\n")
    (tmp_path / "fits" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("")
    (tmp_path / "README.md").write_text("")
    doc = tmp_path / "docs" / "guide.md"
    doc.write_text("\n".join([
        "Present: `fits/a.py`, `fits/`, `fits/a.py::test_here`, [o](other.md#part), [r](../README.md).",
        "Skipped: `results/quick/x.parquet`, `figures/out/a.png`, `fits/<name>.py`, `fits/*.py`,",
        "[web](https://example.org/x.md), [here](#top), `python -m pytest -q`, `python -m fits.a`.",
        "Missing: `fits/b.py` and `see fits/gone/,` here; [m](missing.md) and ![i](img/x.png)",
        "`fits/a.py::test_gone`, `python -m fits.pkg`, `python -m fits.nope --out x`",
        "`../sibling/data.csv`, [up](../../outside.md), `docs/nope.md`.",
        "```",
        "python -m fits.gone --config=configs/none.yaml",
        "```",
    ]))
    assert missing_paths(doc, tmp_path) == [
        "docs/guide.md:4: `fits/b.py` (no such file or folder)",
        "docs/guide.md:4: `fits/gone/` (no such file or folder)",
        "docs/guide.md:4: `img/x.png` (no such file or folder)",
        "docs/guide.md:4: `missing.md` (no such file or folder)",
        "docs/guide.md:5: `fits/a.py::test_gone` (defines no test_gone)",
        "docs/guide.md:5: `python -m fits.nope` (no fits/nope.py and no fits/nope/__main__.py)",
        "docs/guide.md:5: `python -m fits.pkg` (no fits/pkg.py and no fits/pkg/__main__.py)",
        "docs/guide.md:6: `../../outside.md` (outside the repository)",
        "docs/guide.md:6: `../sibling/data.csv` (outside the repository)",
        "docs/guide.md:6: `docs/nope.md` (no such file or folder)",
        "docs/guide.md:8: `configs/none.yaml` (no such file or folder)",
        "docs/guide.md:8: `python -m fits.gone` (no fits/gone.py and no fits/gone/__main__.py)",
    ]
