"""Execute the package's notebooks with papermill and keep what they store small.

``python -m pystatsml_tl.runs.notebooks`` re-executes the committed notebooks with the ``smoke``
profile and strips run-specific metadata, so that ``pytest --nbval`` compares stable outputs.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import nbformat


def _notebook_dir() -> Path:
    """The notebooks: inside the installed package (a wheel carries them as ``bundled_notebooks``),
    else the repository's ``notebooks/`` folder (a checkout, an editable install)."""
    package = Path(__file__).resolve().parents[1]
    bundled = package / "bundled_notebooks"
    if (bundled / "experiment.ipynb").is_file():
        return bundled
    return package.parent / "notebooks"


NOTEBOOK_DIR = _notebook_dir()
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


def copy_notebooks(destination: str | os.PathLike, force: bool = False) -> list[Path]:
    """Copy the teaching and experiment notebooks into ``destination`` (created if needed) for a
    user to open; an existing file is kept unless ``force``. Returns the copies' paths."""
    import shutil

    destination = Path(destination)
    sources = [TEACHING_NOTEBOOK, EXPERIMENT_NOTEBOOK]
    existing = [destination / s.name for s in sources if (destination / s.name).exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(map(str, existing))} already exist(s): nothing copied (use --force to "
                              "replace)")
    destination.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(source, destination / source.name)) for source in sources]


def refresh_committed_notebooks() -> None:
    """Re-execute the committed notebooks in place: the experiment notebook (its parameters cell
    rewritten from the package's parameters) with the ``smoke`` profile injected, the teaching
    notebook with its own (smoke) defaults."""
    from .parameters import PROFILES, parameters_cell

    nb = nbformat.read(EXPERIMENT_NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    if cell.source != parameters_cell():
        cell.source = parameters_cell()
        nbformat.write(nb, EXPERIMENT_NOTEBOOK)
    for notebook, parameters in ((EXPERIMENT_NOTEBOOK, PROFILES["smoke"]), (TEACHING_NOTEBOOK, {})):
        print(f"executing {notebook.name}", file=sys.stderr)
        execute_notebook(notebook, notebook, parameters, cwd=NOTEBOOK_DIR, strip_run_metadata=True)


if __name__ == "__main__":
    refresh_committed_notebooks()
