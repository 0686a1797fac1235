"""Tests share helpers through helper modules and conftest, never through each other:
no file in ``tests/`` imports a ``tests/test_*.py`` module."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(path: Path, tests: Path) -> list[tuple[int, str]]:
    """Each ``tests.test_*`` module that the file at ``path`` (in the folder ``tests``,
    the package of that name) imports, however it is written: ``(line, module)``."""
    package = [tests.name, *path.relative_to(tests).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > len(package):
                continue  # beyond the package: not one of its modules
            base = package[: len(package) - node.level + 1] if node.level else []
            base += node.module.split(".") if node.module else []
            # `from tests import test_x` names the module in the imported names
            names = [".".join(base)] + [".".join([*base, alias.name]) for alias in node.names]
        else:
            continue
        modules = {
            ".".join(parts[:2])
            for parts in (name.split(".") for name in names)
            if len(parts) >= 2 and parts[0] == tests.name and parts[1].startswith("test_")
        }
        found += [(node.lineno, module) for module in sorted(modules)]
    return found


def imports_of_test_modules(tests: Path) -> list[str]:
    """``file:line imports module`` for every import of a test module in ``tests``."""
    return [
        f"{path.relative_to(tests.parent)}:{line} imports {module}"
        for path in sorted(tests.rglob("*.py"))
        for line, module in imported_test_modules(path, tests)
    ]


def test_no_file_in_tests_imports_a_test_module():
    assert imports_of_test_modules(TESTS) == []


def test_the_check_finds_every_way_of_importing_a_test_module(tmp_path):
    """The check above can fail: in a small tests folder that imports test modules in
    each way Python allows, it finds each import, and only those."""
    tests = tmp_path / "tests"
    files = {
        "__init__.py": "",
        "sse_client.py": "from tests.test_b import shared\n",  # a helper module counts too
        "test_a.py": "import os\nfrom tests.test_b import helper\n",
        "test_b.py": "import tests.test_a as a\n",
        "test_c.py": "def f():\n    from tests import sse_client, test_b\n",  # late
        "test_d.py": "from .test_b import helper\nfrom . import test_a\n",  # relative
        "test_ok.py": textwrap.dedent(
            """
            import tests.conftest
            from tests import jobs
            from tests.sse_client import Stream
            from myapp.tests.test_x import y
            from . import sse_client
            from .kinds import countdown
            """
        ),
        "kinds/__init__.py": "",
        "kinds/countdown.py": "from ..test_a import helper\nfrom .test_local import x\n",
    }
    for name, text in files.items():
        (tests / name).parent.mkdir(parents=True, exist_ok=True)
        (tests / name).write_text(text)

    assert imports_of_test_modules(tests) == [
        "tests/kinds/countdown.py:1 imports tests.test_a",
        "tests/sse_client.py:1 imports tests.test_b",
        "tests/test_a.py:2 imports tests.test_b",
        "tests/test_b.py:1 imports tests.test_a",
        "tests/test_c.py:2 imports tests.test_b",
        "tests/test_d.py:1 imports tests.test_b",
        "tests/test_d.py:2 imports tests.test_a",
    ]
