"""Ctrl-C and SIGTERM end a run between output lines, never inside one: a signal that
arrives while a line is being written takes effect once the line is out."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(BaseException):
    """A run stopped by a signal; the exit code is 128 + the signal number, as shells report."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


_state: dict = {"writing": False, "pending": None}


def _handle(signum: int, frame) -> None:
    if _state["writing"]:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT and SIGTERM through the line-keeping handler (main thread only)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handle)


@contextmanager
def whole_line() -> Iterator[None]:
    """Write one output line; a signal during it is acted on afterwards."""
    _state["writing"] = True
    try:
        yield
    finally:
        _state["writing"] = False
        pending, _state["pending"] = _state["pending"], None
        if pending is not None:
            raise Interrupted(pending)
