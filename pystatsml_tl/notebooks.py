"""Execute the package's notebooks with papermill and keep what they store small.

``python -m pystatsml_tl.notebooks`` re-executes the committed notebooks with the ``smoke``
profile and strips run-specific metadata, so that ``pytest --nbval`` compares stable outputs.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
EXPERIMENT_NOTEBOOK = NOTEBOOK_DIR / "experiment.ipynb"
TEACHING_NOTEBOOK = NOTEBOOK_DIR / "transfer_learning.ipynb"
RUN_METADATA = ("papermill", "execution", "widgets", "collapsed", "scrolled", "jupyter")
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
"""The kernel logs errors only: its start-up warning about unencrypted local TCP is not the user's concern."""


def _coalesce_streams(outputs: list) -> list:
    merged: list = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1]["name"] == output["name"]):
            merged[-1]["text"] += output["text"]
        else:
            merged.append(output)
    return merged


def clean_notebook(path: str | os.PathLike, strip_run_metadata: bool = False) -> None:
    """Coalesce stream outputs, drop widget state and widget outputs (progress bars); with
    ``strip_run_metadata``, also drop timings and paths that papermill records."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    if strip_run_metadata:
        nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        if strip_run_metadata:
            for key in RUN_METADATA:
                cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = _coalesce_streams([
                o for o in cell.outputs
                if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})])
    nbformat.write(nb, path)


def execute_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict[str, Any],
                     cwd: str | os.PathLike | None = None, strip_run_metadata: bool = False) -> Path:
    """Execute ``notebook`` headless with papermill's ``parameters`` into ``output``, then clean it.

    Raises papermill's ``PapermillExecutionError`` if a cell fails (the output notebook shows it).
    """
    import papermill

    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                                   progress_bar=False, cwd=str(cwd) if cwd else None,
                                   extra_arguments=KERNEL_ARGUMENTS)
    finally:
        if Path(output).is_file():
            clean_notebook(output, strip_run_metadata)
    return Path(output)


def refresh_committed_notebooks() -> None:
    """Re-execute the committed notebooks in place: the experiment notebook with the ``smoke``
    profile injected, the teaching notebook with its own (smoke) defaults."""
    from .parameters import PROFILES

    for notebook, parameters in ((EXPERIMENT_NOTEBOOK, PROFILES["smoke"]), (TEACHING_NOTEBOOK, {})):
        print(f"executing {notebook.name}", file=sys.stderr)
        execute_notebook(notebook, notebook, parameters, cwd=NOTEBOOK_DIR, strip_run_metadata=True)


if __name__ == "__main__":
    refresh_committed_notebooks()
