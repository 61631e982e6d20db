"""MCP tools over the same Service as the HTTP endpoints (official MCP Python SDK): an agent
scores pairs, classifies texts, or checks its own answer against a source document. Each
tool's arguments are decoded by serve/requests.py as a request body would be, so a tool
refuses what an endpoint refuses, with the same message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, Field

from squeezenli.serve import requests
from squeezenli.serve.requests import Limits, RequestError
from squeezenli.serve.service import Service

if TYPE_CHECKING:
    from squeezenli.serve.app import State

INSTRUCTIONS = (
    "Natural language inference on a small encoder. score_pairs: does a premise entail, "
    "contradict or say nothing of a hypothesis. classify_text: zero-shot labels for texts. "
    "check_claims: each sentence of a text (your answer, a summary) judged supported, "
    "contradicted or not_supported by a source document, with the evidence span."
)


class Pair(BaseModel):
    premise: str = Field(description="The text taken as true.")
    hypothesis: str = Field(description="The statement judged against it.")


class RowError(BaseModel):
    message: str
    field: str | None = None


class PairResult(BaseModel):
    prediction: str | None = Field(None, description="The most likely class.")
    scores: dict[str, float] | None = Field(None, description="Probability of each class.")
    truncated: bool | None = Field(None, description="The pair was cut to the model's length.")
    entailed: bool | None = Field(None, description="P(entailment) reached the threshold.")
    evidence: dict[str, int] | None = Field(None, description="Deciding window's span (chunk).")
    windows: int | None = None
    error: RowError | None = None


class Scored(BaseModel):
    results: list[PairResult]


class Labelled(BaseModel):
    text: str | None = None
    labels: list[str] | None = Field(None, description="Candidate labels, best first.")
    scores: list[float] | None = None
    truncated: bool | None = None
    selected: list[str] | None = Field(None, description="Labels the threshold chose.")
    error: RowError | None = None


class Classified(BaseModel):
    results: list[Labelled]


class ClaimVerdict(BaseModel):
    text: str
    start: int
    end: int
    verdict: str = Field(description="supported, contradicted or not_supported")
    scores: dict[str, float]
    evidence: dict[str, Any] = Field(description="The source window that decided: start, end, text")


class Checked(BaseModel):
    claims: list[ClaimVerdict] | None = None
    score: float | None = Field(None, description="Mean (or min) entailment of the claims.")
    supported_text: str | None = Field(None, description="The text with only supported claims.")
    windows: int | None = None
    error: RowError | None = None


def mcp_server(service: Service, limits: Limits, state: State | None = None):
    """An MCPServer with the three tools; `state` (the HTTP app's) shares its slots."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from squeezenli import __version__

    server: Any = MCPServer(
        "squeezenli", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    async def run(decode, body: dict, method) -> list[dict]:
        import threading

        try:
            decoded = decode(body, limits)
            if state is not None:
                state.take_slot()
            try:
                cancel = threading.Event()
                with anyio.fail_after(limits.timeout_s):
                    return await anyio.to_thread.run_sync(method, decoded, cancel)
            finally:
                if state is not None:
                    state.free_slot()
        except RequestError as err:
            raise ToolError(err.message) from None
        except TimeoutError:
            raise ToolError(f"the call took over {limits.timeout_s:g} s") from None

    def rows(found: list[dict], kind, names: tuple[str, ...]) -> list:
        out = []
        for item in found:
            if "error" in item:
                error = item["error"]
                out.append(kind(error=RowError(message=error["message"], field=error["field"])))
            else:
                row = item.get("row") or item.get("result") or {}
                out.append(kind(**{k: row[k] for k in names if k in row}))
        return out

    @server.tool(
        name="score_pairs",
        description="Score premise/hypothesis pairs: entailment, neutral, contradiction.",
    )
    async def score_pairs(
        pairs: list[Pair],
        long_input: str = "truncate",
        threshold: float | None = None,
    ) -> Scored:
        body = {
            "pairs": [[p.premise, p.hypothesis] for p in pairs],
            "long_input": long_input,
            "threshold": threshold,
            "rows_back": False,
        }
        found = await run(requests.score_request, body, service.score)
        names = tuple(PairResult.model_fields)
        return Scored(results=rows(found, PairResult, names))

    @server.tool(name="classify_text", description="Zero-shot classification of texts by NLI.")
    async def classify_text(
        texts: list[str],
        labels: list[str] | None = None,
        hypotheses: dict[str, str] | None = None,
        template: str | None = None,
        multi_label: bool = False,
        threshold: float | None = None,
        top_k: int | None = None,
        none_label: str | None = None,
    ) -> Classified:
        body = {
            "texts": texts,
            "labels": labels,
            "hypotheses": hypotheses,
            "template": template,
            "multi_label": multi_label,
            "threshold": threshold,
            "top_k": top_k,
            "none_label": none_label,
        }
        found = await run(requests.classify_request, body, service.classify)
        return Classified(results=rows(found, Labelled, tuple(Labelled.model_fields)))

    @server.tool(
        name="check_claims",
        description="Check each sentence of a text against a source document: supported, "
        "contradicted or not_supported, with the evidence window.",
    )
    async def check_claims(
        source: str,
        text: str,
        support: float = 0.5,
        contradict: float = 0.5,
    ) -> Checked:
        body = {
            "rows": [{"source": source, "text": text}],
            "support": support,
            "contradict": contradict,
            "rows_back": False,
        }
        (found,) = rows(
            await run(requests.check_request, body, service.check),
            Checked,
            tuple(Checked.model_fields),
        )
        return found

    return server
