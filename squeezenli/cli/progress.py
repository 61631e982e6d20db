"""A progress display on stderr for long runs: rows done, rows/s and, when the input's size
is known, a bar with an ETA. It shows only when stderr is a terminal, not under --quiet, and
only once a run has lasted a moment, so quick runs and pipelines see nothing."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported when a display first shows: most runs never show one
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, TaskID

SHOW_AFTER = 0.5  # seconds before the display appears


class RowProgress:
    """Counts rows; `done_bytes` (a callable) and `total_bytes` drive the bar and the ETA."""

    def __init__(
        self,
        enabled: bool,
        *,
        total_bytes: int | None = None,
        done_bytes: Callable[[], int] | None = None,
        console: Console | None = None,
    ) -> None:
        self.rows = 0
        self._enabled = enabled
        self._done_bytes = done_bytes
        self._total = total_bytes if done_bytes else None
        self._started = time.perf_counter()
        self._progress: Progress | None = None
        self._console = console
        self._task: TaskID | None = None

    @classmethod
    def for_terminal(cls, quiet: bool, **kwargs) -> RowProgress:
        return cls(not quiet and sys.stderr.isatty(), **kwargs)

    def advance(self, rows: int = 1) -> None:
        self.rows += rows
        if not self._enabled:
            return
        if self._progress is None:
            if time.perf_counter() - self._started < SHOW_AFTER:
                return
            self._start()
        assert self._progress is not None and self._task is not None
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(
            self._task,
            completed=self._done_bytes() if self._done_bytes else 0,
            rows=self.rows,
            rate=self.rows / elapsed,
        )

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns: list[ProgressColumn] = [
            TextColumn("{task.fields[rows]:,} rows"),
            TextColumn("{task.fields[rate]:.1f} rows/s"),
        ]
        if self._total:
            columns = [
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                *columns,
                TimeRemainingColumn(),
            ]
        else:
            columns.append(TimeElapsedColumn())
        self._progress = Progress(
            *columns,
            console=self._console or Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("scoring", total=self._total, rows=0, rate=0.0)
        self._progress.start()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> RowProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
