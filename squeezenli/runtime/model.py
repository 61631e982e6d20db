"""Load a model end to end (resolve, build, session, tokenizer, labels) and score pairs.

This is the Python API under the CLI:

    from squeezenli import load_model
    nli = load_model()                      # squeezebert/squeezebert-mnli, pinned revision
    for p in nli.predict([("A man plays a guitar.", "A person makes music.")]):
        print(p.label, p.scores)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from squeezenli.errors import DamagedDownloadError, DamagedModelError, InputError
from squeezenli.models.build import (
    discard_builds,
    discard_ready,
    ensure_onnx,
    ensure_runnable,
    is_export,
    kernel_settings,
    log,
    verify_downloads,
    verify_model,
)
from squeezenli.models.config import (
    id2label,
    int_field,
    max_positions,
    parse_config,
    read_config,
)
from squeezenli.models.hub import CONFIG, ModelFiles, forget, resolve
from squeezenli.models.labels import LabelMap, needs_measurement, resolve_labels
from squeezenli.runtime.batcher import Batcher
from squeezenli.runtime.engine import Engine, Pair, create_session, softmax
from squeezenli.runtime.precision import Agreement, PrecisionChoice, Speed, choose
from squeezenli.runtime.prediction import Evidence, Prediction
from squeezenli.runtime.spec import ModelSpec
from squeezenli.runtime.tokenizer import PairTokenizer, model_max_length


class NLIModel:
    """A loaded classifier: tokenizer, onnxruntime session and label mapping together."""

    def __init__(
        self,
        files: ModelFiles,
        engine: Engine,
        labels: LabelMap,
        onnx_path: Path,
        choice: PrecisionChoice,
    ) -> None:
        self.files = files
        self.engine = engine
        self.labels = labels
        self.onnx_path = onnx_path  # what the session runs: the ready copy (ensure_runnable)
        self.precision = choice.precision  # what runs: fp32 or int8
        self.requested_precision = choice.requested
        self.agreement: Agreement | None = choice.agreement  # int8 against fp32, if measured
        self.speed: Speed | None = choice.speed  # both timed on this CPU, if measured
        self.batcher = Batcher(engine)  # every caller's windows go through it (batcher.py)

    @property
    def max_length(self) -> int:
        return self.engine.tokenizer.max_length

    def logits(self, pairs: Sequence[Pair]) -> np.ndarray:
        """Raw logits [n, labels] in the model's index order."""
        chunks = [w.logits for w in self.engine.iter_scores(pairs, self.batcher.score)]
        return np.concatenate(chunks) if chunks else self.engine.logits([])

    def probabilities(self, pairs: Sequence[Pair]) -> np.ndarray:
        return softmax(self.logits(pairs))

    def iter_probabilities(self, pairs: Iterable[Pair]) -> Iterator[np.ndarray]:
        """Probabilities window by window, in input order, as the engine finishes them."""
        for window in self.engine.iter_scores(pairs, self.batcher.score):
            yield softmax(window.logits)

    def predict(self, pairs: Iterable[Pair]) -> Iterator[Prediction]:
        """A Prediction per pair, in input order, streamed; each says whether the pair was
        cut to the model's length (score_records reads long premises whole)."""
        for window in self.engine.iter_scores(pairs, self.batcher.score):
            probs = softmax(window.logits)
            yield from map(self.to_prediction, probs, window.truncated)

    def to_prediction(
        self,
        probs: np.ndarray,
        truncated: bool = False,
        evidence: Evidence | None = None,
        *,
        threshold: float | None = None,
        logits: np.ndarray | None = None,
    ) -> Prediction:
        """probs [labels] as a Prediction; with a threshold, whether P(entailment) reaches
        it; with logits, those too, named by the labels."""
        names = self.labels.names
        order = self.labels.ordered()
        entailed = None
        if threshold is not None:
            entailed = bool(probs[names.index("entailment")] >= threshold)
        return Prediction(
            label=names[int(np.argmax(probs))],
            scores={names[i]: float(probs[i]) for i in order},
            truncated=truncated,
            evidence=evidence,
            entailed=entailed,
            logits=None if logits is None else {names[i]: float(logits[i]) for i in order},
        )


@dataclass(frozen=True)
class PreparedModel:
    """A model downloaded, built and measured, ready for sessions to open."""

    files: ModelFiles
    labels: LabelMap
    choice: PrecisionChoice
    ready: Path  # the model runs open (build.ensure_runnable)


def _spec(model: str | ModelSpec | None, revision: str | None, options: dict) -> ModelSpec:
    """A ModelSpec given whole, or made from load_model's keyword form."""
    if isinstance(model, ModelSpec):
        if revision is not None or options:
            raise InputError("give a ModelSpec, or model and options, not both")
        return model
    label_order = options.get("label_order")
    if label_order is not None and not isinstance(label_order, str):
        options["label_order"] = tuple(label_order)
    return ModelSpec(model, revision, **options)


def load_model(
    model: str | ModelSpec | None = None,
    revision: str | None = None,
    *,
    progress: bool = True,
    **options,
) -> NLIModel:
    """Resolve, download, build and open a model: everything needed before scoring. Takes a
    ModelSpec, or its fields as arguments: load_model("repo", precision="fp32")."""
    spec = _spec(model, revision, options)

    def load(files: ModelFiles) -> NLIModel:
        labels, choice, tokenizer = _parts(files, spec)
        onnx_path, session = _open_session(files, choice.precision)
        engine = Engine(
            session,
            tokenizer,
            batch_size=spec.batch_size,
            max_tokens=spec.batch_tokens,
            classes=len(labels.names),
            threads=spec.threads,
        )
        fixed = engine.fixed_length
        if spec.max_length is not None and fixed is not None and spec.max_length > fixed:
            raise InputError(
                f"`max_length` {spec.max_length} is more than this export takes: it was made "
                f"for exactly {fixed} tokens per pair (give {fixed} or less)"
            )
        return NLIModel(files, engine, labels, onnx_path, choice)

    return _fetched(spec, progress, load)


def prepare_model(
    model: str | ModelSpec | None = None,
    revision: str | None = None,
    *,
    progress: bool = True,
    measure: bool = False,
    **options,
) -> PreparedModel:
    """Download and build a model and check its options, without opening a session: for a
    driver whose workers do the scoring (Ray), so that they find everything built. With
    `measure`, precision auto measures int8 against fp32 here first if it was not measured
    yet (`model download`), so later runs may choose it."""
    spec = _spec(model, revision, options)

    def prepare(files: ModelFiles) -> PreparedModel:
        labels, choice, _ = _parts(files, spec, measure)
        ready = _rebuilt_if_damaged(files, lambda: ensure_runnable(files, choice.precision))
        return PreparedModel(files, labels, choice, ready)

    return _fetched(spec, progress, prepare)


def _fetched(spec: ModelSpec, progress: bool, step: Callable):
    """step(files) on the resolved model; a download found damaged is fetched again, once."""
    files = resolve(spec.model, spec.revision, onnx_file=spec.onnx_file, progress=progress)
    try:
        verify_downloads(files)
        return step(files)
    except DamagedDownloadError as err:
        if files.revision is None:  # a local folder: nothing to fetch again
            raise
        log.warning("%s; downloading it again", err)
        forget(files, err.name)
        return step(resolve(spec.model, spec.revision, onnx_file=spec.onnx_file, progress=progress))


def _parts(
    files: ModelFiles, spec: ModelSpec, measure: bool = False
) -> tuple[LabelMap, PrecisionChoice, PairTokenizer]:
    """The label mapping, the precision and the tokenizer, with the spec checked against
    the config. What is measured at build time (the label order, int8's agreement) is
    measured at the model's own length limit, whatever max_length says."""
    max_length, override = spec.max_length, spec.label_order
    origin = str(files.files[CONFIG])
    raw_config = read_config(files.files[CONFIG])
    tables: tuple[int, int | None] | None = None  # vocab_size, type_vocab_size
    if not is_export(files):
        config = parse_config(raw_config, origin)
        positions = config.max_position_embeddings
        tables = (config.vocab_size, config.type_vocab_size)
    else:
        positions = max_positions(raw_config, origin)
        if "vocab_size" in raw_config:  # an export's config: type_vocab_size 0 or absent, no types
            types = raw_config.get("type_vocab_size")
            types = types if type(types) is int and types > 0 else None
            tables = (int_field(raw_config, "vocab_size", origin), types)
    if max_length is not None and max_length > positions:
        raise InputError(f"`max_length` {max_length} exceeds the model's {positions} positions")
    tokenizer_config = files.path("tokenizer_config.json")
    limit = model_max_length(tokenizer_config, positions)

    def tokenizer(length: int) -> PairTokenizer:
        return PairTokenizer.from_files(
            tokenizer_json=files.path("tokenizer.json"),
            vocab=files.path("vocab.txt"),
            tokenizer_config=tokenizer_config,
            max_length=length,
        )

    user = tokenizer(max_length or limit)
    reference = user if user.max_length == limit else tokenizer(limit)
    if tables is not None:
        user.check_fits(*tables, origin)

    def measured() -> tuple[LabelMap, PrecisionChoice]:
        labels = id2label(raw_config, origin)
        order = None
        if needs_measurement(labels, override):
            from squeezenli.runtime.labelcheck import measured_order

            order = measured_order(files, reference)
        return (
            resolve_labels(labels, files.source, override, order),
            choose(files, spec.precision, reference, measure),
        )

    labels, choice = _rebuilt_if_damaged(files, measured)
    return labels, choice, user


def _rebuilt_if_damaged(files: ModelFiles, step: Callable):
    """step(); a damaged built model (a full disk, bit rot) is deleted and built again from
    the weights, once."""
    try:
        return step()
    except DamagedModelError as err:
        if is_export(files):  # a download, not ours to rebuild
            raise
        log.warning("%s; building it again", err)
        discard_builds(files)
        return step()


def _open_session(files: ModelFiles, precision: str):
    """The ready model's path and a session on it, checked against the hash recorded when
    it was written (~15 ms for the full-size int8 model)."""
    return _rebuilt_if_damaged(files, lambda: _session_on_ready(files, precision))


def _session_on_ready(files: ModelFiles, precision: str):
    ready = ensure_runnable(files, precision)
    try:
        verify_model(ready, files.build_dir)
        settings = kernel_settings(ready, files.build_dir)
        return ready, create_session(ready, optimized=True, settings=settings)
    except DamagedModelError as err:
        # The plain model serves this run (built again from the weights if it was removed),
        # and the next run makes the copy again. A copy onnxruntime cannot load back at all
        # (onnxruntime 1.30 with a Loop in the graph) keeps a model runnable this way.
        log.warning("%s; making it again", err)
        discard_ready(ready)
        built = ensure_onnx(files, precision)
        verify_model(built, files.build_dir)
        return built, create_session(built, settings=kernel_settings(built, files.build_dir))
