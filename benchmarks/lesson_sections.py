"""How long each section of the lesson takes to compute, for the teacher's 90-minute plan.

Executes the solution version (the lesson, its checks and its exercises' answers: what a class
that completes every stub runs) with the lesson's own parameters, and prints one row per section
(``##`` heading; each exercise its own row) with the seconds its cells took, from papermill's
per-cell timings. Run on the machine the plan is for, doing nothing else:

    python benchmarks/lesson_sections.py [--seeds N]
"""
from __future__ import annotations

import argparse
import platform
import re
import tempfile
import time
from pathlib import Path

import nbformat

from pystatsml_tl.provenance import cpu_model
from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK, execute_notebook
from pystatsml_tl.teaching.assignment import solution_version


def section_times(executed: nbformat.NotebookNode) -> list[tuple[str, float]]:
    """(section title, seconds) in order: the code cells' papermill durations summed under each
    ``##`` heading (and each exercise's ``###``); the cells before the first count as the opening."""
    sections: list[list] = [["Opening (installing check, parameters)", 0.0]]
    for cell in executed.cells:
        if cell.cell_type == "markdown":
            headings = re.findall(r"^(?:##|###) (.+)$", cell.source, flags=re.M)
            if headings:
                sections.append([headings[-1].strip(), 0.0])
        elif cell.cell_type == "code":
            sections[-1][1] += float(cell.metadata.get("papermill", {}).get("duration") or 0.0)
    return [(title, seconds) for title, seconds in sections]


def main(argv: list[str] | None = None) -> int:
    """Execute the solution version once and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="the lesson's seeds (default: its own, 5)")
    args = parser.parse_args(argv)
    parameters = {} if args.seeds is None else {"seeds": args.seeds}
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "solution.ipynb"
        nbformat.write(solution_version(nbformat.read(TEACHING_NOTEBOOK, as_version=4)), source)
        started = time.perf_counter()
        execute_notebook(source, source, parameters, cwd=TEACHING_NOTEBOOK.parent)
        total = time.perf_counter() - started
        executed = nbformat.read(source, as_version=4)
    print(f"{cpu_model()}, {platform.machine()}; the lesson's parameters {parameters or '(its own)'}; "
          f"{total:.0f} s in all, kernel start included")
    print("| section | seconds |\n|---|---|")
    for title, seconds in section_times(executed):
        print(f"| {title} | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
