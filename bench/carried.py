"""What docs/benchmarks.md shows of scenarios whose raw figures bench/results/ lacks.

A run of some scenarios takes the others from the newest run in bench/results/
that has them (``bench.__main__.merge_earlier``). A scenario last measured by a
run whose raw figures are not there has nothing to be rendered from: then its
section and its lines under "Goals" are kept as the document shows them, under
a line naming the run they came from, so that no run of some scenarios loses
the others' figures.
"""

from __future__ import annotations

import re

#: The heading of each scenario's section.
HEADINGS = {
    "Fan-out": "fanout",
    "Job overhead": "jobs",
    "Worker classes and Redis round trips": "workers",
    "Enqueue path": "enqueue",
    "Latency to the page": "page",
    "Capacity": "capacity",
    "Output streams": "output",
    "Scale-out over web processes": "scaleout",
}
#: How each scenario's lines under "Goals" begin (bench/report.py and bench/sections.py
#: write them); a line that matches none continues the line before it.
GOAL_LEADS = {
    "fanout": r"- (\*\*)?(Throughput at|p99 latency at|Redis clients per web)|  - Reconnect storm",
    "capacity": r"- \*\*[\d,]+ idle streams on one",
    "jobs": r"- \*\*Job overhead, progress at",
    "workers": r"- \*\*(Job overhead at 10 Hz on every worker class|Short jobs against bare)",
    "page": r"- (\*\*)?Page latency",
    "enqueue": r"- (\*\*Database writes per job constant, not proportional to up|Enqueue path)",
    "output": r"- (\*\*)?Output ",
    "scaleout": r"- (\*\*)?Scale-out over web processes",
}
PROVENANCE = "*From the run of "


def from_document(text: str) -> dict[str, dict]:
    """Per scenario the document shows: ``{"source", "section", "goals"}``, each a
    list of Markdown lines (``source`` the line naming the run)."""
    date = re.search(r"^- Date: (.+?) \(UTC\)", text, re.M)
    command = re.search(r"^- Command: `(.+?)`", text, re.M)
    run = (
        f"{PROVENANCE}{date.group(1) if date else '?'} (UTC), "
        f"`{command.group(1) if command else '?'}`, as docs/benchmarks.md showed it "
        "(that run's raw figures are not in `bench/results/`).*"
    )
    parts = _sections(text)
    kept: dict[str, dict] = {}
    for title, lines in parts.items():
        key = HEADINGS.get(title)
        if key is None:
            continue
        while lines and not lines[0].strip():
            lines.pop(0)
        source = [run]
        if lines and lines[0].startswith(PROVENANCE):  # carried before: keep its source
            source = [lines.pop(0)]
        while lines and not lines[0].strip():
            lines.pop(0)
        kept[key] = {"source": source, "section": lines, "goals": []}
    current = None
    for line in parts.get("Goals", []):
        if not line.strip():
            continue
        current = next((key for key, lead in GOAL_LEADS.items() if re.match(lead, line)), current)
        if current in kept:
            kept[current]["goals"].append(line)
    return kept


def _sections(text: str) -> dict[str, list[str]]:
    """The lines under each ``## `` heading (up to the next), trailing blanks cut."""
    parts: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            lines = parts.setdefault(line[3:].strip(), [])
        elif lines is not None:
            lines.append(line)
    for lines in parts.values():
        while lines and not lines[-1].strip():
            lines.pop()
    return parts
