"""One pass of a row command over its inputs: progress on stderr, bad rows reported and
counted, and the summary line at the end, however the pass ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from squeezenli.cli.progress import RowProgress
from squeezenli.cli.signals import rows_pass
from squeezenli.cli.streams import ErrorLog, Inputs, Source, summary
from squeezenli.records.readers import RowFailure


class RowRun:
    """Feeds each input's records to a scoring function and yields the good outcomes; an
    outcome with an `error` is written to the error log and counted as failed."""

    def __init__(
        self,
        what: str,
        inputs: Inputs,
        error_log: ErrorLog,
        *,
        quiet: bool,
        sources: Iterable[Source] | None = None,
        skip: bool = False,
    ) -> None:
        self.what = what
        self._skip = skip  # a row that cannot be written is reported (else: the run stops)
        self.done = 0
        self.failed = 0
        self.truncated = 0  # rows the model read cut to its length
        self._inputs = inputs
        self._sources = sources
        self._errors = error_log
        self._quiet = quiet
        self._progress = RowProgress.for_terminal(
            quiet or sources is not None,
            total_bytes=inputs.total_bytes,
            done_bytes=inputs.consumed,
        )
        self._started = time.perf_counter()
        self._pass = rows_pass()

    def outcomes(self, score: Callable[..., Iterable]) -> Iterator:
        """`score(records, timely=...)` for each input; its good outcomes, in order."""
        try:
            yield from self._outcomes(score)
        except RowFailure:  # the row that ends the run (--on-error fail) is a failed one
            self.failed += 1
            raise

    def _outcomes(self, score: Callable[..., Iterable]) -> Iterator:
        for source in self._sources if self._sources is not None else self._inputs.sources():
            for outcome in score(source.records, timely=source.live):
                self._progress.advance()
                if outcome.error:
                    self.failed += 1
                    self._errors.write(outcome.record, outcome.error)
                    continue
                self.done += 1
                self.truncated += bool(getattr(outcome.output, "truncated", False))
                yield outcome

    @contextmanager
    def writing(self, outcome) -> Iterator[None]:
        """Write one good outcome: a row the output cannot take (RowFailure) was counted
        done, and is counted failed instead, then reported, or it stops the run."""
        try:
            yield
        except RowFailure as failure:
            self.done -= 1
            self.failed += 1
            if not self._skip:
                raise
            self._errors.write(outcome.record, failure.error)

    def __enter__(self) -> RowRun:
        self._pass.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._pass.__exit__(*exc)
        self._progress.close()
        self._errors.close()
        elapsed = time.perf_counter() - self._started
        summary(self.what, self.done, self.failed, elapsed, self._quiet, self.truncated, exc[1])
