"""One batcher under every caller: the tagged items of any number of producers, scored in
shared windows.

A producer (a stream of records, a Ray actor's batch, a server's request) submits a list of
items (pairs of texts, or pairs already encoded) and gets a Future of their scores. The
batcher's thread takes into a window what is queued when the engine is free (up to `window`
items), scores it on the engine (length-sorted batches, every core) and hands each
submission its rows. Nothing waits for a window to fill: what arrives while a window is
scored makes the next one, so a lone request pays only its own pairs (a wait of 2 ms for
company cost a one-pair request 7%: 29 against 27 ms, full-size stand-in, AMD EPYC with
VNNI; `wait` keeps one, for tests). A pair's scores do not depend on what shares its window
(measured: the same bits, fp32 and int8, alone or among 300 others in any order), so
producers never change each other's answers. A producer that gives up on its submission (an
error, a signal, a consumer that stops) leaves it to be dropped; a window whose every
submission was given up is terminated in flight. A producer that must stop while it waits
(a server's request whose client left) says so with `stopping(event)`: its wait ends within
POLL_S of the event, and its window is given up.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from squeezenli.runtime.engine import Engine, Item, WindowScores

POLL_S = 0.05  # how often a producer that may be stopped looks at its stop event


class Stopped(BaseException):
    """A producer's stop event was set while it waited (`stopping`). A BaseException, as
    KeyboardInterrupt is, so that no row's `except Exception` takes it for the row's error."""


_stops = threading.local()


@contextmanager
def stopping(event: threading.Event) -> Iterator[None]:
    """While it lasts, this thread's waits on any batcher end in Stopped once `event` is set
    (the server's job runs its request so: a client that left frees its slot at once)."""
    previous = getattr(_stops, "event", None)
    _stops.event = event
    try:
        yield
    finally:
        _stops.event = previous


@dataclass(eq=False)
class _Submission:
    items: list[Item]
    future: Future = field(default_factory=Future)


class Batcher:
    """Windows across producers over one engine (module docstring)."""

    def __init__(self, engine: Engine, wait: float = 0.0) -> None:
        self.engine = engine
        self.wait = wait
        self._inbox: queue.Queue = queue.Queue()
        self._current: list[_Submission] = []
        self._abandoned: set[Future] = set()  # running submissions no one waits for
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Told (pairs, seconds) of every window scored: a server's metrics.
        self.observers: list[Callable[[int, float], None]] = []

    def submit(self, items: list[Item]) -> Future:
        """A Future of the items' WindowScores, in their order."""
        submission = _Submission(list(items))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, daemon=True, name="squeezenli-batcher"
                )
                self._thread.start()
        if not submission.items:
            submission.future.set_result(_empty(self.engine))
        else:
            self._inbox.put(submission)
        return submission.future

    def score(self, items: list[Item]) -> WindowScores:
        """submit(items), waited for; given up (module docstring) if the wait is broken."""
        stop: threading.Event | None = getattr(_stops, "event", None)
        if stop is not None and stop.is_set():
            raise Stopped
        future = self.submit(items)
        try:
            while stop is not None and not futures.wait([future], POLL_S).done:
                if stop.is_set():
                    raise Stopped
            return future.result()
        except BaseException:
            self.give_up(future)
            raise

    def give_up(self, future: Future) -> None:
        """The producer no longer wants this submission."""
        if future.cancel():
            return
        with self._lock:
            self._abandoned.add(future)
            current = [s.future for s in self._current]
            if current and all(f in self._abandoned for f in current):
                self.engine.terminate()

    def _serve(self) -> None:
        while True:
            first = self._inbox.get()
            window = [first]
            count = len(first.items)
            while count < self.engine.window:
                try:
                    more = (
                        self._inbox.get(timeout=self.wait)
                        if self.wait > 0
                        else self._inbox.get_nowait()
                    )
                except queue.Empty:
                    break
                window.append(more)
                count += len(more.items)
            live = [s for s in window if s.future.set_running_or_notify_cancel()]
            if live:
                self._score(live)

    def _score(self, window: list[_Submission]) -> None:
        with self._lock:
            self._current = window
        try:
            items = [item for s in window for item in s.items]
            started = time.perf_counter()
            scores = next(iter(self.engine.score_windows([items])))
            for observe in self.observers:
                observe(len(items), time.perf_counter() - started)
        except BaseException as err:  # the engine's errors belong to every submission
            for s in window:
                s.future.set_exception(err)
            return
        finally:
            with self._lock:
                self._current = []
                self._abandoned.difference_update(s.future for s in window)
        start = 0
        for s in window:
            end = start + len(s.items)
            errors = {i - start: e for i, e in scores.errors.items() if start <= i < end}
            part = WindowScores(scores.logits[start:end], errors, scores.truncated[start:end])
            s.future.set_result(part)
            start = end


def _empty(engine: Engine) -> WindowScores:
    return WindowScores(np.zeros((0, engine.classes or 0), np.float32), {}, [])
