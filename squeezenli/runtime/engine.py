"""Run pairs through an ONNX classifier: length-sorted batches, dynamic padding, input order out.

Padding is the largest waste on real data (pairs of mixed length padded to the longest in a
batch), so pairs are sorted by length within a bounded window before batching, and results
are put back in input order. The window keeps memory flat and lets results stream.

Cores are used by running one batch per core at once on a single-threaded session, not by
splitting each operator across cores: this model's graph is hundreds of small operators per
batch (quantization, bias, gelu, regrouping), and a fork and join per operator cost int8 17%
and fp32 5% of its speed on 2 cores (bench/). A pair's scores are the same bits either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from squeezenli.models.convert import INPUTS, OUTPUT
from squeezenli.runtime.tokenizer import PairTokenizer

Pair = tuple[str, str]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (the max is subtracted before exponentiating)."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def create_session(
    model_path: Path, *, optimized: bool = False, settings: Mapping[str, str] | None = None
):
    """A single-threaded onnxruntime CPU session: the Engine runs one batch per core on it
    (module docstring); onnxruntime allows concurrent runs on one session. A model onnxruntime
    has already optimized (build.ensure_ready) is not optimized again: 30 ms less start-up
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
        raise DamagedModelError(f"{model_path}: cannot load ONNX model: {err}") from None
    inputs = {i.name for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if "input_ids" not in inputs or not inputs <= set(INPUTS) or OUTPUT not in outputs:
        raise ModelError(
            f"{model_path}: not an ONNX sequence classifier (inputs {sorted(inputs)}, "
            f"outputs {outputs}; expected inputs among {list(INPUTS)} and an output '{OUTPUT}')"
        )
    return session


def runtime_error(err: Exception) -> str:
    """What onnxruntime says went wrong, short: the failing node and its message, without
    the source paths and C++ signatures it wraps them in."""
    text = " ".join(str(err).split()) or type(err).__name__
    found = re.search(r"running (\w+) node\. Name:'([^']*)' Status Message: (.*)$", text)
    if found is None:
        return text[:300]
    op, node, message = found.groups()
    message = re.sub(r"^\S+\.(?:cc|h):\d+ .*?\] ", "", message)  # /src/x.cc:150 void f() [...]
    return f"{op} node {node!r}: {message[:200]}"


def reference_logits(
    model_path: Path,
    tokenizer: PairTokenizer,
    pairs: list,
    what: str,
    settings: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Logits of fixed reference pairs (the label check, the calibration set) on a built
    model: a pair it cannot score is the model's fault here, not the input's."""
    return reference_scores(model_path, tokenizer, pairs, what, settings=settings)[0]


def reference_scores(
    model_path: Path,
    tokenizer: PairTokenizer,
    pairs: list,
    what: str,
    alone: int = 0,
    settings: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """reference_logits, and the logits of the first `alone` pairs each scored in a batch
    of its own: what batching does to a pair's scores."""
    engine = Engine(create_session(model_path, settings=settings), tokenizer)
    try:
        batched = engine.logits(pairs)
        singles = [engine.logits([pair]) for pair in pairs[:alone]]
    except InputError as err:
        raise ModelError(f"{model_path}: cannot score {what}: {err}") from None
    return batched, np.concatenate(singles) if singles else batched[:0]


@dataclass(frozen=True)
class WindowScores:
    """The logits of one window of pairs, in its order, and why some pairs have none
    (their rows are NaN): row index -> reason."""

    logits: np.ndarray
    errors: dict[int, str]


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
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.window = window
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, "squeezenli-batch") if threads > 1 else None
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
        it = iter(pairs)
        start = 0
        for window in self.score_windows(iter(lambda: list(islice(it, self.window)), [])):
            if window.errors:
                index, reason = min(window.errors.items())
                raise InputError(f"pair {start + index}: {reason}")
            start += len(window.logits)
            yield window.logits

    def score_windows(self, windows: Iterable[list[Pair]]) -> Iterator[WindowScores]:
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

    def _score_window(self, chunk: list[Pair]) -> WindowScores:
        encodings = self.tokenizer.encode(chunk)
        errors = {i: e for i, e in enumerate(encodings) if isinstance(e, str)}
        good = {i: e for i, e in enumerate(encodings) if not isinstance(e, str)}
        rows = list(good)
        result = np.full((len(chunk), self.classes or 0), np.nan, np.float32)
        indices = [[rows[i] for i in b] for b in self.batches([len(e.ids) for e in good.values()])]
        for index, logits in zip(indices, self._run_all([[good[i] for i in x] for x in indices])):
            if result.shape[1] != logits.shape[1]:  # the graph left its width open
                self.classes = logits.shape[1]
                result = np.full((len(chunk), self.classes), np.nan, np.float32)
            result[index] = logits
            self.real_tokens += sum(len(good[i].ids) for i in index)
            self.padded_tokens += len(index) * max(len(good[i].ids) for i in index)
        for i in rows:
            if not np.isfinite(result[i]).all():
                errors[i] = "the model gave non-finite logits (NaN or infinity) for this pair"
        return WindowScores(result, errors)

    def _run_all(self, batches: list[list]) -> Iterator[np.ndarray]:
        """Logits of each batch, in order, `threads` batches running at once. Batches not yet
        started are cancelled when the caller stops early (an error, Ctrl-C)."""
        if self._pool is None or len(batches) < 2:
            yield from map(self._run, batches)
            return
        futures: list[Future] = [self._pool.submit(self._run, b) for b in batches]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def feeds(self, encodings: list) -> dict[str, np.ndarray]:
        """A batch as the model's inputs (only those it takes), padded to its longest pair."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, np.int64)
        types = np.zeros((len(encodings), width), np.int64)
        mask = np.zeros((len(encodings), width), np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            types[row, :n] = enc.type_ids
            mask[row, :n] = 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {n: arrays[n] for n in self._inputs}

    def _run(self, encodings: list) -> np.ndarray:
        try:
            logits = self.session.run([OUTPUT], self.feeds(encodings))[0]
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
