"""The report in a real browser (headless Chromium) and its dual-use redaction.

The report is built from stored runs of a scripted model (no weights). Chromium must render its
plots (SVG) and tables and log no console error. `.ci/run` installs Chromium when it is missing;
this test installs it too when it can (root with apt-get), and skips, saying why, only when it
cannot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_study_gate import ScriptedModel, write_study
from typer.testing import CliRunner

from refute.cli import app
from refute.gate import study_gate
from refute.report._document import build_report
from refute.report._html import write_report
from refute.store import Store
from refute.study import load_study, run_study

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_INSTALL = ("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            "chromium chromium-driver")


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    path = _find_chromium()
    if path is None and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["bash", "-c", _INSTALL], capture_output=True, timeout=1200, check=False)
        path = _find_chromium()
    if path is None:
        pytest.skip("Chromium is not installed and could not be installed here (needs root and apt-get; "
                    f"`.ci/run` installs it: {_INSTALL})")
    return path


@pytest.fixture(scope="module")
def study_store(tmp_path_factory):
    """A store with a whole small study, run on the scripted model."""
    folder = tmp_path_factory.mktemp("report")
    path = write_study(folder)
    with Store(folder / "refute.db") as store:
        run_study(load_study(path), store, model=ScriptedModel(), progress=False, gate=study_gate)
    return folder, path


@pytest.fixture(scope="module")
def report_html(study_store):
    folder, path = study_store
    with Store(folder / "refute.db") as store:
        html, md = write_report(build_report(store, str(path)), folder / "out" / "report.html")
    return html, md


class Page:
    """What the browser saw: the rendered DOM's counts and the console's errors."""

    def __init__(self, svgs: int, marks: int, tables: list[str], text: str, errors: list[str]) -> None:
        self.svgs, self.marks, self.tables, self.text, self.errors = svgs, marks, tables, text, errors


def _open_with_selenium(chromium: str, url: str) -> Page | None:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
    except ImportError:
        return None
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='refute-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        driver.set_page_load_timeout(60)
        driver.get(url)
        svgs = len(driver.find_elements(By.CSS_SELECTOR, "svg.plot"))
        marks = len(driver.find_elements(By.CSS_SELECTOR, "svg.plot g.mark"))
        tables = [t.get_attribute("data-table") for t in driver.find_elements(By.CSS_SELECTOR, "table[data-table]")]
        # a plot that rendered has a size
        sizes = driver.execute_script(
            "return Array.from(document.querySelectorAll('svg.plot')).map(s => s.getBoundingClientRect().width)")
        assert all(w > 100 for w in sizes), sizes
        text = driver.find_element(By.TAG_NAME, "body").text
        errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        driver.quit()
    return Page(svgs, marks, tables, text, errors)


def _open_with_dump_dom(chromium: str, url: str) -> Page:
    """Fallback without selenium: the DOM after load, and console messages from Chromium's log
    (the report has no script, so any console message counts as an error)."""
    import re

    user_dir = tempfile.mkdtemp(prefix="refute-chromium-")
    proc = subprocess.run([chromium, *FLAGS, f"--user-data-dir={user_dir}", "--enable-logging=stderr", "--v=1",
                           "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False)
    dom = proc.stdout
    errors = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Failed to load resource" in line]
    tables = re.findall(r'<table data-table="([^"]+)"', dom)
    return Page(dom.count('<svg xmlns="http://www.w3.org/2000/svg" class="plot"'), dom.count('<g class="mark">'),
                tables, re.sub(r"<[^>]+>", " ", dom), errors)


@pytest.fixture(params=["selenium", "dump-dom"])
def open_page(request, chromium):
    """Open a file in headless Chromium through chromedriver (selenium) or with --dump-dom."""

    def opener(path: Path) -> Page:
        url = path.resolve().as_uri()
        if request.param == "dump-dom":
            return _open_with_dump_dom(chromium, url)
        page = _open_with_selenium(chromium, url)
        if page is None:
            pytest.skip("selenium or chromedriver missing (pip install selenium; apt-get install chromium-driver)")
        return page

    return opener


def test_the_report_renders_its_plots_and_tables_without_console_errors(open_page, report_html):
    html, md = report_html
    page = open_page(html)
    assert page.errors == []
    # measures, refusal (harmful), over-refusal (look-alikes), robustness gap, capability, judge
    assert page.svgs >= 6 and page.marks >= 30
    for table in ("measures", "gate", "safeguards", "gap-robustness", "cat-harmful", "judge", "runs", "methods"):
        assert table in page.tables, page.tables
    for words in ("RESTRICT", "Established", "Uncertain", "Not ruled out", "no single safety score",
                  "Refusal beside over-refusal", "Capability controls", "Judge calibration"):
        assert words in page.text or words.upper() in page.text.upper(), words
    assert "Interpretability effects (no intervention runs)" in page.text or "interpretability effects" in page.text
    assert md.read_text().startswith("# A small refusal study")


def test_the_console_check_can_fail(open_page, tmp_path):
    """A page that does log an error is caught, so a clean result above means something."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("boom")</script>'
                   '<svg class="plot"></svg></body></html>')
    assert open_page(bad).errors


def test_the_report_is_self_contained(report_html):
    text = report_html[0].read_text()
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text and "<link" not in text


# --- dual-use care ---------------------------------------------------------------------------------


def _harmful_payloads(folder: Path) -> tuple[set[str], set[str]]:
    """Complied harmful replies, and transformed (base64) harmful prompts, from the store."""
    replies, attacks = set(), set()
    with Store(folder / "refute.db") as store:
        for run in store.list_runs():
            if run.kind == "capability" or "lookalike" in (run.name or ""):
                continue
            for s in store.samples(run.id):
                if s.completion and "SECRET-PAYLOAD" in s.completion:
                    replies.add(s.completion)
                if s.transform_chain == "base64":
                    attacks.add(s.messages[0]["content"])
    return replies, attacks


def test_harmful_replies_and_attack_prompts_are_redacted_by_default(study_store, tmp_path):
    folder, path = study_store
    replies, attacks = _harmful_payloads(folder)
    assert replies and attacks
    runner = CliRunner()
    out = tmp_path / "default.html"
    result = runner.invoke(app, ["report", str(path), "--store", str(folder / "refute.db"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    for f in (out, out.with_suffix(".md")):
        text = f.read_text()
        assert "SECRET-PAYLOAD" not in text
        assert not any(a in text for a in attacks)
        assert "reply redacted" in text and "base64 prompt, sha256" in text
    full = tmp_path / "full.html"
    result = runner.invoke(app, ["report", str(path), "--store", str(folder / "refute.db"), "-o", str(full),
                                 "--unredacted"])
    assert result.exit_code == 0, result.output
    text = full.read_text()
    assert "SECRET-PAYLOAD" in text
    assert any(a in text for a in attacks)


def test_a_run_report_redacts_too_and_shows_its_gap(study_store, tmp_path):
    folder, _ = study_store
    with Store(folder / "refute.db") as store:
        gap_run = next(r for r in store.list_runs() if r.kind == "redteam")
        doc = build_report(store, gap_run.id[:8])
    html, _ = write_report(doc, tmp_path / "run.html")
    text = html.read_text()
    assert "SECRET-PAYLOAD" not in text and doc.gaps and "Robustness gap" in text
