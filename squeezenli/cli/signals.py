"""Stop signals (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT) end a run between output lines, never
inside one: a signal that arrives while a line is being written takes effect once the line
is out. A line that cannot get out (a reader that stopped reading) is given GRACE_S
seconds, then the run ends anyway: a supervisor's SIGTERM is never ignored.

Outside a pass over rows (starting up, loading, building) the process stops at once: an
exception raised there could land inside a C extension's import and surface as its
ImportError, and nothing has been written that could tear (builds are written atomically,
what this process was writing is removed before it ends, and what a killed builder leaves
is removed by the next run). Within a pass, the signal is
raised as Interrupted, so the pass ends with its summary and closed files, within GRACE_S
seconds: past that (a run onnxruntime cannot terminate), the process stops at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from squeezenli.models.atomic import remove_own_temps

STOPPING = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
GRACE_S = 3.0


class Interrupted(BaseException):
    """A run stopped by a signal; the exit code is 128 + the signal number, as shells report."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


_state: dict = {"writing": False, "pending": None, "timer": None, "armed": False}


def _handle(signum: int, frame) -> None:
    if not _state["writing"]:
        if not _state["armed"]:
            _stop_at_once(signum, "")
        _deadline(signum, f"still running {GRACE_S:.0f} s after the signal")
        raise Interrupted(signum)
    if _state["pending"] is not None:  # a second signal while the line is stuck: go now
        _stop_at_once(signum, "signalled twice")
    _state["pending"] = signum
    _state["timer"] = _deadline(signum, f"output blocked {GRACE_S:.0f} s")


def _deadline(signum: int, why: str) -> threading.Timer:
    """Stop at once GRACE_S seconds from now, unless cancelled or the process ends first."""
    timer = threading.Timer(GRACE_S, _stop_at_once, (signum, why))
    timer.daemon = True
    timer.start()
    return timer


def _stop_at_once(signum: int, why: str) -> None:
    remove_own_temps()  # a build or measurement cut short leaves nothing in the cache
    # fd 2 back, if a thread is tokenizing (its panic filter); the signal may come while
    # the module is still being imported, before it has the function.
    release = getattr(sys.modules.get("squeezenli.runtime.tokenizer"), "release_stderr", None)
    if release is not None:
        release()
    name = signal.Signals(signum).name
    os.write(2, f"squeezenli: stopped by {name}{f' ({why})' if why else ''}\n".encode())
    os._exit(128 + signum)


def install() -> None:
    """Route the stop signals through the line-keeping handler (main thread only)."""
    for name in STOPPING:
        signal.signal(getattr(signal, name), _handle)


@contextmanager
def rows_pass() -> Iterator[None]:
    """A pass over rows: a stop signal inside it is raised as Interrupted (module docstring)."""
    _state["armed"] = True
    try:
        yield
    finally:
        _state["armed"] = False


@contextmanager
def whole_line() -> Iterator[None]:
    """Write one output line; a signal during it is acted on afterwards."""
    _state["writing"] = True
    try:
        yield
    finally:
        _state["writing"] = False
        pending, _state["pending"] = _state["pending"], None
        if _state["timer"] is not None:
            _state["timer"].cancel()
            _state["timer"] = None
        if pending is not None:
            _deadline(pending, f"still running {GRACE_S:.0f} s after the signal")
            raise Interrupted(pending)
