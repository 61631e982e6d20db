"""Claims against sources: is each sentence of a text (an answer, a summary) supported by
the document it came from?

The text is split into sentences (the claims, by pySBD as documents.py splits premises);
the source into windows of whole sentences that fit beside the longest claim. Every claim
is scored against every window; the deciding window (Aggregate, documents.py) gives the
claim its probabilities and its evidence. A claim is supported when its deciding window's
entailment probability is at least CheckOptions.support, else contradicted when some
window's contradiction probability reaches CheckOptions' threshold for that, else not
supported. The row's score is the mean (or the minimum) of its claims' entailment
probabilities, and its supported text the text with only its supported sentences.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from squeezenli.choices import OnError, RowScore
from squeezenli.errors import InputError
from squeezenli.models.labels import LabelMap
from squeezenli.records.readers import ColumnsError, Record, RowError, RowFailure, text_field
from squeezenli.runtime.engine import softmax
from squeezenli.runtime.model import SCORE_DIGITS, NLIModel
from squeezenli.tasks.documents import Chunker, Window, deciding_window
from squeezenli.tasks.documents import sentence_spans as split_sentences
from squeezenli.tasks.options import CheckOptions
from squeezenli.tasks.scoring import Result, score_scored


class Verdict(str, Enum):
    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    NOT_SUPPORTED = "not_supported"


@dataclass(frozen=True)
class Claim:
    """One sentence of the text, [start, end) in it, and what its source says of it."""

    text: str
    start: int
    end: int
    verdict: Verdict
    scores: dict[str, float]
    evidence_start: int  # the deciding window's characters in the source
    evidence_end: int
    evidence_text: str

    def fields(self) -> dict:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "verdict": self.verdict.value,
            "scores": {name: round(value, SCORE_DIGITS) for name, value in self.scores.items()},
            "evidence": {
                "start": self.evidence_start,
                "end": self.evidence_end,
                "text": self.evidence_text,
            },
        }


@dataclass(frozen=True)
class Check:
    """A text checked against its source: its claims, its score, its supported sentences."""

    claims: list[Claim]
    score: float
    supported_text: str
    windows: int  # the source was read in this many windows

    def fields(self) -> dict:
        """What a checked row adds: `claims`, `score`, `supported_text`, `windows`."""
        return {
            "claims": [claim.fields() for claim in self.claims],
            "score": round(self.score, SCORE_DIGITS),
            "supported_text": self.supported_text,
            "windows": self.windows,
        }


@dataclass(frozen=True)
class _Plan:
    """A row's claims (spans in its text) and its source's windows, until scored."""

    claims: list[tuple[int, int]]
    windows: list[Window]


class ClaimChecker:
    """Turns records into their (claim, window) pairs and scored pairs into Checks."""

    def __init__(self, nli: NLIModel, options: CheckOptions) -> None:
        self.nli = nli
        self.fields = (options.source_field, options.text_field)
        self.options = options
        for name in ("entailment", "contradiction"):  # a verdict needs both
            if name not in nli.labels.names:
                raise InputError(
                    f"checking claims needs an '{name}' label; {nli.labels.describe()}"
                )
        self._chunker = Chunker(nli.engine.tokenizer)
        self._plans: dict[int, _Plan] = {}
        self._seen_columns = False

    def __call__(self, record: Record) -> list:
        assert record.data is not None
        if not self._seen_columns:
            missing = [name for name in self.fields if name not in record.data]
            if missing:
                raise ColumnsError(
                    f"{record.where}: no '{missing[0]}' field; columns present: "
                    f"{', '.join(record.data) or 'none'}; use --source-field and --text-field"
                )
            self._seen_columns = True
        source, text = (text_field(record, name) for name in self.fields)
        claims = [(a, b) for a, b in _trimmed(text, split_sentences(text)) if b > a]
        if not claims:
            message = f"'{self.fields[1]}' has no sentence to check"
            raise RowFailure(RowError.of(record, message, self.fields[1]))
        tokenizer = self.nli.engine.tokenizer
        claim_ids = []
        for a, b in claims:
            found = tokenizer.tokens(text[a:b])
            if isinstance(found, str):
                raise RowFailure(RowError.of(record, found, self.fields[1]))
            claim_ids.append(found.ids.tolist())
        room = self._chunker.budget(max(map(len, claim_ids)))
        if isinstance(room, str):
            message = f"'{self.fields[1]}': its longest sentence {room}"
            raise RowFailure(RowError.of(record, message, self.fields[1]))
        cut = self._chunker.spans(source, room)
        if isinstance(cut, str):
            raise RowFailure(RowError.of(record, cut, self.fields[0]))
        doc, ranges = cut
        windows = [self._chunker.window(doc, a, b, []) for a, b in ranges]
        self._plans[id(record)] = _Plan(claims, windows)
        return [tokenizer.pair(doc.ids[a:b].tolist(), ids) for ids in claim_ids for a, b in ranges]

    def check(self, record: Record, logits: np.ndarray) -> Check:
        plan = self._plans.pop(id(record))
        source, text = (text_field(record, name) for name in self.fields)
        probs = softmax(logits).reshape(len(plan.claims), len(plan.windows), -1)
        labels: LabelMap = self.nli.labels
        entail = labels.names.index("entailment")
        contradiction = labels.names.index("contradiction")
        order = labels.ordered()
        claims = []
        for (a, b), windows in zip(plan.claims, probs):
            at = deciding_window(windows, labels, self.options.aggregate)
            if windows[at, entail] >= self.options.support:
                verdict = Verdict.SUPPORTED
            elif windows[:, contradiction].max() >= self.options.contradict:
                verdict = Verdict.CONTRADICTED
            else:
                verdict = Verdict.NOT_SUPPORTED
            window = plan.windows[at]
            scores = {labels.names[i]: float(windows[at, i]) for i in order}
            claims.append(
                Claim(
                    text[a:b],
                    a,
                    b,
                    verdict,
                    scores,
                    window.start,
                    window.end,
                    source[window.start : window.end],
                )
            )
        entailment = [claim.scores["entailment"] for claim in claims]
        if self.options.row_score is RowScore.MIN:
            score = min(entailment)
        else:
            score = float(np.mean(entailment))
        supported = "".join(
            text[c.start : c.end] + _space_after(text, c.end)
            for c in claims
            if c.verdict is Verdict.SUPPORTED
        ).strip()
        return Check(claims, score, supported, len(plan.windows))

    def forget(self, record: Record) -> None:
        self._plans.pop(id(record), None)


def _trimmed(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentence spans without their leading and trailing white space."""
    found = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        found.append((a, b))
    return found


def _space_after(text: str, end: int) -> str:
    """The white space that followed a sentence (one space at the end of the text)."""
    at = end
    while at < len(text) and text[at].isspace():
        at += 1
    return text[end:at] or " "


def check_records(
    nli: NLIModel,
    records: Iterable[Record],
    options: CheckOptions | None = None,
    *,
    on_error: OnError | str = OnError.SKIP,
    timely: bool = False,
    **changes: Any,
) -> Iterator[Result[Check]]:
    """A Result per record, in input order: its Check (module docstring), or the error. The
    options: CheckOptions, or its fields as `changes`."""
    checker = ClaimChecker(nli, CheckOptions.of(options, **changes))
    for done in score_scored(nli, records, checker, on_error=on_error, timely=timely):
        if done.error:
            checker.forget(done.record)
            yield Result(done.record, error=done.error)
            continue
        assert done.logits is not None
        yield Result(done.record, checker.check(done.record, done.logits))
