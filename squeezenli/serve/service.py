"""Predict, unbatch, encode: a decoded request run on the model through the library's own
tasks (score_records, classify_records, check_records), so a row's answer is the one
`batch`, `classify` and `check` give, and shaped by tasks/rows.py as theirs are.

Every request's pairs go through the model's one Batcher (runtime/batcher.py): requests in
flight at once share windows, and a pair's scores do not depend on what shares its window.
A Service method is called on a worker thread; `cancel` (set when the request timed out or
its client went away) stops it reading further rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from squeezenli.choices import LongInput, OnError
from squeezenli.errors import Fault, InputError
from squeezenli.records.readers import Record, RowError, RowFailure
from squeezenli.runtime.model import NLIModel
from squeezenli.serve.requests import (
    RequestError,
    Shaping,
    TaskRequest,
    TeiPredict,
    ZeroShotTask,
    invalid,
    refused,
)
from squeezenli.tasks.options import CheckOptions, PairOptions, ZeroShotOptions
from squeezenli.tasks.results import Result
from squeezenli.tasks.rows import ResultFields

SOURCE = "request"  # what a row error names as its source; its line is the row's index + 1


def _records(rows: list[dict], cancel: threading.Event) -> Iterator[Record]:
    for index, row in enumerate(rows):
        if cancel.is_set():
            return
        yield Record(SOURCE, index + 1, row)


def _shape(own: list[str], shaping: Shaping) -> ResultFields:
    try:
        return ResultFields(own, shaping.prefix, shaping.output_fields)
    except InputError as err:
        raise invalid("output_fields", str(err)) from None


def _encode(results: Iterator[Result], shape: ResultFields, echo: bool) -> list[dict]:
    """Each result as {"row": input row + result fields} (or {"result": its fields alone})
    or {"error": {"message", "field", "index"}}, in input order."""
    out = []
    for result in results:
        error: RowError | None = result.error
        if error is None and result.output is not None:
            fields = result.output.fields()
            if not echo:
                out.append({"result": shape.named(fields)})
                continue
            try:
                out.append({"row": shape.row(result.record, fields)})
                continue
            except RowFailure as failure:
                error = failure.error
        assert error is not None
        out.append(
            {"error": {"message": error.message, "field": error.field, "index": error.line - 1}}
        )
    return out


class Service:
    """A loaded model behind the server's endpoints (and the MCP tools)."""

    def __init__(self, nli: NLIModel) -> None:
        self.nli = nli
        self.classes = [nli.labels.names[i] for i in nli.labels.ordered()]

    def predict(self, request: TeiPredict, cancel: threading.Event) -> Any:
        """TEI's /predict: per pair, every label with its score, highest first (raw_scores:
        the logits); one list for a single pair. A pair the model would cut, without
        `truncate`, refuses the request (413, as TEI)."""
        from squeezenli.tasks.scoring import score_records

        rows = [{"premise": p, "hypothesis": h} for p, h in request.pairs]
        long_input = LongInput.TRUNCATE if request.truncate else LongInput.FAIL
        results = score_records(
            self.nli,
            _records(rows, cancel),
            on_error=OnError.SKIP,
            long_input=long_input,
            logits=request.raw_scores,
        )
        answers = []
        for result in results:
            if result.error is not None or result.output is None:
                assert result.error is not None
                field = "inputs" if request.single else f"inputs[{result.error.line - 1}]"
                too_long = result.error.kind is Fault.TOO_LONG
                status, kind = (413, "validation") if too_long else (422, "tokenizer")
                raise RequestError(status, f"`{field}`: {result.error.message}", kind, field)
            values = (
                result.output.fields()["logits"]
                if request.raw_scores
                else result.output.fields()["scores"]
            )
            ranked = sorted(values.items(), key=lambda item: -item[1])
            answers.append([{"label": label, "score": score} for label, score in ranked])
        return answers[0] if request.single else answers

    def root(self, request: ZeroShotTask | TeiPredict, cancel: threading.Event) -> Any:
        """POST /: the Inference API's zero-shot task (per text, each label with its score,
        highest first: classify's labels and scores, as classify rounds them), or TEI's
        /predict."""
        if isinstance(request, TeiPredict):
            return self.predict(request, cancel)
        answers = []
        for found in self.classify(request.request, cancel):
            if "error" in found:
                error = found["error"]
                field = "inputs" if request.single else f"inputs[{error['index']}]"
                raise RequestError(422, f"`{field}`: {error['message']}", "validation", field)
            result = found["result"]
            ranked = zip(result["labels"], result["scores"])
            answers.append([{"label": label, "score": score} for label, score in ranked])
        return answers[0] if request.single else answers

    def score(self, request: TaskRequest[PairOptions], cancel: threading.Event) -> list[dict]:
        from squeezenli.tasks.scoring import score_records

        return self._answer(request, cancel, score_records)

    def classify(
        self, request: TaskRequest[ZeroShotOptions], cancel: threading.Event
    ) -> list[dict]:
        from squeezenli.tasks.zeroshot import classify_records

        return self._answer(request, cancel, classify_records)

    def check(self, request: TaskRequest[CheckOptions], cancel: threading.Event) -> list[dict]:
        from squeezenli.tasks.claims import check_records

        return self._answer(request, cancel, check_records)

    def _answer(self, request: TaskRequest, cancel: threading.Event, task: Callable) -> list[dict]:
        """The rows the task gives for the request's rows, encoded; the library refusing the
        request as a whole (a field no row has, an option the model cannot take) is the
        request's 4xx."""
        options = request.options
        shape = _shape(options.result_names(), request.shaping)
        try:
            results = task(
                self.nli, _records(request.rows, cancel), options=options, on_error=OnError.SKIP
            )
            return _encode(results, shape, request.shaping.echo)
        except InputError as err:
            raise refused(err, type(options)) from None

    @contextmanager
    def observed(self, observer: Callable[[int, float], None]) -> Iterator[None]:
        """Hand every window the model's batcher scores to `observer` (the metrics) while
        the context lasts."""
        observers = self.nli.batcher.observers
        observers.append(observer)
        try:
            yield
        finally:
            observers.remove(observer)

    def info(self) -> dict:
        """What is served: the model, its revision, precision (and int8's measured agreement),
        label mapping and its source, lengths, and squeezenli's version."""
        from squeezenli import __version__

        nli = self.nli
        return {
            "model_id": nli.files.source,
            "model_revision": nli.files.revision,
            "model_type": {
                "classifier": {"id2label": {str(i): n for i, n in enumerate(nli.labels.names)}}
            },
            "precision": nli.precision,
            "requested_precision": str(nli.requested_precision),
            "int8_agreement": nli.agreement.as_dict() if nli.agreement else None,
            "labels": list(nli.labels.names),
            "label_source": nli.labels.kind.value,
            "label_source_detail": nli.labels.source,
            "max_input_length": nli.max_length,
            "version": __version__,
        }
