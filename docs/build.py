"""Build the course page: ``python docs/build.py [--out DIR]`` (``make site``).

Prepares ``docs/_generated/`` from the package's own files, then runs Sphinx offline:

- ``lesson.ipynb``: the executed teaching notebook as committed, without its exercises' answer
  cells and without nbgrader's solution markers (the answers to exercises stay on the teacher's
  side: in the repository and in ``pystatsml-tl notebooks``, never on the site);
- ``downloads/transfer_learning_student.ipynb``: the student version, offered for download;
- ``static/mathjax/``: MathJax, copied from the installed ``jupyter_server_mathjax`` package, so
  that the formulas render with nothing fetched from a network.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import nbformat

DOCS = Path(__file__).resolve().parent
GENERATED = DOCS / "_generated"
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def lesson_page(teaching: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The lesson as the site shows it: no exercise answer, no solution marker, no grading metadata."""
    from pystatsml_tl.teaching.assignment import without_exercises

    lesson = without_exercises(teaching)
    for cell in lesson.cells:
        cell.source = "\n".join(line for line in cell.source.splitlines() if line.strip() not in MARKERS)
        for key in ("nbgrader", "pystatsml_tl"):
            cell.metadata.pop(key, None)
    return lesson


def prepare(generated: Path = GENERATED) -> None:
    """Write the generated sources of the site into ``generated``."""
    import jupyter_server_mathjax

    from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK
    from pystatsml_tl.teaching.assignment import STUDENT_NOTEBOOK

    shutil.rmtree(generated, ignore_errors=True)
    (generated / "static").mkdir(parents=True)
    nbformat.write(lesson_page(nbformat.read(TEACHING_NOTEBOOK, as_version=4)), generated / "lesson.ipynb")
    (generated / "downloads").mkdir()
    shutil.copyfile(STUDENT_NOTEBOOK, generated / "downloads" / "transfer_learning_student.ipynb")
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", generated / "static" / "mathjax")


def build(out: Path) -> int:
    """Prepare the sources and run Sphinx into ``out``; return Sphinx's exit status."""
    from sphinx.cmd.build import build_main

    prepare()
    return build_main(["-q", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)])


def main(argv: list[str] | None = None) -> int:
    """Build the site and say where it is and how long it took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DOCS / "_build" / "html"), help="where the site goes")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    status = build(Path(args.out))
    if status == 0:
        print(f"{Path(args.out) / 'index.html'} ({time.perf_counter() - started:.0f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
