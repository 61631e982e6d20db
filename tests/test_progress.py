"""Progress on stderr: only for a terminal, after a moment, with rows/s and an ETA."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from squeezenli.cli import progress as progress_module
from squeezenli.cli.progress import RowProgress


def _console(buffer: io.StringIO) -> Console:
    return Console(file=buffer, force_terminal=True, width=100)


def test_shows_rows_rate_and_eta_when_the_size_is_known(monkeypatch):
    monkeypatch.setattr(progress_module, "SHOW_AFTER", 0.0)
    buffer = io.StringIO()
    done = {"bytes": 0}
    with RowProgress(
        True, total_bytes=1000, done_bytes=lambda: done["bytes"], console=_console(buffer)
    ) as bar:
        for _ in range(5):
            done["bytes"] += 100
            bar.advance()
        bar._progress.refresh()
    shown = buffer.getvalue()
    assert "5 rows" in shown and "rows/s" in shown and "50%" in shown
    assert "-:--:--" in shown or ":" in shown  # TimeRemainingColumn


def test_unknown_size_shows_no_bar(monkeypatch):
    monkeypatch.setattr(progress_module, "SHOW_AFTER", 0.0)
    buffer = io.StringIO()
    with RowProgress(True, console=_console(buffer)) as bar:
        bar.advance(3)
        bar._progress.refresh()
    assert "3 rows" in buffer.getvalue() and "%" not in buffer.getvalue()


@pytest.mark.parametrize("enabled, delay", [(False, 0.0), (True, 60.0)])
def test_silent_when_disabled_or_quick(monkeypatch, enabled, delay):
    monkeypatch.setattr(progress_module, "SHOW_AFTER", delay)
    buffer = io.StringIO()
    with RowProgress(enabled, console=_console(buffer)) as bar:
        bar.advance(10)
    assert buffer.getvalue() == ""
    assert bar.rows == 10
