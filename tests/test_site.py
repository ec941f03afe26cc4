"""The course page: ``docs/build.py`` builds it offline; in headless Chromium every page renders,
every internal link and image resolves, the formulas are typeset, and no request leaves the site."""
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK
from pystatsml_tl.teaching.assignment import solution_lines

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ("index.html", "_generated/lesson.html", "student.html", "teacher.html", "sample-report.html")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "html"
    done = subprocess.run([sys.executable, str(DOCS / "build.py"), "--out", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _visit(browser, site: Path, page_path: str) -> dict:
    """Open one page with every request outside the site refused; what it loaded and shows."""
    page = browser.new_page()
    outside, errors = [], []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(("data:", "about:")) or (url.startswith("file://") and Path(urlparse(url).path).resolve()
                                       .is_relative_to(site.resolve())):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((site / page_path).as_uri(), wait_until="networkidle")
    if page_path.endswith("lesson.html"):
        page.wait_for_function("() => document.querySelectorAll('span.MathJax').length > 0", timeout=30_000)
    seen = {"outside": outside, "errors": errors, "title": page.title(), "text": page.inner_text("body"),
            "links": page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"),
            "images": page.eval_on_selector_all("img", "images => images.map(i => [i.src, i.naturalWidth])"),
            "math": page.locator("span.MathJax").count()}
    page.close()
    return seen


def test_the_site_builds_offline_and_every_page_renders(site):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is needed for this test: `make browser` installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        seen = {path: _visit(browser, site, path) for path in PAGES}
        browser.close()
    for path, page in seen.items():
        assert page["outside"] == [] and page["errors"] == [], (path, page["outside"], page["errors"])
        assert page["images"] == [] or all(width > 0 for _, width in page["images"]), (path, page["images"])
        for link in page["links"]:
            target, _ = urldefrag(link)
            if target.startswith("file://"):
                assert Path(urlparse(target).path).exists(), (path, link)
    lesson = seen["_generated/lesson.html"]
    assert lesson["math"] > 0 and len(lesson["images"]) >= 10  # typeset by the site's MathJax; the figures
    assert "Fine-tuning every layer, SGD" in lesson["text"] and "Exercise 1" in lesson["text"]
    answers = _exercise_answers()
    assert len(answers) >= 5 and not [line for line in answers if line in lesson["text"]]
    assert "BEGIN SOLUTION" not in lesson["text"]
    student_links = [link for link in seen["student.html"]["links"] if link.endswith(".ipynb")]
    assert len(student_links) == 1 and "NotImplementedError" in Path(urlparse(student_links[0]).path).read_text()
    for heading in ("Learning objectives", "Prerequisites", "90-minute plan", "Without network",
                    "Mistakes the checks catch"):
        assert heading in seen["teacher.html"]["text"], heading
    assert "Which differences are real" in seen["sample-report.html"]["text"]
    assert len(seen["sample-report.html"]["images"]) == 2


def _exercise_answers() -> list[str]:
    """The lines of the exercises' answers that the rest of the lesson does not also show."""
    import nbformat

    from pystatsml_tl.teaching.assignment import without_exercises

    nb = nbformat.read(TEACHING_NOTEBOOK, as_version=4)
    lesson = {line.strip() for cell in without_exercises(nb).cells for line in cell.source.splitlines()}
    return [line for line in solution_lines(nb) if line not in lesson]
