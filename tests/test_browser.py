"""The reports in a real browser: Debian's headless Chromium, driven by selenium through
chromedriver. Each page renders without console errors; selecting a claim highlights its
evidence and says its verdict; a source holding `<script>` or an event handler runs
nothing. The screenshots taken here are the pictures in docs/reports.md.

Skips, saying why, where chromium, chromedriver or selenium is missing (.ci/run installs
them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from test_reports import HOSTILE, ROWS

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip(
        "no chromium or chromedriver: apt-get install chromium chromium-driver (.ci/run does)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,800",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_check_page_selects_a_claims_evidence_and_runs_nothing_it_holds(
    browser, tiny_nli_model, tmp_path
):
    from selenium.webdriver.common.by import By

    text = "".join(json.dumps(row) + "\n" for row in ROWS)
    args = ["check", "-m", str(tiny_nli_model), "--precision", "fp32"]
    page = run_cli([*args, "-o", "html"], text)
    assert page.returncode == 0, page.stderr
    rows = [json.loads(line) for line in run_cli(args, text).stdout.splitlines()]
    path = tmp_path / "check.html"
    path.write_text(page.stdout)
    browser.get(path.as_uri())
    assert _errors(browser) == []
    assert browser.execute_script("return window.pwned === undefined")  # nothing of theirs ran
    shown = browser.find_element(By.ID, "row-1").get_attribute("textContent")
    assert HOSTILE in shown  # as text
    claim = browser.find_element(By.ID, "r1-c0")
    claim.click()
    marked = browser.find_elements(By.CSS_SELECTOR, ".ev.active")
    assert marked and all("r1-c0" in m.get_attribute("data-ev").split() for m in marked)
    assert "".join(m.text for m in marked) == rows[0]["claims"][0]["evidence"]["text"]
    detail = browser.find_element(By.CSS_SELECTOR, "#row-1 .detail").text
    assert rows[0]["claims"][0]["verdict"].replace("_", " ") in detail
    assert "active" in claim.get_attribute("class").split()
    totals = browser.find_element(By.ID, "summary").text
    assert f"{len(rows)} rows" in totals  # the totals, moved to the top
    IMAGES.mkdir(exist_ok=True)
    browser.save_screenshot(str(IMAGES / "check-report.png"))
    assert _errors(browser) == []


def test_the_eval_page_renders(browser, tiny_nli_model, tmp_path):
    from selenium.webdriver.common.by import By

    pairs = [
        {"premise": f"A man plays {i}.", "hypothesis": h, "label": label}
        for i, (h, label) in enumerate(
            [("Music.", "entailment"), ("A cat.", "contradiction"), ("Noise.", "neutral")] * 20
        )
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    report = tmp_path / "eval.html"
    args = ["eval", str(data), "-m", str(tiny_nli_model), "--precision", "fp32"]
    assert run_cli([*args, "--report", str(report)]).returncode == 0
    browser.set_window_size(1100, 1250)
    browser.get(report.as_uri())
    assert _errors(browser) == []
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")
    assert len(charts) == 3 and all(c.size["width"] > 200 for c in charts)
    browser.save_screenshot(str(IMAGES / "eval-report.png"))
