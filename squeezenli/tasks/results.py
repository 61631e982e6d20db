"""What a task hands back for each record (Result, and ZeroShot for classify), and how a
record's premise and hypothesis are found (PairFields): shared by the local tasks and the
`--server` client, so importable without numpy or onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from squeezenli.records.readers import (
    ColumnsError,
    Record,
    RowError,
    choose_pair_fields,
    did_you_mean,
    text_field,
)
from squeezenli.runtime.prediction import SCORE_DIGITS, Pair
from squeezenli.tasks.windows import FIRST_WINDOW

T = TypeVar("T")


@dataclass(frozen=True)
class Result(Generic[T]):
    """One input record and what became of it, whatever the task: its output (a Prediction,
    a ZeroShot, a Judgement) and the pair it was made from, or the RowError saying why it
    has none."""

    record: Record
    output: T | None = None
    error: RowError | None = None
    pair: Pair | None = None


@dataclass(frozen=True)
class ZeroShot:
    """One text's labels, highest score first, shaped as the pipeline's output."""

    text: str
    labels: list[str]
    scores: list[float]
    truncated: bool = False  # the text was cut to fit beside a label's hypothesis
    selected: list[str] | None = None  # the labels a Decision chose (None: no threshold)

    def fields(self) -> dict:
        """The pipeline's text, labels and scores, and what squeezenli adds."""
        found = {
            "text": self.text,
            "labels": self.labels,
            "scores": [round(score, SCORE_DIGITS) for score in self.scores],
            "truncated": self.truncated,
        }
        if self.selected is not None:
            found["selected"] = self.selected
        return found


class PairFields:
    """Reads the premise/hypothesis of a record; the fields are chosen from the first good
    record (given names, else a known pair), so a source without them fails as a whole. In
    JSON lines, where each row may differ, a given name that none of the first FIRST_WINDOW
    rows holds is a typo, not a bad row: the source fails once, with the names it has."""

    def __init__(self, premise: str | None = None, hypothesis: str | None = None) -> None:
        self.premise = premise
        self.hypothesis = hypothesis
        self.fields: tuple[str, str] | None = None
        self._misses = 0  # rows so far that lacked a given field, while none has had them

    def __call__(self, record: Record) -> list[Pair]:
        return [self.read(record)]

    def read(self, record: Record) -> Pair:
        """The record's (premise, hypothesis), or a RowFailure naming the field at fault."""
        assert record.data is not None
        if self.fields is None:
            self.fields = choose_pair_fields(
                list(record.data), self.premise, self.hypothesis, record.where, record.tabular
            )
        if self._misses >= 0:
            self._count_misses(record, self.fields)
        return text_field(record, self.fields[0]), text_field(record, self.fields[1])

    def _count_misses(self, record: Record, fields: tuple[str, str]) -> None:
        assert record.data is not None
        missing = [name for name in fields if name not in record.data]
        if not missing:
            self._misses = -1  # a row has them: later rows without them are their own errors
            return
        self._misses += 1
        if self._misses == FIRST_WINDOW:
            name = missing[0]
            raise ColumnsError(
                f"{record.source}: none of the first {FIRST_WINDOW} rows has a field "
                f"'{name}'{did_you_mean(name, list(record.data))}; fields present: "
                f"{', '.join(record.data) or 'none'}; use `premise_field` and "
                "`hypothesis_field`"
            )
