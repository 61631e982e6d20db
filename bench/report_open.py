"""How a large `check -o html` page behaves in a browser: writes a report of --rows rows (two
claims each, a ~1 KB passage), opens it in headless Chromium (Debian's chromium and
chromedriver, driven by selenium) and prints its size, the time to load it and the time to
select a claim.

    python bench/report_open.py --rows 10000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from squeezenli.reports.check import CheckReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10000)
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    claim = {
        "text": "A man plays.",
        "start": 0,
        "end": 12,
        "verdict": "supported",
        "scores": {"entailment": 0.9, "neutral": 0.05, "contradiction": 0.05},
        "evidence": {"source": 0, "start": 0, "end": 12, "text": "A man plays.", "scores": {}},
    }
    other = {**claim, "start": 13, "end": 22, "text": "It rains.", "verdict": "not_supported"}
    passage = "A man plays. " + "The crowd cheers in the hall while the band plays on. " * 20
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "report.html"
        with open(page, "w", encoding="utf-8") as out:
            report = CheckReport(out, f"{args.rows} rows")
            for number in range(args.rows):
                fields = {"claims": [claim, other], "score": 0.7}
                report.add(f"f:{number}", "A man plays. It rains.", [(0, passage)], fields)
            report.close()
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu"):
            options.add_argument(flag)
        options.add_argument("--disable-background-networking")
        options.add_argument(f"--user-data-dir={folder}/chromium")
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            started = time.perf_counter()
            driver.get(page.as_uri())
            loaded = time.perf_counter()
            driver.find_element("id", "r2-c0").click()
            selected = time.perf_counter()
        finally:
            driver.quit()
        size = os.path.getsize(page) / 1e6
    print(f"{args.rows} rows: {size:.1f} MB; loaded in {loaded - started:.2f} s; a claim selected")
    print(f"in {(selected - loaded) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
