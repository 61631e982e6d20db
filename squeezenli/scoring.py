"""Score a stream of input records: every record ends as a result or an error, in order.

Records are gathered into windows by a reader thread, so a window is scored as soon as it is
full *or* the input pauses: a slow producer gets its results while its input is still open.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .engine import softmax
from .errors import InputError
from .io import Record, choose_pair_fields, text_field
from .model import NLIModel, Prediction

_END = object()


@dataclass(frozen=True)
class Outcome:
    """One input record and what became of it."""

    record: Record
    prediction: Prediction | None = None
    error: str | None = None
    pair: tuple[str, str] | None = None


def timely_windows(items: Iterable, size: int, wait: float = 0.05) -> Iterator[list]:
    """Lists of up to `size` items; a list is cut early when no item arrives within `wait` s."""
    inbox: queue.Queue = queue.Queue(maxsize=size * 2)

    def read() -> None:
        try:
            for item in items:
                inbox.put(item)
        except BaseException as err:  # handed to the consumer, raised there
            inbox.put(err)
        inbox.put(_END)

    threading.Thread(target=read, daemon=True).start()
    window: list = []
    while True:
        try:
            item = inbox.get(timeout=wait) if window else inbox.get()
        except queue.Empty:
            yield window
            window = []
            continue
        if item is _END:
            break
        if isinstance(item, BaseException):
            if window:
                yield window
            raise item
        window.append(item)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def score_records(
    nli: NLIModel,
    records: Iterable[Record],
    *,
    premise_field: str | None = None,
    hypothesis_field: str | None = None,
    on_error: str = "fail",
) -> Iterator[Outcome]:
    """An Outcome per record, in input order. on_error='fail' raises at the first bad record;
    'skip' yields it as an Outcome with an error and goes on."""
    fields: tuple[str, str] | None = None
    pending: deque[Outcome] = deque()  # records read, waiting for their window's scores

    def pairs():
        nonlocal fields
        for record in records:
            if fields is None and record.data is not None:
                # From the first good record; a source without the fields fails as a whole.
                fields = choose_pair_fields(
                    list(record.data), premise_field, hypothesis_field, record.where
                )
            try:
                if record.error:
                    raise InputError(f"{record.where}: {record.error}")
                assert fields is not None
                pair = (text_field(record, fields[0]), text_field(record, fields[1]))
            except InputError as err:
                if on_error == "fail":
                    raise
                pending.append(Outcome(record, error=str(err)))
                continue
            pending.append(Outcome(record, pair=pair))
            yield pair

    def drain_errors() -> Iterator[Outcome]:
        while pending and pending[0].error:
            yield pending.popleft()

    for logits in nli.engine.score_windows(timely_windows(pairs(), nli.engine.window)):
        for row in softmax(logits):
            yield from drain_errors()
            done = pending.popleft()
            yield Outcome(done.record, nli.to_prediction(row), pair=done.pair)
        yield from drain_errors()
    yield from drain_errors()
