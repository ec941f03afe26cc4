"""Execute the package's notebooks with papermill and keep what they store small.

``python -m pystatsml_tl.runs.notebooks`` re-executes the committed notebooks with the ``smoke``
profile and strips run-specific metadata, so that ``pytest --nbval`` compares stable outputs.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import weakref
from pathlib import Path
from typing import Any, ClassVar

import nbformat
from jupyter_client.manager import AsyncKernelManager

from .. import checks
from ..logs import KERNEL_ARGUMENTS
from ..storage import write_text_atomic

logger = logging.getLogger(__name__)
VERSIONS = ("teaching", "student")
"""What ``pystatsml-tl notebooks`` copies: the lesson with its answers, or the student version."""


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


class TrackedKernelManager(AsyncKernelManager):
    """The kernel manager papermill's notebook client uses here: it remembers the kernels it starts,
    so that :func:`stop_running_kernels` can stop them (a kernel runs in a session of its own, so a
    Ctrl-C in the terminal does not reach it)."""

    running: ClassVar[weakref.WeakSet[TrackedKernelManager]] = weakref.WeakSet()

    async def start_kernel(self, **kwargs: Any) -> None:
        """Start the kernel and remember it."""
        await super().start_kernel(**kwargs)
        TrackedKernelManager.running.add(self)


def stop_running_kernels() -> int:
    """Stop every kernel this process started that still runs (the kernel and its own child
    processes); the notebooks they executed then fail at once, without logging the kernel's death.
    Returns how many were stopped."""
    import logging

    logging.getLogger("papermill").setLevel(logging.CRITICAL)
    stopped = 0
    for manager in list(TrackedKernelManager.running):
        process = getattr(manager.provisioner, "process", None)
        if process is not None and process.poll() is None:
            try:
                if hasattr(os, "killpg"):
                    os.killpg(process.pid, signal.SIGTERM)  # the kernel leads its own process group
                else:
                    process.kill()
            except (ProcessLookupError, PermissionError):
                process.kill()
            stopped += 1
    return stopped


def execute_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict[str, Any],
                     cwd: str | os.PathLike | None = None, strip_run_metadata: bool = False) -> Path:
    """Execute ``notebook`` headless with papermill's ``parameters`` into ``output``, then clean it.

    Raises papermill's ``PapermillExecutionError`` if a cell fails (the output notebook shows it).
    """
    import papermill

    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                                   progress_bar=False, cwd=str(cwd) if cwd else None,
                                   extra_arguments=KERNEL_ARGUMENTS, kernel_manager_class=TrackedKernelManager)
    finally:
        if Path(output).is_file():
            clean_notebook(output, strip_run_metadata)
    return Path(output)


EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\ssrc=[\"']https?://[^>]*>\s*</script>", re.IGNORECASE)
"""nbconvert's links to require.js and MathJax on a CDN: a page for offline reading goes without them."""


def notebook_html(notebook: str | os.PathLike) -> Path:
    """Render an executed notebook to a self-contained HTML file beside it (images embedded, no
    script fetched from a network; formulas then show as their TeX source). A file newer than
    the notebook is kept as it is. Returns its path."""
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    target = notebook.with_suffix(".html")
    if target.is_file() and target.stat().st_mtime >= notebook.stat().st_mtime:
        return target
    body, _ = HTMLExporter(template_name="lab", embed_images=True).from_notebook_node(
        nbformat.read(notebook, as_version=4))
    return write_text_atomic(target, EXTERNAL_SCRIPT.sub("", body))


def copy_notebooks(destination: str | os.PathLike, force: bool = False, version: str = "teaching") -> list[Path]:
    """Copy notebooks into ``destination`` (created if needed) for a user to open: ``version``
    ``teaching`` (the lesson, with its answers, and the experiment notebook) or ``student`` (the
    student version: stubs to complete, a check after each; built ahead and shipped). An existing
    file is kept unless ``force``. Returns the copies' paths."""
    import shutil

    from ..teaching.assignment import STUDENT_NOTEBOOK

    checks.one_of(VERSIONS)("version", version)
    destination = Path(destination)
    sources = [STUDENT_NOTEBOOK] if version == "student" else [TEACHING_NOTEBOOK, EXPERIMENT_NOTEBOOK]
    existing = [destination / s.name for s in sources if (destination / s.name).exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(map(str, existing))} already exist(s): nothing copied (use --force to "
                              "replace)")
    destination.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(source, destination / source.name)) for source in sources]


def execute_without_exercises(notebook: Path) -> Path:
    """Execute ``notebook`` in place without its exercises' answer cells (tag ``exercise``): they
    keep no output, so the committed run and its time are the lesson's alone (the solution
    version's test runs them)."""
    import tempfile

    from ..teaching.assignment import without_exercises

    source = nbformat.read(notebook, as_version=4)
    lesson = without_exercises(source)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / notebook.name
        nbformat.write(lesson, path)
        execute_notebook(path, path, {}, cwd=notebook.parent, strip_run_metadata=True)
        executed = {cell.id: cell for cell in nbformat.read(path, as_version=4).cells}
    for cell in source.cells:
        if cell.cell_type == "code":
            ran = executed.get(cell.id)
            cell.outputs = ran.outputs if ran is not None else []
            cell.execution_count = ran.execution_count if ran is not None else None
    nbformat.write(source, notebook)
    return notebook


def write_student_version() -> Path:
    """Regenerate the shipped student version from the teaching notebook (``make student``; needs
    nbgrader); return its path."""
    from ..teaching.assignment import STUDENT_NOTEBOOK, write_versions

    return write_versions(TEACHING_NOTEBOOK, STUDENT_NOTEBOOK)


def refresh_committed_notebooks() -> None:
    """Re-execute the committed notebooks in place: the experiment notebook (its parameters cell
    rewritten from the package's parameters) with the ``smoke`` profile injected, the teaching
    notebook with its own (smoke) defaults. Both run on an empty cache with the offline backbone
    installed first, so that their outputs show what a first run computes (the feature cache
    filled, not read) and not the backbone's one-time install line."""
    import tempfile

    from ..pretraining import pretrain
    from ..storage import CACHE_ENV
    from .parameters import PROFILES, parameters_cell

    nb = nbformat.read(EXPERIMENT_NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    if cell.source != parameters_cell():
        cell.source = parameters_cell()
        nbformat.write(nb, EXPERIMENT_NOTEBOOK)
    previous = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory() as cache:
        os.environ[CACHE_ENV] = cache  # the kernels inherit it
        try:
            pretrain("resnet18", progress=False)
            logger.info("executing %s", EXPERIMENT_NOTEBOOK.name)
            execute_notebook(EXPERIMENT_NOTEBOOK, EXPERIMENT_NOTEBOOK, PROFILES["smoke"], cwd=NOTEBOOK_DIR,
                             strip_run_metadata=True)
            logger.info("executing %s (its exercises' answers left unrun)", TEACHING_NOTEBOOK.name)
            execute_without_exercises(TEACHING_NOTEBOOK)
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = previous


if __name__ == "__main__":  # make notebooks: the package's module, whose logger the messages go through
    from pystatsml_tl.logs import show_messages
    from pystatsml_tl.runs.notebooks import refresh_committed_notebooks as refresh

    show_messages()
    refresh()
