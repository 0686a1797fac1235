"""The rules of myapp's layout, read from the code's imports (see docs/architecture.md).

Each module of the package belongs to a layer, and imports only from its own layer
or the ones below it. The three sides (worker, web, CLI) do not import each other.
No chain of imports leads back to where it started, and an import inside a function
says why it must be late in a comment.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

#: Layers, lowest first: each may import its own and those before it.
BASE = "base"
PIPELINE = "pipeline"
JOBS = "jobs"
SIDES = ("worker", "web", "cli")
ENTRY = "entry"
RANK = {BASE: 0, PIPELINE: 1, JOBS: 2, "worker": 3, "web": 3, "cli": 3, ENTRY: 4}

#: Top-level modules of the package and their layer; subpackages are named for theirs.
TOP = {
    **dict.fromkeys(
        ("config", "db", "models", "connections", "keys", "wire", "job_json", "ordering",
         "clock", "errors", "logs"),
        BASE,
    ),
    "progress": PIPELINE,  # what job bodies call: the pipeline's front door
    "steps": PIPELINE,
    **dict.fromkeys(("devserver", "gunicorn_config", "gunicorn_worker", "migrations"), ENTRY),
}  # fmt: skip

#: Libraries only the web side (and the entry points) may load.
WEB_ONLY_LIBRARIES = ("gevent", "gunicorn", "rq_dashboard")

#: Imports that point up, each with the reason it must.
ALLOWED_UP = {
    # rq worker-pool builds PoolWorker itself, so the worker builds its own app.
    ("myapp.worker.tracking", "myapp"),
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    late: bool  # inside a function
    explained: bool  # a comment on its line, or just above its run of imports


def layer_of(module: str, package: str = "myapp") -> str:
    parts = module.split(".")
    if parts == [package]:
        return ENTRY  # the factory
    second = parts[1]
    if second in TOP:
        return TOP[second]
    if second == "jobs":
        return JOBS
    if second in ("pipeline", *SIDES):
        return second
    raise AssertionError(f"{module}: no layer; add it to tests/layout.py and the map")


def modules(root: Path, package: str = "myapp") -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(root: Path, package: str = "myapp") -> list[Import]:
    """Every import of one of the package's modules, by the module that makes it."""
    known = modules(root, package)
    found = []
    for name, path in known.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        late_lines = {
            node.lineno
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(function)
            if isinstance(node, ast.Import | ast.ImportFrom)
        }
        import_lines = {
            line
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for line in range(node.lineno, node.end_lineno + 1)
        }
        for node in ast.walk(tree):
            for target in _targets(node, name, path, known):
                late = node.lineno in late_lines
                explained = _explained(lines, import_lines, node.lineno)
                found.append(Import(name, target, node.lineno, late, explained))
    return found


def _targets(node: ast.AST, name: str, path: Path, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] in _roots(known)]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
    if base.split(".")[0] not in _roots(known):
        return []
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _roots(known: dict[str, Path]) -> set[str]:
    return {name.split(".")[0] for name in known}


def _explained(lines: list[str], import_lines: set[int], line: int) -> bool:
    """A comment on the import's line, or just above its run of imports (blank lines
    in the run allowed)."""
    if "#" in lines[line - 1]:
        return True
    above = line - 1
    while above >= 1 and (above in import_lines or not lines[above - 1].strip()):
        above -= 1
    return above >= 1 and lines[above - 1].strip().startswith("#")


def third_party(root: Path, package: str = "myapp") -> list[tuple[str, str, int]]:
    """(module, library, line) for every import of a library outside the package."""
    found = []
    for name, path in modules(root, package).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(name, a.name.split(".")[0], node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((name, node.module.split(".")[0], node.lineno))
    return [entry for entry in found if entry[1] != package]


def wrong_directions(found: list[Import], package: str = "myapp") -> list[str]:
    problems = []
    for imp in found:
        if (imp.source, imp.target) in ALLOWED_UP:
            continue
        source, target = layer_of(imp.source, package), layer_of(imp.target, package)
        if source == target:
            continue
        if RANK[target] >= RANK[source]:
            problems.append(f"{imp.source}:{imp.line} ({source}) imports {imp.target} ({target})")
    return problems


def cycles(found: list[Import]) -> list[list[str]]:
    """Every set of modules that import each other, round and round (Tarjan's SCCs)."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        if imp.source != imp.target:
            graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                result.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result
