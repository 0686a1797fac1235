"""npm packages the tests use (clients nobody here wrote), installed once beside the
virtualenv; node and npm come from ``python3 app.py test``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT

#: Where npm installs them, kept across runs.
NODE_PREFIX = ROOT / ".venv" / "npm"


def npm_module(name: str, spec: str) -> Path:
    """The folder of npm package ``name`` (``spec``, e.g. ``eventsource@2``), installed
    if it is not yet."""
    assert shutil.which("node") and shutil.which("npm"), "python3 app.py test installs nodejs"
    folder = NODE_PREFIX / "node_modules" / name
    if not folder.is_dir():
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", spec],
            check=True,
            timeout=300,
        )
    return folder
