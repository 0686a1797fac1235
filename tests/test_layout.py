"""The layout holds: imports point one way, none go round, late ones say why."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests import layout
from tests.conftest import ROOT


def test_imports_point_down_the_layers():
    assert layout.wrong_directions(layout.imports(ROOT)) == []


def test_no_modules_import_each_other_round_and_round():
    assert layout.cycles(layout.imports(ROOT)) == []


def test_an_import_inside_a_function_says_why_it_is_late():
    unexplained = [
        f"{imp.source}:{imp.line}" for imp in layout.imports(ROOT) if imp.late and not imp.explained
    ]
    assert unexplained == []


def test_only_the_web_side_loads_gunicorn_gevent_or_rq_dashboard():
    wrong = [
        f"{module}:{line} imports {library}"
        for module, library, line in layout.third_party(ROOT)
        if library in layout.WEB_ONLY_LIBRARIES
        and layout.layer_of(module) not in ("web", layout.ENTRY)
    ]
    assert wrong == []


def test_a_worker_and_its_jobs_load_nothing_of_the_web_side():
    """What RQ imports to run a job (the kinds, the worker, the pipeline) loads no
    web module and no web library, whatever the code says about its imports."""
    script = textwrap.dedent(
        """
        import sys
        import myapp.jobs, myapp.worker, myapp.pipeline.lifecycle, myapp.progress, myapp.steps
        import myapp.jobs.process_run, myapp.jobs.import_contacts
        import myapp.jobs.publish_album, myapp.jobs.generate_profile
        loaded = [m for m in sys.modules if m.startswith(("myapp.web", "myapp.cli"))
                  or m.split(".")[0] in ("gevent", "gunicorn", "rq_dashboard")]
        print(",".join(sorted(loaded)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def _package(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / "myapp" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_the_rules_catch_a_cycle_an_upward_import_and_an_unexplained_late_one(tmp_path):
    """The checks above can fail: on a small package that breaks each rule, they do."""
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "keys.py": "from myapp.pipeline import lifecycle\n",  # base imports up
            "pipeline/__init__.py": "",
            "pipeline/lifecycle.py": "from myapp import keys\n",  # ... and back: a cycle
            "jobs/__init__.py": "def f():\n    from myapp.web import api\n",  # late, unsaid
            "web/__init__.py": "",
            "web/api.py": "from myapp.worker import reaper\n",  # one side imports another
            "worker/__init__.py": "",
            "worker/reaper.py": "import gunicorn\n",
        },
    )
    found = layout.imports(root)
    assert layout.cycles(found) == [["myapp.keys", "myapp.pipeline.lifecycle"]]
    wrong = layout.wrong_directions(found)
    assert any(problem.startswith("myapp.keys:1 (base)") for problem in wrong)
    assert any(problem.startswith("myapp.jobs:2 (jobs) imports myapp.web.api") for problem in wrong)
    assert any(problem.startswith("myapp.web.api:1 (web)") for problem in wrong)
    assert [(imp.source, imp.explained) for imp in found if imp.late] == [("myapp.jobs", False)]
    assert ("myapp.worker.reaper", "gunicorn", 1) in layout.third_party(root)


def test_every_page_is_made_from_the_base_template():
    """One head and one top bar: each page of the app extends templates/base.html."""
    pages = [path for path in (ROOT / "templates").glob("*.html") if path.name != "base.html"]
    assert len(pages) >= 3
    for page in pages:
        assert page.read_text().startswith('{% extends "base.html" %}'), page.name
