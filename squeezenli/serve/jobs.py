"""One request lifecycle for every way in (the HTTP routes and the MCP tools): take a slot
(429 past --max-concurrent), run the work on a worker thread, give up at --timeout (503) or
when the caller goes away, and free the slot exactly once, when the work ends or, if it never
started, when the request gave up on it. A cancelled request's work is told to stop reading
rows (its `cancel` event), so it frees its slot within a window's time, not at its end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from squeezenli.serve.metrics import Metrics
from squeezenli.serve.requests import Limits, RequestError

T = TypeVar("T")


class _Job:
    """One request's work on a worker thread, and its slot."""

    def __init__(self, jobs: Jobs, work: Callable[[threading.Event], Any]) -> None:
        self.jobs = jobs
        self.work = work
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._freed = False

    def __call__(self) -> Any:
        with self._lock:
            if self.cancel.is_set():
                return None
            self._started = True
        try:
            return self.work(self.cancel)
        finally:
            self._free()

    def give_up(self) -> None:
        with self._lock:
            self.cancel.set()
            started = self._started
        if not started:
            self._free()

    def _free(self) -> None:
        with self._lock:
            if self._freed:
                return
            self._freed = True
        self.jobs.free_slot()


class Jobs:
    """The slots in flight and the worker threads, shared by every route and tool."""

    def __init__(self, limits: Limits, metrics: Metrics | None = None) -> None:
        self.limits = limits
        self.metrics = metrics
        self.in_flight = 0
        self._lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop

    def take_slot(self) -> None:
        with self._lock:
            if self.in_flight >= self.limits.max_concurrent:
                raise RequestError(
                    429,
                    f"Model is overloaded: {self.in_flight} requests in flight "
                    f"(squeezenli serve --max-concurrent {self.limits.max_concurrent})",
                    "overloaded",
                )
            self.in_flight += 1
            self._depth()

    def free_slot(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self._depth()

    def _depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self.in_flight)

    async def run(self, work: Callable[[threading.Event], T]) -> T:
        """work(cancel) on a worker thread, in a slot, within the timeout."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.limits.max_concurrent)
        self.take_slot()
        job = _Job(self, work)
        try:
            return await asyncio.wait_for(
                anyio.to_thread.run_sync(job, abandon_on_cancel=True, limiter=self._limiter),
                self.limits.timeout_s,
            )
        except asyncio.TimeoutError:  # TimeoutError from 3.11; its own class in 3.10
            job.give_up()
            raise RequestError(
                503,
                f"the request took over {self.limits.timeout_s:g} s (squeezenli serve --timeout)",
                "timeout",
            ) from None
        except asyncio.CancelledError:  # the client went away, or the server stops
            job.give_up()
            raise
