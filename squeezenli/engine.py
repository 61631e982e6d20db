"""Run pairs through an ONNX classifier: length-sorted batches, dynamic padding, input order out.

Padding is the largest waste on real data (pairs of mixed length padded to the longest in a
batch), so pairs are sorted by length within a bounded window before batching, and results
are put back in input order. The window keeps memory flat and lets results stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np

from .convert import INPUTS, OUTPUT
from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS, DEFAULT_WINDOW
from .errors import DamagedModelError, ModelError
from .tokenize import PairTokenizer

Pair = tuple[str, str]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (the max is subtracted before exponentiating)."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def create_session(model_path: Path, threads: int | None = None):
    """An onnxruntime CPU session; threads=None leaves onnxruntime's default (physical cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
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


class Engine:
    """Scores pairs with one onnxruntime session; knows nothing of files or terminals."""

    def __init__(
        self,
        session,
        tokenizer: PairTokenizer,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: int = DEFAULT_BATCH_TOKENS,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if batch_size < 1 or max_tokens < 1 or window < 1:
            raise ValueError("batch_size, max_tokens and window must be positive")
        self.session = session
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.window = window
        self._inputs = [i.name for i in session.get_inputs()]
        pad = tokenizer.token_to_id("[PAD]")
        self._pad_id = pad if pad is not None else 0
        self.padded_tokens = 0  # running totals, for the benchmark's padding ratio
        self.real_tokens = 0

    def logits(self, pairs: Sequence[Pair]) -> np.ndarray:
        """Logits [n, labels] for pairs, in input order."""
        chunks = list(self.iter_logits(pairs))
        if not chunks:
            width = self.session.get_outputs()[0].shape[-1]
            return np.zeros((0, width if isinstance(width, int) else 0), np.float32)
        return np.concatenate(chunks)

    def iter_logits(self, pairs: Iterable[Pair]) -> Iterator[np.ndarray]:
        """Logits window by window, each in input order: memory stays flat, results stream."""
        it = iter(pairs)
        yield from self.score_windows(iter(lambda: list(islice(it, self.window)), []))

    def score_windows(self, windows: Iterable[list[Pair]]) -> Iterator[np.ndarray]:
        """Logits for each window of pairs the caller cut (empty windows are passed over)."""
        for window in windows:
            if window:
                yield self._score_window(window)

    def batches(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        """Indices of a window in batches: sorted by length, each batch at most batch_size
        rows and, padded to its longest row, at most max_tokens tokens (a single row that is
        longer still gets a batch of its own)."""
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        batch: list[int] = []
        for i in order:
            rows = len(batch) + 1
            if batch and (rows > self.batch_size or rows * lengths[i] > self.max_tokens):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _score_window(self, chunk: list[Pair]) -> np.ndarray:
        encodings = self.tokenizer.encode(chunk)
        result: np.ndarray | None = None
        for index in self.batches([len(e.ids) for e in encodings]):
            logits = self._run([encodings[i] for i in index])
            if result is None:
                result = np.empty((len(chunk), logits.shape[1]), np.float32)
            result[index] = logits
        assert result is not None
        return result

    def _run(self, encodings: list) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, np.int64)
        types = np.zeros((len(encodings), width), np.int64)
        mask = np.zeros((len(encodings), width), np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            types[row, :n] = enc.type_ids
            mask[row, :n] = 1
        self.real_tokens += int(mask.sum())
        self.padded_tokens += ids.size
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return self.session.run([OUTPUT], {name: feeds[name] for name in self._inputs})[0]
