"""Run pairs through an ONNX classifier: length-sorted batches, dynamic padding, input order out.

Padding is the largest waste on real data (pairs of mixed length padded to the longest in a
batch), so pairs are sorted by length within a bounded window before batching, and results
are put back in input order. The window keeps memory flat and lets results stream.

Cores are used by running one batch per core at once on a single-threaded session, not by
splitting each operator across cores: this model's graph is hundreds of small operators per
batch (quantization, bias, gelu, regrouping), and a fork and join per operator cost int8 17%
and fp32 5% of its speed on 2 cores (bench/). A pair's scores are the same bits either way.

Runs never happen on the caller's thread, even with one thread: a thread inside
onnxruntime's run cannot take a signal until the run returns, which for a slow or hostile
graph may be never. The caller waits on a future instead, and a caller that stops (Ctrl-C,
an error, a consumer that stops early) terminates the runs still going (RunOptions.terminate).
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from squeezenli.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BATCH_TOKENS,
    DEFAULT_WINDOW,
    MAX_ATTENTION,
    MAX_BATCH_SIZE,
    MAX_BATCH_TOKENS,
    MAX_THREADS,
    cpus_available,
)
from squeezenli.errors import DamagedModelError, InputError, ModelError
from squeezenli.models.convert import OUTPUT, check_interface
from squeezenli.runtime.prediction import Pair
from squeezenli.runtime.tokenizer import PairIds, PairTokenizer


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (the max is subtracted before exponentiating)."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def create_session(
    model_path: Path,
    *,
    optimized: bool = False,
    settings: Mapping[str, str] | None = None,
):
    """A single-threaded onnxruntime CPU session: the Engine runs one batch per core on it
    (module docstring); onnxruntime allows concurrent runs on one session. A model onnxruntime
    has already optimized (build.ensure_runnable) is not optimized again: 30 ms less start-up
    for the full-size int8 model, the same speed and the same bits. settings: session config
    entries (build.kernel_settings: the exact int8 kernels where a model needs them)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # its errors reach the user as one line, not a log
    options = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_DISABLE_ALL if optimized else level.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    for key, value in (settings or {}).items():
        options.add_session_config_entry(key, value)
    try:
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
        raise DamagedModelError(
            f"{model_path}: cannot load ONNX model: {runtime_error(err)}"
        ) from None
    inputs = {i.name for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    check_interface(inputs, outputs, model_path)
    return session


def runtime_error(err: Exception) -> str:
    """What onnxruntime says went wrong, short: the failing node and its message, without
    the source paths and C++ signatures it wraps them in."""
    text = _CXX_SOURCE.sub("", " ".join(str(err).split())) or type(err).__name__
    found = re.search(r"running (\w+) node\. Name:'([^']*)' Status Message: (.*)$", text)
    if found is None:
        return text[:300]
    op, node, message = found.groups()
    return f"{op} node {node!r}: {message[:200]}"


# Where in onnxruntime's C++ a message was raised, and the function's signature:
# "/onnxruntime_src/.../bfc_arena.cc:360 void* onnxruntime::BFCArena::Allocate(size_t, bool) "
_CXX_SOURCE = re.compile(
    r"\S+\.(?:cc|cpp|h|hpp):\d+ (?:[\w:<>,*&~ ]+\((?:[^()]|\([^()]*\))*\)(?: const)?"
    r"(?: \[[^\]]*\])? )?"
)


def reference_logits(
    model_path: Path,
    tokenizer: PairTokenizer,
    pairs: list,
    what: str,
    settings: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Logits of fixed reference pairs (the label check) on a built model: a pair it cannot
    score is the model's fault here, not the input's."""
    engine = Engine(create_session(model_path, settings=settings), tokenizer)
    try:
        return engine.logits(pairs)
    except InputError as err:
        raise ModelError(f"{model_path}: cannot score {what}: {err}") from None


@dataclass(frozen=True)
class WindowScores:
    """The logits of one window of pairs, in its order, why some pairs have none (their
    rows are NaN): row index -> reason, and which pairs were cut to the model's length."""

    logits: np.ndarray
    errors: dict[int, str]
    truncated: list[bool]


# What a window holds: pairs of texts, encoded here, or pairs a caller encoded (the windows
# of a document it cut to fit beside its hypothesis).
Item = Pair | PairIds


class Engine:
    """Scores pairs with one onnxruntime session, `threads` batches at a time (None: one per
    CPU this process may use); knows nothing of files or terminals."""

    def __init__(
        self,
        session,
        tokenizer: PairTokenizer,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: int = DEFAULT_BATCH_TOKENS,
        window: int = DEFAULT_WINDOW,
        classes: int | None = None,
        threads: int | None = None,
    ) -> None:
        threads = threads or cpus_available()
        for name, value, top in (
            ("batch_size", batch_size, MAX_BATCH_SIZE),
            ("batch_tokens", max_tokens, MAX_BATCH_TOKENS),
            ("window", window, MAX_BATCH_SIZE),
            ("threads", threads, MAX_THREADS),
        ):
            if not 1 <= value <= top:
                raise InputError(f"`{name}` must be from 1 to {top}, got {value}")
        self.session = session
        # The model's outputs: as the caller knows them (its labels), else as the graph says.
        width = session.get_outputs()[0].shape[-1]
        self.classes = classes or (width if isinstance(width, int) else None)
        # An export made for one input size (input_ids [1, 160], say) takes only that size:
        # its batches are padded to it, pairs cut to its length, and its batches no bigger.
        shape = next(i.shape for i in session.get_inputs() if i.name == "input_ids")
        fixed = [d if isinstance(d, int) and d > 0 else None for d in [*shape, None, None][:2]]
        self.fixed_rows, self.fixed_length = fixed
        if self.fixed_length is not None and tokenizer.max_length > self.fixed_length:
            tokenizer = copy.copy(tokenizer)
            tokenizer.max_length = self.fixed_length
        batch_size = min(batch_size, self.fixed_rows or batch_size)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.window = window
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, "squeezenli-batch")
        self._running: set = set()  # RunOptions of the runs in flight, for terminate()
        self._running_lock = threading.Lock()
        self._inputs = [i.name for i in session.get_inputs()]
        pad = tokenizer.token_to_id("[PAD]")
        self._pad_id = pad if pad is not None else 0
        self.padded_tokens = 0  # running totals, for the benchmark's padding ratio
        self.real_tokens = 0

    def logits(self, pairs: Sequence[Pair]) -> np.ndarray:
        """Logits [n, labels] for pairs, in input order."""
        chunks = list(self.iter_logits(pairs))
        if not chunks:
            return np.zeros((0, self.classes or 0), np.float32)
        return np.concatenate(chunks)

    def iter_logits(self, pairs: Iterable[Pair]) -> Iterator[np.ndarray]:
        """Logits window by window, each in input order: memory stays flat, results stream.
        A pair that cannot be scored raises InputError naming its position."""
        for window in self.iter_scores(pairs):
            yield window.logits

    def iter_scores(
        self, pairs: Iterable[Pair], score: Callable[[list[Item]], WindowScores] | None = None
    ) -> Iterator[WindowScores]:
        """iter_logits, with which pairs were cut to the model's length; each window scored
        by `score` (a Batcher's, to share windows with other callers) or here."""
        it = iter(pairs)
        start = 0
        windows: Iterator[list[Item]] = iter(lambda: list(islice(it, self.window)), [])
        for window in map(score or self._score_window, windows):
            if window.errors:
                index, reason = min(window.errors.items())
                raise InputError(f"pair {start + index}: {reason}")
            start += len(window.logits)
            yield window

    def score_windows(self, windows: Iterable[list[Item]]) -> Iterator[WindowScores]:
        """Scores for each window of pairs the caller cut (empty windows are passed over)."""
        for window in windows:
            if window:
                yield self._score_window(window)

    def batches(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        """Indices of a window in batches: sorted by length, each batch at most batch_size
        rows and, padded to its longest row, at most max_tokens tokens (a single row that is
        longer still gets a batch of its own), and with at most MAX_ATTENTION attention
        scores per head, so no setting of the two runs out of memory on long pairs. A window
        that fills fewer batches than there are threads is cut into more, so that every core
        has a batch."""
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        batches: list[list[int]] = []
        batch: list[int] = []
        for i in order:
            rows = len(batch) + 1
            too_many = rows > self.batch_size or rows * lengths[i] > self.max_tokens
            if batch and (too_many or rows * lengths[i] ** 2 > MAX_ATTENTION):
                batches.append(batch)
                batch = []
            batch.append(i)
        if batch:
            batches.append(batch)
        while len(batches) < self.threads:
            biggest = max(batches, key=len, default=[])
            if len(biggest) < 2:
                break
            at = batches.index(biggest)
            half = len(biggest) // 2
            batches[at : at + 1] = [biggest[:half], biggest[half:]]
        return iter(batches)

    def encode(self, items: list[Item]) -> list[PairIds | str]:
        """The pairs of texts among items encoded, at once (the tokenizer's batch runs on
        every core); encoded pairs as they are."""
        texts = [item for item in items if not isinstance(item, PairIds)]
        found = iter(self.tokenizer.encode(texts) if texts else [])
        return [item if isinstance(item, PairIds) else next(found) for item in items]

    def _score_window(self, chunk: list[Item]) -> WindowScores:
        encodings = self.encode(chunk)
        errors = {i: e for i, e in enumerate(encodings) if isinstance(e, str)}
        good = {i: e for i, e in enumerate(encodings) if not isinstance(e, str)}
        rows = list(good)
        result = np.full((len(chunk), self.classes or 0), np.nan, np.float32)
        lengths = [self.fixed_length or len(e.ids) for e in good.values()]
        indices = [[rows[i] for i in b] for b in self.batches(lengths)]
        for index, logits in zip(indices, self._run_all([[good[i] for i in x] for x in indices])):
            if result.shape[1] != logits.shape[1]:  # the graph left its width open
                self.classes = logits.shape[1]
                result = np.full((len(chunk), self.classes), np.nan, np.float32)
            result[index] = logits
            self.real_tokens += sum(len(good[i].ids) for i in index)
            self.padded_tokens += len(index) * (
                self.fixed_length or max(len(good[i].ids) for i in index)
            )
        for i in rows:
            if not np.isfinite(result[i]).all():
                errors[i] = "the model gave non-finite logits (NaN or infinity) for this pair"
        truncated = [not isinstance(e, str) and e.truncated for e in encodings]
        return WindowScores(result, errors, truncated)

    def _run_all(self, batches: list[list]) -> Iterator[np.ndarray]:
        """Logits of each batch, in order, `threads` batches running at once. Batches not yet
        started are cancelled, and those running terminated, when the caller stops early (an
        error, Ctrl-C): no run outlives its caller (module docstring)."""
        futures: list[Future] = [self._pool.submit(self._run, b) for b in batches]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
            if not all(future.done() for future in futures):
                self.terminate()

    def terminate(self) -> None:
        """End every run in flight now: each raises in its own thread (onnxruntime checks
        the flag between operators)."""
        with self._running_lock:
            for options in self._running:
                options.terminate = True

    def feeds(self, encodings: list) -> dict[str, np.ndarray]:
        """A batch as the model's inputs (only those it takes), padded to its longest pair, or
        to the one size a fixed-size export takes (its extra rows one padding token each)."""
        width = self.fixed_length or max(len(e.ids) for e in encodings)
        rows = self.fixed_rows or len(encodings)
        ids = np.full((rows, width), self._pad_id, np.int64)
        types = np.zeros((rows, width), np.int64)
        mask = np.zeros((rows, width), np.int64)
        mask[len(encodings) :, 0] = 1
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            types[row, :n] = enc.type_ids
            mask[row, :n] = 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {n: arrays[n] for n in self._inputs}

    def _run(self, encodings: list) -> np.ndarray:
        import onnxruntime as ort

        options = ort.RunOptions()
        with self._running_lock:
            self._running.add(options)
        try:
            logits = self.session.run([OUTPUT], self.feeds(encodings), options)[0]
            if self.fixed_rows is not None and logits.ndim and len(logits) == self.fixed_rows:
                logits = logits[: len(encodings)]
        except Exception as err:  # onnxruntime's own error types: ids past a table, ...
            reason = runtime_error(err)
            hint = (
                " (an id or position past one of the model's tables: do config.json's "
                "max_position_embeddings and vocab_size describe this export? a smaller "
                "`max_length` keeps positions inside the table)"
                if reason.startswith("Gather")
                else ""
            )
            raise ModelError(
                f"the model failed on a batch of {len(encodings)} pair(s) of up to "
                f"{max(len(e.ids) for e in encodings)} tokens: {reason}{hint}"
            ) from None
        finally:
            with self._running_lock:
                self._running.discard(options)
        if logits.ndim != 2 or len(logits) != len(encodings) or not logits.shape[1]:
            raise ModelError(
                f"the model's '{OUTPUT}' has shape {list(logits.shape)} for "
                f"{len(encodings)} pairs; expected [{len(encodings)}, classes]"
            )
        if self.classes and logits.shape[1] != self.classes:
            raise ModelError(
                f"the model gives {logits.shape[1]} logits per pair, "
                f"but its config names {self.classes} labels"
            )
        return logits
