"""The student and solution versions of the lesson, generated from the teaching notebook (the one
source), and grading a folder of submissions.

The teaching notebook marks, with nbgrader's conventions:

- **solution regions**: lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in cells whose
  metadata says ``nbgrader.solution``: the key lines of the four experiments and each exercise's
  answer;
- **checks**: in a cell's metadata ``pystatsml_tl.checks``, the check calls
  (:mod:`pystatsml_tl.teaching.checks`) that follow it in the student version, each with its id
  and points; the teaching notebook itself shows none;
- **exercises**: their answer cells carry the tag ``exercise``; the committed teaching run and
  nbval skip them (``nbval-skip``), the solution version runs them.

:func:`solution_version` inserts each check as an autograded test cell (nbgrader metadata:
``grade``, ``grade_id``, ``points``) and clears the outputs; :func:`student_version` then replaces
each solution region by a stub with nbgrader's own ``ClearSolutions`` (a teacher's tool: nbgrader
is needed to generate, not to run, the student version, which ships built). :func:`grade_folder`
executes each submitted notebook and scores its test cells with nbgrader's ``determine_grade``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import nbformat

EXERCISE_TAG = "exercise"
"""Tag of an exercise's answer cell."""
TEST_TAGS = ("nbval-skip", "nbval-ignore-output")
"""Tags meant for the test suite: never in a version a student reads."""
STUDENT_NOTEBOOK = Path(__file__).parent / "student" / "transfer_learning.ipynb"
"""The student version, built ahead (``make student``) and shipped in the wheel."""
CODE_STUB = ('# YOUR CODE HERE (see the comment above)\n'
             'raise NotImplementedError("your code here: replace this line by the lines the comment above asks for")')
"""What replaces a solution region in the student version: nbgrader's stub, with a message that says what to do."""


def without_exercises(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without its exercises' answer cells: the lesson as its committed run executes it."""
    lesson = copy.deepcopy(nb)
    lesson.cells = [c for c in lesson.cells if EXERCISE_TAG not in c.metadata.get("tags", [])]
    return lesson


def _nbgrader(cell: nbformat.NotebookNode) -> dict[str, Any]:
    return cell.metadata.get("nbgrader", {})


def solution_lines(source: nbformat.NotebookNode) -> list[str]:
    """Every non-blank line inside a solution region of the source, markers excluded."""
    lines, inside = [], False
    for cell in source.cells:
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


def solution_regions(source: nbformat.NotebookNode) -> int:
    """How many solution regions the source marks."""
    return sum(cell.source.count("BEGIN SOLUTION") for cell in source.cells)


def check_cell(check: dict[str, Any]) -> nbformat.NotebookNode:
    """An autograded test cell for one check of a cell's ``pystatsml_tl.checks`` metadata."""
    cell = nbformat.v4.new_code_cell(f"# check: {check['what']}\nfrom pystatsml_tl.teaching import checks\n\n"
                                     + check["code"])
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": check["id"], "locked": True, "points": check["points"],
                                 "schema_version": 3, "solution": False, "task": False}
    cell.metadata["deletable"] = cell.metadata["editable"] = False
    cell.id = f"check-{check['id']}"  # stable: the generated version is the same at each build
    return cell


def _without_test_tags(cell: nbformat.NotebookNode) -> None:
    tags = [tag for tag in cell.metadata.get("tags", []) if tag not in TEST_TAGS]
    if tags:
        cell.metadata["tags"] = tags
    else:
        cell.metadata.pop("tags", None)


def solution_version(source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The source with its checks inserted as autograded test cells after the cells that name
    them, outputs cleared and the test suite's tags removed: what passes every check."""
    nb = copy.deepcopy(source)
    cells = []
    for cell in nb.cells:
        _without_test_tags(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
        cells.extend(check_cell(check) for check in cell.metadata.get("pystatsml_tl", {}).get("checks", []))
    nb.cells = cells
    nb.metadata.pop("papermill", None)
    return nb


def student_version(source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solution version with each solution region replaced by a stub (nbgrader's
    ``ClearSolutions``) and no outputs (``ClearOutput``)."""
    from nbgrader.preprocessors import ClearOutput, ClearSolutions
    from traitlets.config import Config

    config = Config()
    config.ClearSolutions.code_stub = {"python": CODE_STUB}
    nb = solution_version(source)
    nb, _ = ClearSolutions(config=config).preprocess(nb, {})
    nb, _ = ClearOutput().preprocess(nb, {})
    return nb


def points(nb: nbformat.NotebookNode) -> dict[str, float]:
    """The points of each autograded test cell, by its ``grade_id`` (nbgrader's metadata)."""
    return {_nbgrader(c)["grade_id"]: float(_nbgrader(c)["points"]) for c in nb.cells if _nbgrader(c).get("grade")}


def write_versions(source_path: str | Path, student_path: str | Path) -> Path:
    """Write the student version of the notebook at ``source_path`` to ``student_path``; return it."""
    from ..storage import write_text_atomic

    source = nbformat.read(source_path, as_version=4)
    student_path = Path(student_path)
    student_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(student_path, nbformat.writes(student_version(source)) + "\n")
    return student_path


def execute_submission(path: str | Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Execute a submitted notebook top to bottom, errors kept in the outputs (each stub or failed
    check is one cell's error, the rest runs on), in the notebook's folder."""
    from nbclient import NotebookClient

    from ..logs import KERNEL_ARGUMENTS

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True, extra_arguments=KERNEL_ARGUMENTS,
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    return nb


def grade_notebook(nb: nbformat.NotebookNode) -> dict[str, tuple[float, float]]:
    """Each autograded test cell's (score, max points) in an executed notebook, by ``grade_id``:
    nbgrader's ``determine_grade`` (full points when the cell ran without error)."""
    from nbgrader.utils import determine_grade

    return {_nbgrader(cell)["grade_id"]: tuple(float(v) for v in determine_grade(cell))
            for cell in nb.cells if _nbgrader(cell).get("grade")}


def grade_folder(folder: str | Path, timeout: int = 900):
    """Grade every ``*.ipynb`` of ``folder``: one row per notebook with its score, the points
    possible and the checks that failed (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        grades = grade_notebook(execute_submission(path, timeout))
        rows.append({"notebook": path.name, "score": sum(s for s, _ in grades.values()),
                     "max_score": sum(m for _, m in grades.values()),
                     "failed": ", ".join(name for name, (s, m) in grades.items() if s < m)})
    return pd.DataFrame(rows, columns=["notebook", "score", "max_score", "failed"])

