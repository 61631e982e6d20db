"""The reports people look at: `check -o html` and `eval --report` as pages parsed here (every
claim and evidence span present and escaped, ids unique, size linear in the rows), `check -o
table`, and each command's --help listing exactly the outputs it writes. The browser half is
tests/test_browser.py."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import run_cli

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 1">'
SHORT = "<i onclick=go()>No.</i>"  # a claim of its own, within the tiny model's 48 tokens
SOURCES = [
    ["A man plays a guitar. The crowd cheers. It ends late.", {"id": "w", "text": HOSTILE}],
    "The team won the match. Fans cheered.",
]
ROWS = [
    {"source": SOURCES[0], "text": "A man plays music. It is early. The band stops."},
    {"source": SOURCES[1], "text": f"The team lost. {SHORT}"},
]


class Page(HTMLParser):
    """Elements by id, the claims and evidence pieces, and every script and event handler."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.claims: dict[str, dict] = {}
        self.pieces: list[tuple[list[str], str]] = []  # (claim ids, text) of evidence pieces
        self.scripts = 0
        self.handlers: list[str] = []
        self._open: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs) -> None:
        found = dict(attrs)
        if "id" in found:
            self.ids.append(found["id"])
        if tag == "script":
            self.scripts += 1
        self.handlers += [name for name in found if name.startswith("on")]
        self._open.append((tag, {**found, "text": ""}))

    def handle_data(self, data) -> None:
        for _, found in self._open:
            found["text"] += data

    def handle_endtag(self, tag) -> None:
        while self._open:
            name, found = self._open.pop()
            classes = found.get("class", "").split()
            if "claim" in classes:
                self.claims[found["id"]] = found
            if "ev" in classes:
                self.pieces.append((found["data-ev"].split(), found["text"]))
            if name == tag:
                return


def _checked(model, *args: str) -> tuple[str, list[dict]]:
    text = "".join(json.dumps(row) + "\n" for row in ROWS)
    page = run_cli(["check", "-m", str(model), "--precision", "fp32", "-o", "html", *args], text)
    assert page.returncode == 0, page.stderr
    lines = run_cli(["check", "-m", str(model), "--precision", "fp32", *args], text)
    return page.stdout, [json.loads(line) for line in lines.stdout.splitlines()]


def test_the_check_page_holds_every_claim_and_its_evidence_escaped(tiny_nli_model):
    html, rows = _checked(tiny_nli_model)
    page = Page(html)
    assert len(page.ids) == len(set(page.ids))
    assert page.scripts == 1 and page.handlers == []  # the page's own script, nothing of theirs
    assert HOSTILE not in html and "&lt;script&gt;window.pwned" in html
    assert "<i onclick" not in html and "&lt;i onclick=go()&gt;" in html
    claims = [claim for row in rows for claim in row["claims"]]
    assert len(page.claims) == len(claims)
    for number, row in enumerate(rows, start=1):
        for index, claim in enumerate(row["claims"]):
            shown = page.claims[f"r{number}-c{index}"]
            assert shown["text"] == claim["text"]
            assert shown["data-verdict"] == claim["verdict"].replace("_", " ")
            cited = "".join(text for ids, text in page.pieces if shown["id"] in ids)
            assert cited == claim["evidence"]["text"]
    verdicts = [claim["verdict"] for claim in claims]
    for verdict in ("supported", "contradicted", "not_supported"):
        said = re.search(rf'class="v-{verdict}">(\d+) ', html)
        assert said and int(said[1]) == verdicts.count(verdict)


def test_given_claims_and_fail_under_show(tiny_nli_model):
    rows = [{"source": "A man plays a guitar.", "given": ["A man plays.", "It rains."]}]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    args = ["check", "-m", str(tiny_nli_model), "--precision", "fp32", "-o", "html"]
    done = run_cli([*args, "--claims-field", "given", "--fail-under", "0.99"], text)
    assert done.returncode == 4, done.stderr
    page = Page(done.stdout)
    assert [c["text"] for c in page.claims.values()] == rows[0]["given"]
    assert "1 rows under --fail-under 0.99" in done.stdout


def test_the_page_grows_linearly_and_streams(tmp_path):
    from squeezenli.reports.check import CheckReport

    claim = {
        "text": "A man plays.",
        "start": 0,
        "end": 12,
        "verdict": "supported",
        "scores": {"entailment": 0.9},
        "evidence": {"source": 0, "start": 0, "end": 12, "text": "A man plays.", "scores": {}},
    }
    sizes = {}
    for rows in (1000, 10000):
        out = io.StringIO()
        report = CheckReport(out, "test")
        for number in range(rows):
            fields = {"claims": [claim], "score": 0.9}
            report.add(f"f:{number}", "A man plays.", [(0, "A man plays. It rains.")], fields)
            if number == 0:
                assert "A man plays." in out.getvalue()  # written as it comes
        report.close()
        sizes[rows] = len(out.getvalue())
    assert 9.5 < sizes[10000] / sizes[1000] < 10.5


def test_check_table_shows_claims_verdicts_and_evidence(tiny_nli_model):
    text = "".join(json.dumps(row) + "\n" for row in ROWS)
    args = ["check", "-m", str(tiny_nli_model), "--precision", "fp32", "-o", "table"]
    done = run_cli(args, text, COLUMNS="160")
    assert done.returncode == 0, done.stderr
    lines = run_cli(args[:-2], text)
    for row in map(json.loads, lines.stdout.splitlines()):
        for claim in row["claims"]:
            assert claim["verdict"] in done.stdout
            assert claim["text"][:12] in done.stdout
    assert "evidence" in done.stdout and "[w]" in done.stdout or "[0]" in done.stdout


@pytest.mark.parametrize(
    "command, outputs",
    [("check", "jsonl|csv|tsv|table|html"), ("batch", "jsonl|csv|tsv|table|parquet")],
)
def test_help_lists_exactly_the_outputs_a_command_writes(command, outputs):
    done = run_cli([command, "--help"], COLUMNS="200")
    assert f"<{outputs}>" in done.stdout, done.stdout


def test_the_eval_page_draws_what_eval_counts(tiny_nli_model, tmp_path):
    pairs = [
        {"premise": f"A man plays {i}.", "hypothesis": h, "label": label, "genre": f"g{i % 2}"}
        for i, (h, label) in enumerate(
            [("Music.", "entailment"), ("A cat.", "contradiction"), ("Noise.", "neutral")] * 8
        )
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    report = tmp_path / "report.html"
    args = ["eval", str(data), "-m", str(tiny_nli_model), "--precision", "fp32", "--by", "genre"]
    done = run_cli([*args, "--report", str(report), "--json"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    html = report.read_text()
    cells = [int(n) for n in re.findall(r'text-anchor="middle" fill="#[0-9a-f]+">(\d+)<', html)]
    classes = result["classes"]
    assert cells == [result["confusion"][g][p] for g in classes for p in classes]
    assert "<polyline" in html and "threshold " in html and "Reliability" in html
    assert all(f"<td>{group}</td>" in html for group in ("g0", "g1"))
    assert f"{result['accuracy']:.4f}" in html and Page(html).scripts == 0


def test_curves_agree_with_the_figures():
    from squeezenli.tasks.evaluation import Report, curves, roc_auc

    rng = np.random.default_rng(0)
    report = Report()
    for _ in range(500):
        gold = rng.choice(["entailment", "neutral", "contradiction"])
        score = float(np.clip(rng.normal(0.7 if gold == "entailment" else 0.4, 0.2), 0, 1))
        report.add(gold, "entailment" if score > 0.5 else "neutral", entailment=score)
    found = curves(report)
    roc = found["roc"]
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0) and (roc["fpr"][-1], roc["tpr"][-1]) == (
        1.0,
        1.0,
    )
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    scores = np.array(report.entailment)
    positive = np.array([g == "entailment" for g, _ in report.pairs])
    assert roc["auc"] == roc_auc(scores, positive)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(roc["auc"], abs=0.01)
    bins = found["reliability"]
    assert sum(b["pairs"] for b in bins) == 500
    for b in bins:
        inside = (scores >= b["low"]) & ((scores < b["high"]) | (b["high"] == 1.0))
        assert b["pairs"] == inside.sum()


def test_a_page_the_run_did_not_finish_says_so_and_a_refused_run_writes_none(tiny_nli_model):
    args = ["check", "-m", str(tiny_nli_model), "--precision", "fp32", "-o", "html"]
    text = json.dumps(ROWS[1]) + "\n" + json.dumps({"source": "A man."}) + "\n"  # no text
    stopped = run_cli(args, text)
    assert stopped.returncode == 2, stopped.stderr
    assert "the run stopped early" in stopped.stdout and stopped.stdout.endswith("</html>\n")
    assert len(Page(stopped.stdout).claims) == 3  # the first row's
    refused = run_cli([*args, "--label-order", "a,b,c"], text)
    assert refused.returncode != 0 and refused.stdout == ""
