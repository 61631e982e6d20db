"""Records cut into windows, for the local path and the `--server` client alike: the cuts of
a file depend only on its rows, and a live input's window ends when it pauses. Standard
library only, so the client imports no numpy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_END = object()

# A window also ends once its pairs hold this many characters: what a window holds, and
# what tokenizing it at once takes, stays bounded however long the rows (16 rows of 8 MiB
# took 20 GB), while windows of ordinary pairs (~150 characters) are cut by their count.
WINDOW_CHARS = 1 << 22


def _chars(item: Any) -> int:
    """What an item weighs against WINDOW_CHARS: a pair's characters, or for an encoded pair
    (runtime/tokenizer.PairIds) ~4 characters a token."""
    ids = getattr(item, "ids", None)
    return len(item[0]) + len(item[1]) if ids is None else 4 * len(ids)


def timely_windows(
    items: Iterable, size: int, wait: float = 0.05, weight: Callable[[Any], int] = _chars
) -> Iterator[list]:
    """Lists of up to `size` pairs (and WINDOW_CHARS characters, as `weight` counts them;
    any items may be windowed so); a list is cut early when no pair arrives within `wait`
    s. The reader runs ahead by at most 2 x size pairs and about WINDOW_CHARS characters,
    and stops reading when the consumer stops (an early break, an error): no thread
    outlives its consumer but one blocked reading its input."""
    inbox: queue.Queue = queue.Queue(maxsize=size * 2)
    ahead = [0]  # characters read and not yet taken
    taken = threading.Condition()
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                inbox.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                with taken:
                    while ahead[0] >= WINDOW_CHARS and not stop.is_set():
                        taken.wait(0.1)
                    ahead[0] += weight(item)
                if not put(item):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            put(err)
            return
        put(_END)

    threading.Thread(target=read, daemon=True, name="squeezenli-reader").start()
    try:
        yield from _timely(inbox, size, wait, ahead, taken, weight)
    finally:
        stop.set()


def _timely(
    inbox: queue.Queue, size: int, wait: float, ahead: list, taken, weight: Callable[[Any], int]
) -> Iterator[list]:
    """timely_windows' consumer side: the windows, from what the reader puts in inbox."""
    window: list = []
    chars = 0
    while True:
        try:
            item = inbox.get(timeout=wait) if window else inbox.get()
        except queue.Empty:
            yield window
            window, chars = [], 0
            continue
        if item is _END:
            break
        if isinstance(item, BaseException):
            if window:
                yield window
            raise item
        with taken:
            ahead[0] -= weight(item)
            taken.notify()
        window.append(item)
        chars += weight(item)
        if len(window) >= size or chars >= WINDOW_CHARS:
            yield window
            window, chars = [], 0
    if window:
        yield window


FIRST_WINDOW = 16


def growing_windows(
    items: Iterable, size: int, weight: Callable[[Any], int] = _chars
) -> Iterator[list]:
    """Lists of FIRST_WINDOW pairs, then twice as many each time up to `size`, each ended
    early once it holds WINDOW_CHARS characters: the first results of a file come out at
    once (`| head -1` answers in a moment), later windows are large enough to sort by
    length. The cuts depend only on the input, so the same input always makes the same
    windows."""
    length = min(FIRST_WINDOW, size)
    window: list = []
    chars = 0
    for item in items:
        window.append(item)
        chars += weight(item)
        if len(window) >= length or chars >= WINDOW_CHARS:
            yield window
            window, chars = [], 0
            length = min(length * 2, size)
    if window:
        yield window
