"""Premises longer than the model reads: cut into windows that fit beside the hypothesis,
each scored, the deciding window answering for the row.

A window is whole sentences (pySBD finds them: 47 of pySBD's 48 English Golden Rules, where
syntok got 34 and blingfire 36; pure Python and offline; bench/sentence_splitters.py), as
many as fit in the budget: the model's length less the hypothesis' tokens and the pair's
special tokens. A sentence longer than the budget is read in windows of the budget's size
overlapping by half, so every token of the premise is in at least one window. Identical
windows of a premise are scored once.

Which window decides (Aggregate): ENTAILMENT, the window most likely to entail the
hypothesis (MiniCheck's rule: a claim is supported if some chunk supports it); MARGIN, the
window with the largest entailment less contradiction (SummaC-ZS's per-sentence score);
CONTRADICTION, the window most likely to contradict it (for finding conflicts). The row's
scores are that window's, with its character span in the premise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from squeezenli.choices import Aggregate
from squeezenli.errors import InputError
from squeezenli.models.labels import LabelMap
from squeezenli.runtime.tokenizer import PairIds, PairTokenizer, TextTokens

# pySBD's time grows faster than its input (115K characters: 6.7 s, 460K: 108 s), so it is
# given a line at a time, and a line longer than this in pieces cut after white space.
SPLIT_CHARS = 2000
# A window shorter than this many tokens is no reading of a document: a hypothesis that
# leaves less room is the row's error.
MIN_WINDOW = 16


@functools.cache
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=False)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) character spans of text's sentences, in order; together they cover
    every character of it."""
    spans: list[tuple[int, int]] = []
    at = 0
    for line in text.splitlines(keepends=True):
        for piece in _pieces(line):
            for sentence in _segmenter().segment(piece) if piece.strip() else [piece]:
                spans.append((at, at + len(sentence)))
                at += len(sentence)
    if at != len(text):  # the splitter changed the text: fall back to one span a line
        spans, at = [], 0
        for line in text.splitlines(keepends=True):
            spans.append((at, at + len(line)))
            at += len(line)
    return spans


def _pieces(line: str) -> list[str]:
    """A line in pieces of at most about SPLIT_CHARS, each cut after white space that
    follows a full stop, question or exclamation mark where there is one."""
    pieces = []
    while len(line) > SPLIT_CHARS:
        head = line[:SPLIT_CHARS]
        cut = max(head.rfind(f"{mark} ") for mark in ".?!") + 2
        if cut < SPLIT_CHARS // 2:
            cut = head.rfind(" ") + 1
        cut = cut if cut > 0 else SPLIT_CHARS
        pieces.append(line[:cut])
        line = line[cut:]
    return [*pieces, line] if line else pieces


def token_windows(tokens: TextTokens, spans: list[tuple[int, int]], budget: int) -> list:
    """Token ranges [start, end) of windows of whole sentences of at most budget tokens; a
    longer sentence in windows of budget tokens overlapping by half. Every token is in one."""
    bounds = sentence_tokens(tokens, spans)
    windows: list[tuple[int, int]] = []
    start = end = 0
    for first, last in bounds:
        if last - first > budget:  # one long sentence: overlapping windows over it
            if end > start:
                windows.append((start, end))
            stride = max(1, budget // 2)
            at = first
            while True:
                windows.append((at, min(at + budget, last)))
                if at + budget >= last:
                    break
                at += stride
            start = end = last
        elif last - start > budget:
            if end > start:
                windows.append((start, end))
            start, end = first, last
        else:
            end = last
    if end > start:
        windows.append((start, end))
    return windows


def sentence_tokens(tokens: TextTokens, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each sentence's token range: the tokens that start inside its span (a token that
    spans two sentences belongs to the first)."""
    edges = np.searchsorted(tokens.offsets[:, 0], [a for a, _ in spans[1:]], side="left")
    cuts = [0, *map(int, edges), len(tokens.ids)]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


@dataclass(frozen=True)
class Window:
    """One window of a premise, paired with the hypothesis, and its character span."""

    pair: PairIds
    start: int
    end: int


class Chunker:
    """Cuts premises into windows that fit beside their hypothesis (module docstring)."""

    def __init__(self, tokenizer: PairTokenizer) -> None:
        self.tokenizer = tokenizer

    def windows(self, premise: str, hypothesis: str) -> list[Window] | tuple[str, str]:
        """The premise's distinct windows beside the hypothesis, or (field, reason) when
        there can be none."""
        hyp = self.tokenizer.tokens(hypothesis)
        if isinstance(hyp, str):
            return "hypothesis", hyp
        room = self.budget(len(hyp.ids))
        if isinstance(room, str):
            return "hypothesis", f"the hypothesis {room}"
        found = self.spans(premise, room)
        if isinstance(found, str):
            return "premise", found
        doc, ranges = found
        hyp_ids = hyp.ids.tolist()
        return [self.window(doc, a, b, hyp_ids) for a, b in ranges]

    def budget(self, hypothesis_tokens: int) -> int | str:
        """The premise tokens that fit beside a hypothesis of this many, or why none do,
        worded to follow the hypothesis' name ("the hypothesis takes 600 of ...")."""
        budget = self.tokenizer.max_length - self.tokenizer.special_count - hypothesis_tokens
        if budget < MIN_WINDOW:
            return (
                f"takes {hypothesis_tokens} of the model's {self.tokenizer.max_length} tokens, "
                f"leaving less than {MIN_WINDOW} for the premise's windows: shorten it"
            )
        return budget

    def spans(self, premise: str, budget: int) -> tuple[TextTokens, list] | str:
        """The premise's tokens and the token ranges of its distinct windows of at most
        budget tokens (one, the whole premise, when it fits), or why it cannot be read."""
        doc = self.tokenizer.tokens(premise)
        if isinstance(doc, str):
            return doc
        if len(doc.ids) <= budget:
            return doc, [(0, len(doc.ids))]
        seen: set[bytes] = set()
        ranges = []
        for a, b in token_windows(doc, sentence_spans(premise), budget):
            key = doc.ids[a:b].tobytes()
            if key not in seen:
                seen.add(key)
                ranges.append((a, b))
        return doc, ranges

    def window(self, doc: TextTokens, a: int, b: int, hypothesis: list[int]) -> Window:
        """Tokens [a, b) of a premise beside a hypothesis's ids, with their span."""
        pair = self.tokenizer.pair(doc.ids[a:b].tolist(), hypothesis)
        start = int(doc.offsets[a, 0]) if b > a else 0
        end = int(doc.offsets[b - 1, 1]) if b > a else 0
        return Window(pair, start, end)


def deciding_window(probs: np.ndarray, labels: LabelMap, rule: Aggregate) -> int:
    """The index of the window that answers for the row (module docstring); the earliest
    on a tie."""
    entail = _index(labels, "entailment", rule)
    if rule is Aggregate.ENTAILMENT:
        return int(np.argmax(probs[:, entail]))
    contradict = _index(labels, "contradiction", rule)
    if rule is Aggregate.CONTRADICTION:
        return int(np.argmax(probs[:, contradict]))
    return int(np.argmax(probs[:, entail] - probs[:, contradict]))


def check_aggregate(labels: LabelMap, rule: Aggregate) -> None:
    """Refuse a rule the model's labels cannot serve (a 2-class model has no contradiction)."""
    _index(labels, "entailment", rule)
    if rule is not Aggregate.ENTAILMENT:
        _index(labels, "contradiction", rule)


def _index(labels: LabelMap, name: str, rule: Aggregate) -> int:
    if name not in labels.names:
        raise InputError(
            f"`aggregate` {rule.value} needs a '{name}' label; the model's labels are "
            f"{', '.join(labels.names)}"
        )
    return labels.names.index(name)
