"""Decode: a request's JSON body into the typed request a Service runs, or a RequestError
that names the field at fault and carries its HTTP status (4xx, never a 500).

Statuses follow text-embeddings-inference (TEI) where it has one: 413 for what is over a
limit (a body, a batch), 422 for what cannot be read (a wrong type, a bad value), 429 when
too many requests are in flight, 400 for an empty input list; an error body is
{"error": message, "error_type": kind} as TEI's, with "field" added where one is at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from squeezenli.errors import Fault, InputError
from squeezenli.records.readers import loads_exact
from squeezenli.serve.limits import Limits
from squeezenli.tasks.options import (
    CheckOptions,
    PairOptions,
    TaskOptions,
    ZeroShotOptions,
    kind_of,
)


class RequestError(Exception):
    """A request the server refuses: its status, TEI's error_type, and the field at fault."""

    def __init__(
        self, status: int, message: str, error_type: str = "validation", field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.field = field

    def body(self) -> dict:
        found: dict = {"error": self.message, "error_type": self.error_type}
        if self.field is not None:
            found["field"] = self.field
        return found


def invalid(field: str, message: str) -> RequestError:
    """A 422 naming the field (TEI: tokenizer/validation errors of a readable body)."""
    return RequestError(422, f"`{field}`: {message}", "validation", field)


def check_api_key(key: str, param: str = "api_key") -> str:
    """A bearer token HTTP carries as it is: printable ASCII with no space at either end (a
    client strips those, so such a key could never match). Refused before any request is
    served or sent."""
    if not key:
        raise InputError(f"`{param}` is empty: give the key, or leave the option out", param)
    bad = next((c for c in key if not " " <= c <= "~"), None)
    if bad is not None:
        raise InputError(
            f"`{param}` holds {bad!r}, which an HTTP header cannot carry as it is: "
            "use printable ASCII (letters, digits, punctuation)",
            param,
        )
    if key != key.strip(" "):
        raise InputError(
            f"`{param}` starts or ends with a space, which HTTP strips: no client could send it",
            param,
        )
    return key


def parse_body(raw: bytes) -> dict:
    """The JSON object a body holds."""
    if not raw.strip():
        raise RequestError(400, "the body is empty: send a JSON object", "empty")
    try:
        found = loads_exact(raw)
    except (ValueError, RecursionError) as err:  # orjson's and json's decode errors
        raise RequestError(422, f"the body is not JSON: {err}", "validation") from None
    if not isinstance(found, dict):
        raise RequestError(422, f"the body must be a JSON object, got {kind_of(found)}")
    return found


_MISSING = object()


def _take(body: Mapping, name: str, kinds: tuple[type, ...], default: Any = _MISSING) -> Any:
    """body[name], of one of `kinds` (a bool is no number), else a 422 naming it."""
    if name not in body or body[name] is None:
        if default is _MISSING:
            raise invalid(name, "is required")
        return default
    value = body[name]
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        wanted = " or ".join(WANTED[k] for k in kinds)
        raise invalid(name, f"must be {wanted}, got {kind_of(value)}")
    return value


# What a field of each type is called in a refusal (and in a client's, of a server's answer).
WANTED = {
    list: "a list",
    str: "a string",
    dict: "an object",
    bool: "true or false",
    int: "an integer",
}


def refused(err: InputError, options: type[TaskOptions] | None = None) -> RequestError:
    """A library refusal as the request's 4xx: its status from the fault's kind, its field
    the request field of the parameter at fault."""
    field = options.wire_name(err.param) if options is not None else err.param
    status = {Fault.EMPTY: 400, Fault.TOO_LONG: 413}.get(err.kind, 422)
    kind = "empty" if err.kind is Fault.EMPTY else "validation"
    return RequestError(status, str(err), kind, field)


OptionsT = TypeVar("OptionsT", bound=TaskOptions)


def _options(body: Mapping, options: type[OptionsT]) -> OptionsT:
    try:
        return options.from_wire(body)
    except InputError as err:
        raise refused(err, options) from None


def _rows(body: Mapping, name: str, limits: Limits) -> list[dict]:
    rows = _take(body, name, (list,))
    if not rows:
        raise RequestError(400, f"`{name}` is empty: send at least one", "empty", name)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise invalid(f"{name}[{index}]", f"must be an object, got {kind_of(row)}")
    check_batch(len(rows), limits, name)
    return rows


def check_batch(count: int, limits: Limits, field: str) -> None:
    """TEI's batch-size refusal: 413 past --max-batch."""
    if count > limits.max_batch:
        raise RequestError(
            413,
            f"batch size {count} > maximum allowed batch size {limits.max_batch} "
            "(squeezenli serve --max-batch)",
            "validation",
            field,
        )


def _pair(value: Any, field: str) -> tuple[str, str]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(text, str) for text in value)
    ):
        raise invalid(field, f"must be a [premise, hypothesis] pair of strings, got {value!r:.80}")
    return value[0], value[1]


@dataclass(frozen=True)
class Shaping:
    """How result rows are named (tasks/rows.py), and whether a result echoes its row."""

    prefix: str = ""
    output_fields: dict[str, str] | None = None
    echo: bool = True  # results hold the input row with the result's fields; else those alone


def _shaping(body: Mapping) -> Shaping:
    renames = _take(body, "output_fields", (dict, str), None)
    if isinstance(renames, dict) and not all(isinstance(v, str) for v in renames.values()):
        raise invalid("output_fields", "must map result field names to new names (strings)")
    if isinstance(renames, str):
        from squeezenli.tasks.rows import parse_renames

        try:
            renames = parse_renames(renames)
        except InputError as err:
            raise invalid("output_fields", str(err)) from None
    return Shaping(
        _take(body, "prefix", (str,), ""), renames, _take(body, "rows_back", (bool,), True)
    )


@dataclass(frozen=True)
class TeiPredict:
    """POST /predict as TEI takes it: one pair or a list of pairs."""

    pairs: list[tuple[str, str]]
    single: bool
    raw_scores: bool
    truncate: bool


def tei_predict(body: Mapping, limits: Limits) -> TeiPredict:
    inputs = _take(body, "inputs", (list, str))
    if isinstance(inputs, str):
        raise invalid("inputs", "NLI scores pairs: send [premise, hypothesis] or a list of them")
    single = len(inputs) == 2 and all(isinstance(text, str) for text in inputs)
    if single:
        pairs = [_pair(inputs, "inputs")]
    else:
        if not inputs:
            raise RequestError(400, "`inputs` is empty: send at least one pair", "empty", "inputs")
        check_batch(len(inputs), limits, "inputs")
        pairs = [_pair(item, f"inputs[{i}]") for i, item in enumerate(inputs)]
    return TeiPredict(
        pairs,
        single,
        _take(body, "raw_scores", (bool,), False),
        _take(body, "truncate", (bool,), False),
    )


@dataclass(frozen=True)
class TaskRequest(Generic[OptionsT]):
    """POST /score, /classify or /check: rows as the command reads them, the task's options
    and how the results are named."""

    rows: list[dict]
    options: OptionsT
    shaping: Shaping


def score_request(body: Mapping, limits: Limits) -> TaskRequest[PairOptions]:
    if "pairs" in body and "rows" in body:
        raise invalid("pairs", "send `rows` or `pairs`, not both")
    if "pairs" in body:
        pairs = _take(body, "pairs", (list,))
        if not pairs:
            raise RequestError(400, "`pairs` is empty: send at least one", "empty", "pairs")
        check_batch(len(pairs), limits, "pairs")
        found = [_pair(item, f"pairs[{i}]") for i, item in enumerate(pairs)]
        rows = [{"premise": p, "hypothesis": h} for p, h in found]
    else:
        rows = _rows(body, "rows", limits)
    return TaskRequest(rows, _options(body, PairOptions), _shaping(body))


def classify_request(body: Mapping, limits: Limits) -> TaskRequest[ZeroShotOptions]:
    if "texts" in body and "rows" in body:
        raise invalid("texts", "send `rows` or `texts`, not both")
    options = _options(body, ZeroShotOptions)
    if "texts" in body:
        texts = _take(body, "texts", (list,))
        if not texts:
            raise RequestError(400, "`texts` is empty: send at least one", "empty", "texts")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise invalid(f"texts[{index}]", f"must be a string, got {kind_of(text)}")
        rows = [{options.text_field: text} for text in texts]
    else:
        rows = _rows(body, "rows", limits)
    field = options.labels_field
    per_row = [len(row[field]) for row in rows if isinstance(row.get(field), list)]
    every = len(options.candidates() or ())
    check_batch(sum(per_row) + every * (len(rows) - len(per_row)), limits, "rows")
    return TaskRequest(rows, options, _shaping(body))


def check_request(body: Mapping, limits: Limits) -> TaskRequest[CheckOptions]:
    options = _options(body, CheckOptions)
    if "rows" not in body and ({"source", "text", "claims"} & set(body)):
        # One row: a source (a string, or a list of passages), and a text or its claims.
        row = {options.source_field: _take(body, "source", (str, list))}
        if body.get("claims") is not None:
            claims_field = options.claims_field or "given_claims"  # `claims` is the result's
            options = replace(options, claims_field=claims_field)
            row[claims_field] = _take(body, "claims", (list,))
        else:
            row[options.text_field] = _take(body, "text", (str,))
        rows = [row]
    else:
        rows = _rows(body, "rows", limits)
    return TaskRequest(rows, options, _shaping(body))


@dataclass(frozen=True)
class ZeroShotTask:
    """POST / as the Inference API's zero-shot-classification task takes it: one text (or a
    list of them) and its `parameters`; answered as that task answers, labels with scores,
    highest first."""

    request: TaskRequest[ZeroShotOptions]
    single: bool


# The Inference API's zero-shot parameters, and the classify option each one is.
ZERO_SHOT_PARAMETERS = {
    "candidate_labels": "labels",
    "multi_label": "multi_label",
    "hypothesis_template": "template",
}


def root_request(body: Mapping, limits: Limits) -> ZeroShotTask | TeiPredict:
    """POST /, told apart by its payload: `parameters` with `candidate_labels` is the
    Inference API's zero-shot task (what huggingface_hub's InferenceClient sends to an
    endpoint's root); `inputs` that are a pair or pairs are TEI's /predict."""
    parameters = _take(body, "parameters", (dict,), {})
    if "candidate_labels" not in parameters:
        if parameters:
            raise invalid(
                "parameters.candidate_labels",
                "is required for zero-shot classification (or send TEI's /predict payload: "
                "`inputs`, a [premise, hypothesis] pair or a list of them)",
            )
        return tei_predict(body, limits)
    for name in body:
        if name not in ("inputs", "parameters"):
            raise invalid(name, "is not part of the zero-shot payload (`inputs`, `parameters`)")
    options: dict[str, Any] = {}
    for name, value in parameters.items():
        if name not in ZERO_SHOT_PARAMETERS:
            known = ", ".join(ZERO_SHOT_PARAMETERS)
            raise invalid(f"parameters.{name}", f"is not a zero-shot parameter ({known})")
        if value is not None:
            options[ZERO_SHOT_PARAMETERS[name]] = value
    inputs = _take(body, "inputs", (str, list))
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not texts:
        raise RequestError(400, "`inputs` is empty: send a text", "empty", "inputs")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise invalid(f"inputs[{index}]", f"must be a string, got {kind_of(text)}")
    try:
        decoded = classify_request({"texts": texts, **options, "rows_back": False}, limits)
    except RequestError as err:
        wire = {v: k for k, v in ZERO_SHOT_PARAMETERS.items()}
        if err.field in wire:  # named as the payload names it
            raise RequestError(
                err.status,
                err.message.replace(f"`{err.field}`", f"`parameters.{wire[err.field]}`"),
                err.error_type,
                f"parameters.{wire[err.field]}",
            ) from None
        if err.field == "texts":
            raise RequestError(err.status, err.message, err.error_type, "inputs") from None
        raise
    return ZeroShotTask(decoded, isinstance(inputs, str))


# Each task's decoder, by the route (and the MCP tool) that takes it.
DECODERS: dict[str, Callable[[Mapping, Limits], TaskRequest]] = {
    PairOptions.task: score_request,
    ZeroShotOptions.task: classify_request,
    CheckOptions.task: check_request,
}
