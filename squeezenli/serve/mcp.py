"""MCP tools over the same Service as the HTTP endpoints (official MCP Python SDK): an agent
scores pairs, classifies texts, or checks its own answer against a source document.

Each tool's arguments are the task's inputs and its options, read from the task's options
class (tasks/options.py): an option added there is an argument here. A call is decoded by
serve/requests.py as a request body would be (so a tool refuses what an endpoint refuses,
with the same message) and runs as a job (serve/jobs.py), within the same slots and
timeout as HTTP's requests.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel, Field, WithJsonSchema

from squeezenli.serve.jobs import Jobs
from squeezenli.serve.requests import DECODERS, RequestError
from squeezenli.serve.service import Service
from squeezenli.tasks.options import CheckOptions, PairOptions, TaskOptions, ZeroShotOptions, params

INSTRUCTIONS = (
    "Natural language inference on a small encoder. score_pairs: does a premise entail, "
    "contradict or say nothing of a hypothesis. classify_text: zero-shot labels for texts. "
    "check_claims: each sentence of a text (your answer, a summary) judged supported, "
    "contradicted or not_supported by a source document, with the evidence span."
)


class Pair(BaseModel):
    premise: str = Field(description="The text taken as true.")
    hypothesis: str = Field(description="The statement judged against it.")


class ToolRowError(BaseModel):
    message: str
    field: str | None = None


class PairResult(BaseModel):
    prediction: str | None = Field(None, description="The most likely class.")
    scores: dict[str, float] | None = Field(None, description="Probability of each class.")
    truncated: bool | None = Field(None, description="The pair was cut to the model's length.")
    entailed: bool | None = Field(None, description="P(entailment) reached the threshold.")
    evidence: dict[str, int] | None = Field(None, description="Deciding window's span (chunk).")
    windows: int | None = None
    logits: dict[str, float] | None = Field(None, description="Each class's raw logit.")
    error: ToolRowError | None = None


class PairResults(BaseModel):
    results: list[PairResult]


class Labelled(BaseModel):
    text: str | None = None
    labels: list[str] | None = Field(None, description="Candidate labels, best first.")
    scores: list[float] | None = None
    truncated: bool | None = None
    selected: list[str] | None = Field(None, description="Labels the threshold chose.")
    error: ToolRowError | None = None


class Classified(BaseModel):
    results: list[Labelled]


class Passage(BaseModel):
    id: str | int | None = Field(None, description="What the evidence cites it by.")
    text: str


class ClaimVerdict(BaseModel):
    text: str
    id: str | int | None = Field(None, description="A given claim's id.")
    start: int | None = Field(None, description="Where the claim is in the text.")
    end: int | None = None
    verdict: str = Field(description="supported, contradicted or not_supported")
    scores: dict[str, float]
    evidence: dict[str, Any] = Field(
        description="What the claim cites: the passage (source: its id, else its index), "
        "start, end and text of the fewest sentences there that carry the verdict, scores"
    )
    window: dict[str, Any] | None = Field(
        None, description="The window of the passage the evidence was read from."
    )


class Checked(BaseModel):
    claims: list[ClaimVerdict] | None = None
    score: float | None = Field(None, description="Mean (or min) entailment of the claims.")
    supported_text: str | None = Field(None, description="The text with only supported claims.")
    windows: int | None = None
    error: ToolRowError | None = None


def _option_parameters(options: type[TaskOptions]) -> list[inspect.Parameter]:
    """A tool's parameters for a task's options (those that name no input field). Their schema
    is the option's own (what OpenAPI shows); their values are checked by the task's decoder,
    not by pydantic, so a tool refuses what an endpoint refuses, with the same message (and
    `true` is no number here either)."""
    found = []
    for param in params(options):
        if param.spec.names_field:
            continue
        default = None if param.default is None else param.to_wire(param.default)
        schema = param.json_schema()
        if param.optional or param.default is None:
            schema = {"anyOf": [_typed(schema), {"type": "null"}], **_untyped(schema)}
        annotation = Annotated[Any, WithJsonSchema(schema)]
        found.append(
            inspect.Parameter(
                param.wire, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
    return found


_SCHEMA_NOTES = ("description", "default")


def _typed(schema: dict) -> dict:
    return {k: v for k, v in schema.items() if k not in _SCHEMA_NOTES}


def _untyped(schema: dict) -> dict:
    return {k: v for k, v in schema.items() if k in _SCHEMA_NOTES}


def _tool(
    inputs: list[inspect.Parameter],
    options: type[TaskOptions],
    body_of: Callable[[dict], dict],
    answer: Callable[[list[dict]], BaseModel],
    run: Callable,
) -> Callable:
    """An async tool function whose signature (what the SDK makes the input schema of) is
    the task's inputs and options; a call is a request body for the task's decoder."""
    own = [p.name for p in inputs]

    async def tool(**arguments: Any) -> Any:
        given = {name: arguments.pop(name) for name in own}
        body = {**arguments, **body_of(given), "rows_back": False}
        return answer(await run(options.task, body))

    returns = get_type_hints(answer)["return"]  # a class, not the string this module writes
    tool.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*inputs, *_option_parameters(options)], return_annotation=returns
    )
    return tool


def _rows(found: list[dict], kind: type[BaseModel]) -> list:
    out = []
    for item in found:
        if "error" in item:
            error = item["error"]
            out.append(kind(error=ToolRowError(message=error["message"], field=error["field"])))
        else:
            row = item.get("row") or item.get("result") or {}
            out.append(kind(**{k: row[k] for k in kind.model_fields if k in row}))
    return out


def _input(name: str, annotation: Any, description: str) -> inspect.Parameter:
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[annotation, Field(description=description)],
    )


def _optional(name: str, annotation: Any, description: str) -> inspect.Parameter:
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[annotation | None, Field(description=description)],
    )


def _check_body(given: dict) -> dict:
    """check_claims' arguments as /check's one-row body."""
    source = given["source"]
    if isinstance(source, list):
        source = [p if isinstance(p, str) else p.model_dump(exclude_none=True) for p in source]
    body = {"source": source}
    if given["claims"] is not None:
        return body | {"claims": given["claims"]}
    return body | {"text": given["text"]}


def _scored(found: list[dict]) -> PairResults:
    return PairResults(results=_rows(found, PairResult))


def _classified(found: list[dict]) -> Classified:
    return Classified(results=_rows(found, Labelled))


def _checked(found: list[dict]) -> Checked:
    (one,) = _rows(found, Checked)
    return one


def mcp_server(service: Service, jobs: Jobs):
    """An MCPServer with the three tools; `jobs` are the HTTP app's when it has one, so a
    tool call takes a slot as a request does."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from squeezenli import __version__

    server: Any = MCPServer(
        "squeezenli", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    async def run(task: str, body: dict) -> list[dict]:
        try:
            decoded = DECODERS[task](body, jobs.limits)
            return await jobs.run(lambda cancel: getattr(service, task)(decoded, cancel))
        except RequestError as err:
            raise ToolError(err.message) from None

    tools = [
        (
            "score_pairs",
            "Score premise/hypothesis pairs: entailment, neutral, contradiction.",
            [_input("pairs", list[Pair], "The pairs to score.")],
            PairOptions,
            lambda given: {"pairs": [[p.premise, p.hypothesis] for p in given["pairs"]]},
            _scored,
        ),
        (
            "classify_text",
            "Zero-shot classification of texts by NLI.",
            [_input("texts", list[str], "The texts to classify.")],
            ZeroShotOptions,
            lambda given: {"texts": given["texts"]},
            _classified,
        ),
        (
            "check_claims",
            "Check each sentence of a text (or each claim given) against a source document "
            "or a list of passages: supported, contradicted or not_supported, citing the "
            "sentences of the passage that decide it.",
            [
                _input(
                    "source",
                    str | list[str | Passage],
                    "The source document, or its passages (strings, or objects with id and text).",
                ),
                _optional("text", str, "The text whose sentences are checked."),
                _optional("claims", list[str], "Claims to check as given, instead of a text."),
            ],
            CheckOptions,
            _check_body,
            _checked,
        ),
    ]
    for name, description, inputs, options, body_of, answer in tools:
        server.tool(name=name, description=description)(
            _tool(inputs, options, body_of, answer, run)
        )
    return server
