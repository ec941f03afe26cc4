"""The lesson in a real JupyterLab, where students run it: served on a free local port with a
temporary token, opened in Debian's chromium through Playwright, run with Run All from the menu."""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK

RUN_SECONDS = 420
"""The longest the lesson may take to run through the page (it takes a few minutes on 2 cores)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def figures(nb) -> int:
    """How many figures (PNG outputs) a notebook's cells hold."""
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def wait_for_server(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab stopped with status {server.returncode} (its log is in the test's folder)")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer at {url} within {seconds} s")


def prompts(page) -> list[str]:
    """The input prompts of the notebook's code cells as the page shows them: "[3]:", "[*]:" or "[ ]:"."""
    return page.eval_on_selector_all(".jp-CodeCell .jp-InputPrompt", "ps => ps.map(p => p.textContent.trim())")


def test_the_lesson_runs_all_in_jupyterlab(tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is needed for this test: `make browser` installs it")
    lesson = nbformat.read(TEACHING_NOTEBOOK, as_version=4)
    expected_figures = figures(lesson)  # the committed outputs: the headless run's figures
    code = [c for c in lesson.cells if c.cell_type == "code"]
    for cell in code:  # as a student opens it: no outputs yet
        cell.outputs, cell.execution_count = [], None
    assert "parameters" in code[1].metadata.get("tags", [])
    code[1].source = code[1].source.replace("seeds = 5", "seeds = 1")  # a shorter curve, the same figures
    root = tmp_path / "lab"
    root.mkdir()
    nbformat.write(lesson, root / "lesson.ipynb")
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell in the page, not only those scrolled into view (JupyterLab 4 renders a window of cells)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(16)
    env = {"JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"],  # CI runs as root
        env=os.environ | env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/lab/tree/lesson.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
            idle = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
            page.wait_for_selector(idle, timeout=60_000)
            page.wait_for_timeout(5000)  # the session settles on its kernel (JupyterLab may start one more)
            page.wait_for_selector(idle, timeout=60_000)
            page.click(".lm-MenuBar-item:has-text('Run')")
            page.click(".lm-Menu-item[data-command='runmenu:run-all']")  # Run > Run All Cells
            deadline = time.monotonic() + RUN_SECONDS
            while time.monotonic() < deadline:
                shown = prompts(page)
                if shown and all(p.strip("[]:").isdigit() for p in shown):
                    break
                time.sleep(2)
            shown = prompts(page)
            page.screenshot(path=str(tmp_path / "lesson-in-jupyterlab.png"))
            finished = all(p.strip("[]:").isdigit() for p in shown)
            if finished:
                page.keyboard.press("Control+s")
                page.wait_for_timeout(2000)
                images = page.locator(".jp-OutputArea-output img").count()
                errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count()
                timing = page.locator(".jp-OutputArea-output", has_text="this run of the lesson took").count()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert finished, f"not every cell ran within {RUN_SECONDS} s: {shown} (screenshot in the test's folder)"
    assert len(shown) == len(code)  # every code cell got an execution count
    assert errors == 0
    assert images == expected_figures
    assert timing == 1  # the lesson's own time, printed before the exercises (which ran too)
    saved = nbformat.read(root / "lesson.ipynb", as_version=4)
    ran = [c for c in saved.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in ran)
    assert not [o for c in ran for o in c.outputs if o.output_type == "error"]
    assert (tmp_path / "lesson-in-jupyterlab.png").stat().st_size > 10_000
