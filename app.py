"""myapp's entry points.

- ``gunicorn app:app`` and ``flask --app app ...`` import the app from here.
- ``python3 app.py`` installs what it needs into ``.venv`` and runs everything:
  an embedded Redis (unless ``REDIS_URL`` is set), RQ workers and the web
  server on http://127.0.0.1:5000.
- ``python3 app.py test [PYTEST ARGS]`` installs what the tests need and runs them.

The bootstrap below uses the standard library only, because it runs before
anything is installed.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"


def _venv_python(extra: str | None) -> Path:
    """Create ``.venv`` and install the project (with ``extra``) when it changed."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / f".installed-{extra or 'app'}"
    if not stamp.exists() or stamp.read_text() != wanted:
        target = f".[{extra}]" if extra else "."
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--editable", target],
            check=True,
            cwd=ROOT,
        )
        stamp.write_text(wanted)
    return python


#: Debian packages the tests drive, by the command each brings: the page tests
#: drive chromium; the stream is checked with node's npm ``eventsource`` client; the
#: failover tests run Redis primaries, replicas and Sentinels (``redis-server``).
TEST_PACKAGES = {
    "chromium": "chromium",
    "node": "nodejs",
    "npm": "npm",
    "redis-server": "redis-server",
}


def _ensure_test_packages() -> None:
    """Install the Debian packages the tests need when they are missing."""
    missing = [pkg for command, pkg in TEST_PACKAGES.items() if not shutil.which(command)]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    else:
        sys.exit(f"the tests need Debian's {', '.join(missing)}: install them")


def main(argv: list[str]) -> None:
    os.chdir(ROOT)
    if argv[:1] == ["test"]:
        python = _venv_python("test")
        _ensure_test_packages()
        os.execv(python, [str(python), "-m", "pytest", *argv[1:]])
    python = _venv_python(None)
    os.execv(python, [str(python), "-m", "myapp.devserver", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
else:
    from myapp import create_app

    app = create_app()
