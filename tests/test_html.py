"""summary.html in a real browser: Debian's chromium, headless, driven by Playwright."""
import shutil
from pathlib import Path

import pytest
from conftest import SMOKE_EXPERIMENTS


def _open(browser, path: Path, screenshot: Path | None = None) -> dict:
    """Load ``path`` in a new page; return what a reader would see and what the page asked for."""
    page = browser.new_page()
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri(), wait_until="networkidle")
    seen = {
        "requests": [url for url in requests if not url.startswith("data:")], "errors": errors,
        "images": page.eval_on_selector_all(
            "img", "images => images.map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])"),
        "tables": page.locator("table").count(), "rows": page.locator("tbody tr").count(),
        "links": page.eval_on_selector_all("a[href$='.html']", "links => links.map(a => a.getAttribute('href'))"),
        "text": page.inner_text("body"),
    }
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return seen


def test_summary_html_renders_offline_in_chromium(smoke_report, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is needed for this test: `make browser` installs it")
    out, _ = smoke_report
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = _open(browser, out / "summary.html", screenshot=tmp_path / "summary-html.png")
        notebooks = [_open(browser, out / link) for link in page["links"]]
        browser.close()
    assert page["requests"] == [(out / "summary.html").as_uri()], page["requests"]  # nothing outside the file
    assert page["errors"] == []
    assert page["tables"] >= 1 and page["rows"] >= len(SMOKE_EXPERIMENTS)  # a row per experiment
    assert len(page["images"]) >= 2 and all(done and width > 0 and height > 0 for done, width, height, _ in
                                            page["images"])
    assert "Which differences are real" in page["text"] and "How this report was made" in page["text"]
    assert len(page["links"]) == len(SMOKE_EXPERIMENTS)  # one executed notebook per experiment
    for link, notebook in zip(page["links"], notebooks):
        assert notebook["requests"] == [(out / link).as_uri()] and notebook["errors"] == [], (link, notebook)
        assert all(width > 0 for _, width, _, _ in notebook["images"])
    assert (tmp_path / "summary-html.png").stat().st_size > 10_000
