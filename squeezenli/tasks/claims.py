"""Claims against sources: is each sentence of a text (an answer, a summary) supported by
the passages it came from, and which sentence of which passage says so?

The claims are the text's sentences (pySBD, as documents.py splits premises), or the list
the caller gives (CheckOptions.claims_field). The source is one passage or a list of them
(passages.py); each passage is cut into windows of whole sentences that fit beside the
longest claim, and windows never cross passages. Every claim is scored against every
window; the deciding window (Aggregate, documents.py) gives the claim its probabilities. A
claim is supported when that window's entailment probability is at least
CheckOptions.support, else contradicted when some window's contradiction probability
reaches CheckOptions.contradict, else not supported. The row's score is the mean (or the
minimum) of its claims' entailment probabilities, and its supported text the text with
only its supported sentences.

Evidence (Evidence.SENTENCE, the default) is then the fewest whole sentences of the window
behind the verdict (the deciding window; for a contradicted claim, the most contradicting
one) that carry the verdict alone: each sentence of that window is scored beside the claim,
the best one kept if it carries the verdict (its entailment reaches `support`, or for a
contradicted claim its contradiction reaches `contradict`); else the best with each of its
neighbours; else the window itself. A claim not supported cites the sentence that comes
closest. A window of one sentence costs no more pairs. Evidence.WINDOW cites the deciding
window, as squeezenli did before sentence evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from squeezenli.choices import Evidence, OnError, RowScore
from squeezenli.errors import InputError
from squeezenli.records.readers import ColumnsError, Record, RowError, RowFailure, text_field
from squeezenli.runtime.engine import softmax
from squeezenli.runtime.model import NLIModel
from squeezenli.runtime.prediction import SCORE_DIGITS
from squeezenli.runtime.tokenizer import TextTokens
from squeezenli.tasks.documents import Chunker, deciding_window, sentence_tokens
from squeezenli.tasks.documents import sentence_spans as split_sentences
from squeezenli.tasks.options import CheckOptions
from squeezenli.tasks.passages import Passage, read_claims, read_passages
from squeezenli.tasks.results import Result
from squeezenli.tasks.scoring import score_scored


class Verdict(str, Enum):
    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    NOT_SUPPORTED = "not_supported"


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {name: round(value, SCORE_DIGITS) for name, value in scores.items()}


@dataclass(frozen=True)
class Span:
    """Characters [start, end) of one passage (its key, `source`), their text, and what
    the model says of the claim beside them."""

    source: str | int
    start: int
    end: int
    text: str
    scores: dict[str, float]


@dataclass(frozen=True)
class Claim:
    """One claim: its text, [start, end) in the row's text (None for a given claim), what
    the source says of it, the evidence it cites and the window that decided it."""

    text: str
    start: int | None
    end: int | None
    verdict: Verdict
    scores: dict[str, float]
    evidence: Span
    window: Span
    id: str | int | None = None  # a given claim's own id
    cited: Evidence = Evidence.SENTENCE
    listed: bool = False  # the source was a list of passages

    @property
    def evidence_start(self) -> int:
        return self.evidence.start

    @property
    def evidence_end(self) -> int:
        return self.evidence.end

    @property
    def evidence_text(self) -> str:
        return self.evidence.text

    def fields(self) -> dict:
        found: dict[str, Any] = {"text": self.text}
        if self.id is not None:
            found["id"] = self.id
        found |= {
            "start": self.start,
            "end": self.end,
            "verdict": self.verdict.value,
            "scores": _rounded(self.scores),
        }
        evidence: dict[str, Any] = {"source": self.window.source} if self.listed else {}
        if self.cited is Evidence.WINDOW:
            evidence |= {"start": self.window.start, "end": self.window.end}
            found["evidence"] = evidence | {"text": self.window.text}
            return found
        evidence = {"source": self.evidence.source, "start": self.evidence.start}
        found["evidence"] = evidence | {
            "end": self.evidence.end,
            "text": self.evidence.text,
            "scores": _rounded(self.evidence.scores),
        }
        window = self.window
        found["window"] = {"source": window.source, "start": window.start, "end": window.end}
        found["window"]["scores"] = _rounded(window.scores)
        return found


@dataclass(frozen=True)
class Check:
    """A text checked against its source: its claims, its score, its supported sentences;
    `pairs` and `tokens`, what was scored for it (windows and evidence: the cost)."""

    claims: list[Claim]
    score: float
    supported_text: str
    windows: int  # the source was read in this many windows
    pairs: int = 0
    tokens: int = 0

    def fields(self) -> dict:
        """What a checked row adds: `claims`, `score`, `supported_text`, `windows`."""
        return {
            "claims": [claim.fields() for claim in self.claims],
            "score": round(self.score, SCORE_DIGITS),
            "supported_text": self.supported_text,
            "windows": self.windows,
        }


@dataclass(frozen=True)
class _Window:
    """A window of a passage: which passage, its tokens [a, b) there, its characters."""

    passage: int
    a: int
    b: int
    start: int
    end: int


@dataclass
class _Claim:
    """A claim being checked: its text, span, ids, and what is known of it so far."""

    text: str
    start: int | None
    end: int | None
    ids: list[int]
    id: str | int | None = None
    verdict: Verdict | None = None
    scores: dict[str, float] = field(default_factory=dict)
    window: Span | None = None
    cite: _Window | None = None  # the window whose sentences are read for the evidence
    evidence: Span | None = None
    runs: list[tuple[int, int]] = field(default_factory=list)  # token runs now scored


@dataclass
class _Plan:
    """A row being checked: its passages (and their tokens), windows and claims."""

    text: str | None
    passages: list[Passage]
    docs: list[TextTokens]
    windows: list[_Window]
    claims: list[_Claim]
    listed: bool
    pairs: int = 0
    tokens: int = 0

    def count(self, made: list) -> list:
        """Pairs made for the row, counted."""
        self.pairs += len(made)
        self.tokens += sum(len(pair.ids) for pair in made)
        return made


class ClaimChecker:
    """Turns records into the pairs of each pass (windows, then evidence) and scored pairs
    into Checks."""

    def __init__(self, nli: NLIModel, options: CheckOptions) -> None:
        self.nli = nli
        self.options = options
        labels = nli.labels
        for name in ("entailment", "contradiction"):  # a verdict needs both
            if name not in labels.names:
                raise InputError(f"checking claims needs an '{name}' label; {labels.describe()}")
        self._entail = labels.names.index("entailment")
        self._contradict = labels.names.index("contradiction")
        self._chunker = Chunker(nli.engine.tokenizer)
        self._plans: dict[int, _Plan] = {}
        self._seen_columns = False

    def passes(self) -> list[tuple[Callable[[Record], list], Callable]]:
        """(pairs_of, take) of each pass over the records: the windows, then, for sentence
        evidence, each sentence and then each run of two."""
        first = (self.window_pairs, self.take_windows)
        if self.options.evidence is Evidence.WINDOW:
            return [first]
        return [first, (self.run_pairs, self.take_sentences), (self.run_pairs, self.take_runs)]

    def window_pairs(self, record: Record) -> list:
        assert record.data is not None
        self._check_columns(record)
        source_field = self.options.source_field
        passages, listed = read_passages(record, source_field)
        text, claims = self._claims(record)
        room = self._chunker.budget(max(len(claim.ids) for claim in claims))
        if isinstance(room, str):
            field = self.options.claims_field or self.options.text_field
            message = f"'{field}': its longest claim {room}"
            raise RowFailure(RowError.of(record, message, field))
        docs, windows = [], []
        for index, passage in enumerate(passages):
            cut = self._chunker.spans(passage.text, room)
            if isinstance(cut, str):
                raise RowFailure(RowError.of(record, cut, source_field))
            doc, ranges = cut
            docs.append(doc)
            for a, b in ranges:
                window = self._chunker.window(doc, a, b, [])
                windows.append(_Window(index, a, b, window.start, window.end))
        plan = _Plan(text, passages, docs, windows, claims, listed)
        self._plans[id(record)] = plan
        pair = self.nli.engine.tokenizer.pair
        made = [
            pair(docs[w.passage].ids[w.a : w.b].tolist(), claim.ids)
            for claim in claims
            for w in windows
        ]
        return plan.count(made)

    def _check_columns(self, record: Record) -> None:
        """The first row names the fields, or the source fails as a whole."""
        if self._seen_columns:
            return
        assert record.data is not None
        needed = [self.options.source_field, self.options.claims_field or self.options.text_field]
        missing = [name for name in needed if name not in record.data]
        if missing:
            other = "claims_field" if self.options.claims_field else "text_field"
            raise ColumnsError(
                f"{record.where}: no '{missing[0]}' field; columns present: "
                f"{', '.join(record.data) or 'none'}; use `source_field` and `{other}`"
            )
        self._seen_columns = True

    def _claims(self, record: Record) -> tuple[str | None, list[_Claim]]:
        """The row's text (None for given claims) and its claims, with their token ids."""
        found: list[tuple[str, int | None, int | None, str | int | None]]
        if self.options.claims_field:
            field = self.options.claims_field
            found = [(c.text, None, None, c.id) for c in read_claims(record, field)]
            text = None
        else:
            field = self.options.text_field
            text = text_field(record, field)
            spans = [(a, b) for a, b in _trimmed(text, split_sentences(text)) if b > a]
            if not spans:
                message = f"'{field}' has no sentence to check"
                raise RowFailure(RowError.of(record, message, field))
            found = [(text[a:b], a, b, None) for a, b in spans]
        claims = []
        for claim, start, end, key in found:
            tokens = self.nli.engine.tokenizer.tokens(claim)
            if isinstance(tokens, str):
                raise RowFailure(RowError.of(record, tokens, field))
            claims.append(_Claim(claim, start, end, tokens.ids.tolist(), key))
        return text, claims

    def take_windows(self, record: Record, logits: np.ndarray) -> None:
        """Each claim's verdict, scores and window from its windows' logits."""
        plan = self._plans[id(record)]
        probs = softmax(logits).reshape(len(plan.claims), len(plan.windows), -1)
        labels = self.nli.labels
        order = labels.ordered()
        for claim, windows in zip(plan.claims, probs):
            at = deciding_window(windows, labels, self.options.aggregate)
            cite = at
            if windows[at, self._entail] >= self.options.support:
                claim.verdict = Verdict.SUPPORTED
            elif windows[:, self._contradict].max() >= self.options.contradict:
                claim.verdict = Verdict.CONTRADICTED
                if self.options.evidence is Evidence.SENTENCE:
                    cite = int(np.argmax(windows[:, self._contradict]))
            else:
                claim.verdict = Verdict.NOT_SUPPORTED
            claim.scores = {labels.names[i]: float(windows[at, i]) for i in order}
            claim.window = self._span(plan, plan.windows[at], claim.scores)
            claim.cite = plan.windows[cite]
            cited = {labels.names[i]: float(windows[cite, i]) for i in order}
            claim.evidence = self._span(plan, plan.windows[cite], cited)
            if self.options.evidence is Evidence.SENTENCE:
                claim.window = claim.evidence
                claim.runs = self._sentences(plan, claim.cite)

    def _span(self, plan: _Plan, window: _Window, scores: dict[str, float]) -> Span:
        passage = plan.passages[window.passage]
        text = passage.text[window.start : window.end]
        return Span(passage.key, window.start, window.end, text, scores)

    def _sentences(self, plan: _Plan, window: _Window) -> list[tuple[int, int]]:
        """The token ranges of the whole sentences inside a window (none when the window
        is one sentence, or a part of one: the window is the evidence then)."""
        doc = plan.docs[window.passage]
        passage = plan.passages[window.passage].text
        inside = [
            (a, b)
            for a, b in sentence_tokens(doc, split_sentences(passage))
            if a >= window.a and b <= window.b
        ]
        return inside if len(inside) > 1 else []

    def run_pairs(self, record: Record) -> list:
        """The pairs of each claim's runs of sentences beside the claim."""
        plan = self._plans[id(record)]
        pair = self.nli.engine.tokenizer.pair
        made = []
        for claim in plan.claims:
            assert claim.cite is not None
            ids = plan.docs[claim.cite.passage].ids
            made += [pair(ids[a:b].tolist(), claim.ids) for a, b in claim.runs]
        return plan.count(made)

    def take_sentences(self, record: Record, logits: np.ndarray) -> None:
        """The best sentence of each claim's window; a claim whose best sentence does not
        carry its verdict tries that sentence with each neighbour next."""
        plan = self._plans[id(record)]
        for claim, probs in self._per_claim(plan, logits):
            sentences, claim.runs = claim.runs, []
            if not sentences:
                continue
            best = self._best(claim, probs)
            # A claim not supported has no verdict to carry: it cites the closest sentence.
            if claim.verdict is Verdict.NOT_SUPPORTED or self._carries(claim, probs[best]):
                claim.evidence = self._run(plan, claim, sentences[best], probs[best])
                continue
            if best > 0:
                claim.runs.append((sentences[best - 1][0], sentences[best][1]))
            if best + 1 < len(sentences):
                claim.runs.append((sentences[best][0], sentences[best + 1][1]))

    def take_runs(self, record: Record, logits: np.ndarray) -> None:
        """The best run of two sentences that carries the verdict; else the window."""
        plan = self._plans[id(record)]
        for claim, probs in self._per_claim(plan, logits):
            runs, claim.runs = claim.runs, []
            if not runs:
                continue
            best = self._best(claim, probs)
            if self._carries(claim, probs[best]):
                claim.evidence = self._run(plan, claim, runs[best], probs[best])

    def _per_claim(self, plan: _Plan, logits: np.ndarray) -> Iterator[tuple[_Claim, np.ndarray]]:
        """Each claim with the probabilities of its runs, as run_pairs made them."""
        probs = softmax(logits) if len(logits) else logits
        ends = np.cumsum([len(claim.runs) for claim in plan.claims])  # before any is taken
        for claim, end in zip(plan.claims, ends):
            yield claim, probs[end - len(claim.runs) : end]

    def _best(self, claim: _Claim, probs: np.ndarray) -> int:
        """The run that says most for the claim's verdict: the most contradicting for a
        contradicted claim, else the most entailing (the earliest on a tie)."""
        column = self._contradict if claim.verdict is Verdict.CONTRADICTED else self._entail
        return int(np.argmax(probs[:, column]))

    def _carries(self, claim: _Claim, probs: np.ndarray) -> bool:
        if claim.verdict is Verdict.CONTRADICTED:
            return bool(probs[self._contradict] >= self.options.contradict)
        return bool(probs[self._entail] >= self.options.support)

    def _run(self, plan: _Plan, claim: _Claim, run: tuple[int, int], probs: np.ndarray) -> Span:
        """Tokens [a, b) of the claim's window's passage as a cited span."""
        assert claim.cite is not None
        passage = plan.passages[claim.cite.passage]
        offsets = plan.docs[claim.cite.passage].offsets
        start, end = int(offsets[run[0], 0]), int(offsets[run[1] - 1, 1])
        labels = self.nli.labels
        scores = {labels.names[i]: float(probs[i]) for i in labels.ordered()}
        return Span(passage.key, start, end, passage.text[start:end], scores)

    def check(self, record: Record) -> Check:
        """The row's Check, once every pass has taken its logits."""
        plan = self._plans.pop(id(record))
        claims = [
            Claim(
                c.text,
                c.start,
                c.end,
                c.verdict or Verdict.NOT_SUPPORTED,
                c.scores,
                c.evidence or _nothing(),
                c.window or _nothing(),
                c.id,
                self.options.evidence,
                plan.listed,
            )
            for c in plan.claims
        ]
        entailment = [claim.scores["entailment"] for claim in claims]
        if self.options.row_score is RowScore.MIN:
            score = min(entailment)
        else:
            score = float(np.mean(entailment))
        supported = _supported(plan.text, claims)
        return Check(claims, score, supported, len(plan.windows), plan.pairs, plan.tokens)

    def forget(self, record: Record) -> None:
        self._plans.pop(id(record), None)


def _nothing() -> Span:
    return Span(0, 0, 0, "", {})


def _supported(text: str | None, claims: list[Claim]) -> str:
    """The text with only its supported sentences (given claims: those claims, spaced)."""
    if text is None:
        return " ".join(c.text for c in claims if c.verdict is Verdict.SUPPORTED)
    return "".join(
        text[c.start : c.end] + _space_after(text, c.end)
        for c in claims
        if c.verdict is Verdict.SUPPORTED and c.start is not None and c.end is not None
    ).strip()


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
    failed: dict[int, RowError] = {}
    stream: Iterable[Record] = records
    for pairs_of, take in checker.passes():
        stream = _through(nli, stream, pairs_of, take, failed, on_error, timely)
    for record in stream:
        error = failed.pop(id(record), None)
        if error is not None:
            checker.forget(record)
            yield Result(record, error=error)
        else:
            yield Result(record, checker.check(record))


def _through(
    nli: NLIModel,
    records: Iterable[Record],
    pairs_of: Callable[[Record], list],
    take: Callable[[Record, np.ndarray], None],
    failed: dict[int, RowError],
    on_error: OnError | str,
    timely: bool,
) -> Iterator[Record]:
    """One pass: each record's pairs scored (score_scored: in input order, batched with the
    model's other work) and taken; a record that failed before passes through as failed."""

    def pairs(record: Record) -> list:
        if id(record) in failed:
            raise RowFailure(failed[id(record)])
        return pairs_of(record)

    for done in score_scored(nli, records, pairs, on_error=on_error, timely=timely):
        if done.error:
            failed[id(done.record)] = done.error
        else:
            assert done.logits is not None
            take(done.record, done.logits)
        yield done.record
