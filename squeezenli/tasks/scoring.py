"""Score a stream of input records: every record ends as a result or an error, in order.

A record turns into one pair (batch, eval) or several (classify: one per candidate label);
all pairs of all records flow through the engine as one stream. Records are gathered into
windows by a reader thread, so a window is scored as soon as it is full *or* the input
pauses: a slow producer gets its results while its input is still open.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from squeezenli.choices import LongInput, OnError, choose
from squeezenli.errors import Fault, InputError, SqueezenliError
from squeezenli.records.readers import (
    ColumnsError,
    Record,
    RowError,
    RowFailure,
)
from squeezenli.runtime.engine import Item, softmax
from squeezenli.runtime.model import NLIModel
from squeezenli.runtime.prediction import Evidence, Prediction
from squeezenli.tasks.documents import Chunker, Window, check_aggregate, deciding_window
from squeezenli.tasks.options import PairOptions
from squeezenli.tasks.results import PairFields, Result
from squeezenli.tasks.windows import growing_windows, timely_windows


@dataclass
class Scored:
    """One input record, the pairs made from it and their logits [pairs, classes] (and
    which pairs were cut to the model's length), or why it could not be scored."""

    record: Record
    pairs: Sequence[Item]
    logits: np.ndarray | None = None
    error: RowError | None = None
    truncated: list[bool] = field(default_factory=list)


def score_scored(
    nli: NLIModel,
    records: Iterable[Record],
    pairs_of: Callable[[Record], Sequence[Item]],
    *,
    on_error: OnError | str = OnError.FAIL,
    timely: bool = False,
) -> Iterator[Scored]:
    """A Scored per record, in input order. `pairs_of` turns a good record into its pairs or
    raises InputError; on_error='fail' re-raises at the first bad record, 'skip' yields it
    with its error and goes on (a ColumnsError, which no row could escape, always raises).
    timely=True cuts a window early when the input pauses (for pipes and terminals); the
    default reads fixed windows, so the same input always makes the same batches, and so the
    same int8 scores."""
    gather = _Gather(choose(OnError, on_error, "on_error"))
    pairs = gather.pairs(records, pairs_of)
    size = nli.engine.window
    windows = timely_windows(pairs, size) if timely else growing_windows(pairs, size)
    for window in (nli.batcher.score(items) for items in windows if items):
        for index, row in enumerate(window.logits):
            yield from gather.finished()
            gather.add(row, window.truncated[index], window.errors.get(index))
        yield from gather.finished()
    yield from gather.finished()
    if gather.stop is not None:
        raise gather.stop


class _Gather:
    """score_scored's state: the records read and waiting for their pairs' logits, in input
    order, and the logits of the oldest one so far; a record is finished when all its pairs
    are scored (or it has none, or is an error)."""

    def __init__(self, on_error: OnError) -> None:
        self.on_error = on_error
        self.pending: deque[Scored] = deque()
        self.rows: list[np.ndarray] = []  # logits rows of the oldest pending record, so far
        self.cut: list[bool] = []  # and whether each of its pairs was truncated
        self.failure: str | None = None  # why a pair of it could not be scored
        self.stop: SqueezenliError | None = None  # what ended the input early: raised last

    def pairs(
        self, records: Iterable[Record], pairs_of: Callable[[Record], Sequence[Item]]
    ) -> Iterator[Item]:
        """Each record's pairs, in order, the record put in line for them."""
        try:
            for record in records:
                try:
                    if record.error:
                        raise RowFailure(RowError.of(record, record.error))
                    made = pairs_of(record)
                except RowFailure as err:
                    if self.on_error is OnError.FAIL:
                        raise
                    self.pending.append(Scored(record, [], error=err.error))
                    continue
                self.pending.append(Scored(record, made))
                yield from made
        except ColumnsError as err:  # no row could be scored: the source fails as a whole
            self.pending.clear()  # the rows before it are errors of its making, not reported
            self.stop = err
        except SqueezenliError as err:  # the rows read before it are still scored and written
            self.stop = err

    def add(self, row: np.ndarray, truncated: bool, error: str | None) -> None:
        """The next pair's logits (and its error, when it could not be scored)."""
        if error is not None:
            self.failure = error
        self.rows.append(row)
        self.cut.append(truncated)

    def finished(self) -> Iterator[Scored]:
        """Errors, records with no pairs, and records whose pairs are all scored."""
        while self.pending and (
            self.pending[0].error or len(self.rows) == len(self.pending[0].pairs)
        ):
            done = self.pending.popleft()
            if self.failure is not None:
                self.rows.clear()
                done.error = RowError.of(done.record, self.failure)
                self.failure = None
                if self.on_error is OnError.FAIL:
                    raise RowFailure(done.error)
            elif not done.error:
                done.logits = np.stack(self.rows) if self.rows else np.zeros((0, 0), np.float32)
                done.truncated = list(self.cut)
                self.rows.clear()
            self.cut.clear()
            yield done


class PairReading:
    """How a record's pair is read under a LongInput mode: the items scored for it (the pair,
    or its premise's windows), and the Prediction its scores make (documents.py)."""

    def __init__(self, nli: NLIModel, options: PairOptions) -> None:
        self.nli = nli
        self.fields = PairFields(options.premise_field, options.hypothesis_field)
        self.long_input = options.long_input
        self.aggregate = options.aggregate
        check_threshold(nli, options.threshold)
        self.threshold = options.threshold  # the entailment probability a pair is `entailed` at
        self.logits = options.logits  # whether predictions carry their raw logits
        if self.long_input is LongInput.CHUNK:
            check_aggregate(nli.labels, self.aggregate)
        self._chunker = Chunker(nli.engine.tokenizer)
        self._windows: dict[int, list[Window]] = {}  # id(record) -> its windows, until scored

    def __call__(self, record: Record) -> Sequence[Item]:
        if self.long_input is not LongInput.CHUNK:
            return self.fields(record)
        premise, hypothesis = self.fields.read(record)
        found = self._chunker.windows(premise, hypothesis)
        if isinstance(found, tuple):
            assert self.fields.fields is not None
            side, reason = found
            field = self.fields.fields[side == "hypothesis"]
            raise RowFailure(RowError.of(record, f"'{field}': {reason}", field))
        self._windows[id(record)] = found
        return [window.pair for window in found]

    def result(self, done: Scored, on_error: OnError | str) -> Prediction | RowError:
        """prediction(done); a RowError of its own (a cut pair under LongInput.FAIL) raised
        as RowFailure under on_error 'fail', as score_scored raises the others."""
        found = self.prediction(done)
        if isinstance(found, RowError) and on_error == OnError.FAIL and not done.error:
            raise RowFailure(found)
        return found

    def prediction(self, done: Scored) -> Prediction | RowError:
        """The record's Prediction from its scored items, or why it has none."""
        windows = self._windows.pop(id(done.record), None)
        if done.error:
            return done.error
        assert done.logits is not None
        probs = softmax(done.logits)
        if windows is not None:
            at = deciding_window(probs, self.nli.labels, self.aggregate)
            evidence = Evidence(windows[at].start, windows[at].end, len(windows))
            return self._prediction(probs, done.logits, at, evidence=evidence)
        truncated = done.truncated[0]
        if truncated and self.long_input is LongInput.FAIL:
            return RowError.of(
                done.record,
                f"the pair is longer than the model's {self.nli.max_length} tokens and would be "
                "cut: --long-input chunk reads the premise in windows, truncate cuts it",
                kind=Fault.TOO_LONG,
            )
        return self._prediction(probs, done.logits, 0, truncated=truncated)

    def _prediction(self, probs, logits, at: int, **found) -> Prediction:
        return self.nli.to_prediction(
            probs[at],
            **found,
            threshold=self.threshold,
            logits=logits[at] if self.logits else None,
        )


def check_threshold(nli: NLIModel, threshold: float | None) -> None:
    """A threshold on the entailment probability needs a model that has one."""
    if threshold is not None and "entailment" not in nli.labels.names:
        raise InputError(
            f"`threshold` needs an entailment output; {nli.labels.describe()}", "threshold"
        )


def score_records(
    nli: NLIModel,
    records: Iterable[Record],
    options: PairOptions | None = None,
    *,
    on_error: OnError | str = OnError.SKIP,
    timely: bool = False,
    **changes: Any,
) -> Iterator[Result[Prediction]]:
    """A Result per record, in input order: its prediction, or the reason it failed (errors
    are data; on_error="fail" raises RowFailure at the first instead). The options
    (PairOptions, or its fields as `changes`): long_input, what to do with a pair longer
    than the model reads (documents.py); threshold: each prediction says whether
    P(entailment) reaches it (`entailed`); logits: each carries its raw logits."""
    reading = PairReading(nli, PairOptions.of(options, **changes))
    for done in score_scored(nli, records, reading, on_error=on_error, timely=timely):
        found = reading.result(done, on_error)
        if isinstance(found, RowError):
            yield Result(done.record, error=found)
        else:
            yield Result(done.record, found, pair=reading.fields.read(done.record))
