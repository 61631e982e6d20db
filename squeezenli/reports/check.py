"""`check -o html`: one self-contained page for any number of checked rows, written as the rows
come (its size linear in theirs). Each row shows its text with every claim coloured by its
verdict; selecting a claim (a click, or Enter on it) highlights its evidence inside its
passage and says the passage, verdict and scores. Rows are collapsed past the first few and
paginated; the totals come at the end of the stream and are shown at the top.

Every text is escaped, and the page's only script is its own: a source holding `<script>`
shows as text. Evidence is marked in the page itself, not built by the script: a passage is
cut where any evidence starts or ends, and each piece names the claims that cite it
(`data-ev`), so the page can be read (and tested) without running anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import IO, Any

from squeezenli.reports.page import esc, head, tail

OPEN_ROWS = 3  # rows shown open; the others are one line each until opened
PAGE_ROWS = 50  # rows a page shows (the script pages them; without it, every row shows)
VERDICTS = ("supported", "contradicted", "not_supported")

SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("section.row"));
  var nav = document.getElementById("pages"), size = __PAGE__, current = null;
  function show(page) {
    rows.forEach(function (row, i) { row.hidden = Math.floor(i / size) !== page; });
    Array.prototype.forEach.call(nav.children, function (b, i) {
      if (i === page) b.setAttribute("aria-current", "page");
      else b.removeAttribute("aria-current");
    });
  }
  if (rows.length > size) {
    for (var p = 0; p * size < rows.length; p++) {
      var b = document.createElement("button");
      b.textContent = (p * size + 1) + "-" + Math.min((p + 1) * size, rows.length);
      b.addEventListener("click", show.bind(null, p));
      nav.appendChild(b);
    }
    show(0);
  }
  var totals = document.getElementById("totals");
  if (totals) document.getElementById("summary").appendChild(totals);
  function select(claim) {
    if (current) {
      current.classList.remove("active");
      document.querySelectorAll(".ev.active").forEach(function (e) {
        e.classList.remove("active");
      });
    }
    current = claim;
    claim.classList.add("active");
    var row = claim.closest("section.row"), id = claim.id, marks = row.querySelectorAll(
      '.ev[data-ev~="' + id + '"]');
    marks.forEach(function (e) { e.classList.add("active"); });
    var d = claim.dataset, detail = row.querySelector(".detail");
    detail.textContent = "";
    [["verdict", d.verdict], ["claim scores", d.scores], ["passage", d.passage],
     ["evidence scores", d.evidenceScores]].forEach(function (item) {
      if (item[1] === undefined) return;
      var line = document.createElement("div"), name = document.createElement("b");
      name.textContent = item[0] + ": ";
      line.appendChild(name);
      line.appendChild(document.createTextNode(item[1]));
      detail.appendChild(line);
    });
    if (marks.length) marks[0].scrollIntoView({block: "nearest"});
  }
  document.addEventListener("click", function (event) {
    var claim = event.target.closest(".claim");
    if (claim) select(claim);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.classList.contains("claim")) select(event.target);
  });
})();
""".replace("__PAGE__", str(PAGE_ROWS))


def _scores(scores: dict | None) -> str:
    if not isinstance(scores, dict):
        return ""
    return ", ".join(f"{name} {value:.3f}" for name, value in scores.items())


class CheckReport:
    """The page, written to `out` a row at a time: `add` each checked row, then `close`."""

    def __init__(self, out: IO[str], subtitle: str, fail_under: float | None = None) -> None:
        self.out = out
        self.fail_under = fail_under
        self.rows = 0
        self.under = 0
        self.verdicts: Counter[str] = Counter()
        out.write(head("squeezenli check", subtitle))
        out.write('<div id="summary"></div><nav class="pages" id="pages"></nav></header>\n<main>\n')

    def add(
        self, where: str, text: str | None, passages: Sequence[tuple[Any, str]], fields: dict
    ) -> None:
        """One checked row: where it came from (file:line), its text (None when its claims
        were given), its passages (key, text) and the result's fields (claims, score)."""
        self.rows += 1
        number = self.rows
        claims = [c for c in fields.get("claims") or [] if isinstance(c, dict)]
        counts = Counter(str(c.get("verdict")) for c in claims)
        self.verdicts.update(counts)
        score = fields.get("score")
        under = self.fail_under is not None and score is not None and score < self.fail_under
        self.under += under
        shown = " open" if number <= OPEN_ROWS else ""
        told = ", ".join(f"{counts[v]} {v.replace('_', ' ')}" for v in VERDICTS if counts[v])
        score_text = "no claims" if score is None else f"score {score:.3f}"
        flag = " · under --fail-under" if under else ""
        ids = [f"r{number}-c{i}" for i in range(len(claims))]
        write = self.out.write
        write(f'<section class="row" id="row-{number}"><details{shown}><summary>')
        write(f"<b>row {number}</b> · {esc(where)} · {esc(score_text)}")
        write(f"{' · ' + esc(told) if told else ''}{esc(flag)}</summary>\n")
        write(f'<div class="text">{_claims_in_text(text, claims, ids)}</div>')
        write('<div class="detail">Select a claim to see its evidence.</div>')
        for index, (key, passage) in enumerate(passages):
            write(_passage(f"r{number}-p{index}", key, passage, claims, ids))
        write("</details></section>\n")

    def close(self, complete: bool = True) -> None:
        """The totals (shown at the top by the page's script), and the page's end; a run
        that stopped early (an error, a signal) says so beside them."""
        parts = [f"<span>{self.rows} rows</span>"]
        if not complete:
            parts.insert(
                0,
                '<b class="v-contradicted">the run stopped early: the rows here '
                "are those before it (see its error on stderr)</b> ",
            )
        for verdict in VERDICTS:
            name = verdict.replace("_", " ")
            parts.append(f'<span class="v-{verdict}">{self.verdicts[verdict]} {name}</span>')
        if self.fail_under is not None:
            parts.append(f"<span>{self.under} rows under --fail-under {self.fail_under:g}</span>")
        self.out.write(f'</main>\n<div id="totals" class="counts">{"".join(parts)}</div>')
        self.out.write(tail(SCRIPT))


def _claim(claim: dict, claim_id: str) -> str:
    verdict = str(claim.get("verdict"))
    found = claim.get("evidence")
    evidence: dict = found if isinstance(found, dict) else {}
    attributes = {
        "id": claim_id,
        "class": f"claim v-{verdict}",
        "tabindex": "0",
        "role": "button",
        "data-verdict": verdict.replace("_", " "),
        "data-scores": _scores(claim.get("scores")),
        "data-passage": str(evidence.get("source", "")),
        "data-evidence-scores": _scores(evidence.get("scores")),
    }
    inner = " ".join(f'{name}="{esc(value)}"' for name, value in attributes.items())
    return f"<span {inner}>{esc(claim.get('text', ''))}</span>"


def _claims_in_text(text: str | None, claims: list[dict], ids: list[str]) -> str:
    """The text with each claim in place; claims without places in it (given claims) as a
    list of their own."""
    placed = [
        (c["start"], c["end"], c, i)
        for c, i in zip(claims, ids)
        if isinstance(c.get("start"), int) and isinstance(c.get("end"), int)
    ]
    if text is None or len(placed) != len(claims):
        return " ".join(_claim(c, i) for c, i in zip(claims, ids))
    found, at = [], 0
    for start, end, claim, claim_id in sorted(placed, key=lambda item: item[0]):
        if start < at:  # overlapping places: not a text this page can colour
            return " ".join(_claim(c, i) for c, i in zip(claims, ids))
        found.append(esc(text[at:start]))
        found.append(_claim({**claim, "text": text[start:end]}, claim_id))
        at = end
    found.append(esc(text[at:]))
    return "".join(found)


def _passage(element: str, key: Any, text: str, claims: list[dict], ids: list[str]) -> str:
    """A passage, cut where any evidence in it starts or ends; each piece names the claims
    whose evidence it is part of."""
    spans = []
    for claim, claim_id in zip(claims, ids):
        evidence = claim.get("evidence")
        if not isinstance(evidence, dict) or evidence.get("source") != key:
            continue
        start, end = evidence.get("start"), evidence.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
            spans.append((start, end, claim_id))
    cuts = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    pieces = []
    for start, end in zip(cuts, cuts[1:]):
        citing = [i for s, e, i in spans if s <= start and end <= e]
        piece = esc(text[start:end])
        pieces.append(
            f'<span class="ev" data-ev="{esc(" ".join(citing))}">{piece}</span>'
            if citing
            else piece
        )
    title = f"passage {esc(key)}" + ("" if spans else " (cited by no claim)")
    body = f'<div class="passage" id="{element}">{"".join(pieces)}</div>'
    if not spans:
        return f'<details><summary class="passage-title">{title}</summary>{body}</details>'
    return f"<h3>{title}</h3>{body}"
