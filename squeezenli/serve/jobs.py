"""One request lifecycle for every way in (the HTTP routes and the MCP tools): take a slot
(429 past --max-concurrent), run the work on a worker thread, give up at --timeout (503) or
when the caller goes away, and free the slot exactly once, when the work ends or, if it never
started, when the request gave up on it. A cancelled request's work stops reading rows (its
`cancel` event) and stops waiting for the model (runtime/batcher.py's `stopping`, which gives
its window up), so its slot is free within ~50 ms, not at the end of its work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from squeezenli.runtime.batcher import Stopped, stopping
from squeezenli.serve.limits import Limits
from squeezenli.serve.metrics import Metrics
from squeezenli.serve.requests import RequestError

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
            with stopping(self.cancel):
                return self.work(self.cancel)
        except Stopped:  # given up: no one reads the answer
            return None
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

    async def run(
        self,
        work: Callable[[threading.Event], T],
        gone: Callable[[], Awaitable[Any]] | None = None,
    ) -> T:
        """work(cancel) on a worker thread, in a slot, within the timeout; given up when
        `gone()` returns (the caller left: a 499 that no one reads, for the access log)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.limits.max_concurrent)
        self.take_slot()
        job = _Job(self, work)
        running = asyncio.ensure_future(
            anyio.to_thread.run_sync(job, abandon_on_cancel=True, limiter=self._limiter)
        )
        watching = asyncio.ensure_future(gone()) if gone is not None else None
        try:
            waited = {running} if watching is None else {running, watching}
            await asyncio.wait(waited, timeout=self.limits.timeout_s, return_when="FIRST_COMPLETED")
            if running.done():
                return running.result()
            if watching is not None and watching.done():
                raise RequestError(499, "the client closed the connection", "cancelled")
            raise RequestError(
                503,
                f"the request took over {self.limits.timeout_s:g} s (squeezenli serve --timeout)",
                "timeout",
            )
        finally:  # answered, refused, or cancelled (the server stops): nothing left running
            if not running.done():
                job.give_up()
                running.cancel()
            if watching is not None:
                watching.cancel()
