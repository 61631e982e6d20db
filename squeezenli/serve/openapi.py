"""The server's OpenAPI document (GET /openapi.json): the request bodies the decoders in
serve/requests.py take (each task's options read from its options class) and the answers
the Service gives."""

from __future__ import annotations

from squeezenli.tasks.options import CheckOptions, PairOptions, TaskOptions, ZeroShotOptions, params

PAIR = {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}
ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "error_type": {"type": "string"},
        "field": {"type": "string"},
    },
    "required": ["error", "error_type"],
}
ROW_RESULT = {
    "type": "object",
    "description": "The input row with the result's fields (`row`), those fields alone "
    "(`result`, with rows_back false), or why the row has none (`error`: message, field, index)",
    "properties": {
        "row": {"type": "object"},
        "result": {"type": "object"},
        "error": {"type": "object"},
    },
}
SHAPING = {
    "prefix": {"type": "string", "description": "before the result's field names"},
    "output_fields": {
        "description": "rename the result's fields: {old: new} or 'old=new,...'",
        "oneOf": [{"type": "object"}, {"type": "string"}],
    },
    "rows_back": {"type": "boolean", "default": True},
}
ROWS = {"type": "array", "items": {"type": "object"}}
STATUSES = {
    "400": "an empty input list",
    "401": "missing or wrong bearer token",
    "413": "over a limit: body size, batch size; /predict: a pair too long without truncate",
    "422": "a field of the wrong type or value (named in `field`), or JSON that is not",
    "424": "the model failed",
    "429": "too many requests in flight",
    "503": "the request took longer than the timeout",
}


def _post(summary: str, properties: dict, required: list[str], answer: dict) -> dict:
    responses: dict = {"200": {"description": "OK", "content": _json(answer)}}
    for status, why in STATUSES.items():
        responses[status] = {"description": why, "content": _json(ERROR)}
    body = {"type": "object", "properties": properties, "required": required}
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": _json(body)},
            "responses": responses,
        }
    }


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _get(summary: str) -> dict:
    return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}


def _options(options: type[TaskOptions]) -> dict:
    """A task's options as request properties (tasks/options.py), and the shaping ones."""
    return {param.wire: param.json_schema() for param in params(options)} | SHAPING


RESULTS = {"type": "object", "properties": {"results": {"type": "array", "items": ROW_RESULT}}}


TEXT_WITH_ID = {
    "type": "object",
    "properties": {"id": {"type": ["string", "integer"]}, "text": {"type": "string"}},
    "required": ["text"],
}
PASSAGE = {"oneOf": [{"type": "string"}, TEXT_WITH_ID]}


def document() -> dict:
    from squeezenli import __version__

    ranked = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "squeezenli", "version": __version__},
        "paths": {
            "/": _post(
                "The Inference API's payloads, told apart by their shape: zero-shot "
                "classification (`inputs`, a text or texts, and `parameters` with "
                "`candidate_labels`, `multi_label`, `hypothesis_template`: what "
                "huggingface_hub's InferenceClient sends), answered as that task answers, "
                "labels with scores highest first; or TEI's /predict payload (pairs)",
                {
                    "inputs": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                            PAIR,
                            {"type": "array", "items": PAIR},
                        ]
                    },
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "candidate_labels": {
                                "oneOf": [
                                    {"type": "array", "items": {"type": "string"}},
                                    {"type": "string"},
                                ]
                            },
                            "multi_label": {"type": "boolean", "default": False},
                            "hypothesis_template": {"type": "string"},
                        },
                        "required": ["candidate_labels"],
                    },
                    "raw_scores": {"type": "boolean", "default": False},
                    "truncate": {"type": "boolean", "default": False},
                },
                ["inputs"],
                {"oneOf": [ranked, {"type": "array", "items": ranked}]},
            ),
            "/predict": _post(
                "Pairs as text-embeddings-inference takes them",
                {
                    "inputs": {"oneOf": [PAIR, {"type": "array", "items": PAIR}]},
                    "raw_scores": {"type": "boolean", "default": False},
                    "truncate": {"type": "boolean", "default": False},
                },
                ["inputs"],
                {"oneOf": [ranked, {"type": "array", "items": ranked}]},
            ),
            "/score": _post(
                "Rows as `squeezenli batch` reads them, answered with the fields it adds",
                {"rows": ROWS, "pairs": {"type": "array", "items": PAIR}, **_options(PairOptions)},
                [],
                RESULTS,
            ),
            "/classify": _post(
                "Zero-shot classification, every option of `squeezenli classify`",
                {
                    "texts": {"type": "array", "items": {"type": "string"}},
                    "rows": ROWS,
                    **_options(ZeroShotOptions),
                },
                [],
                RESULTS,
            ),
            "/check": _post(
                "Texts checked against their sources, as `squeezenli check`",
                {
                    "rows": ROWS,
                    "source": {
                        "description": "One row's source: a document, or a list of passages",
                        "oneOf": [{"type": "string"}, {"type": "array", "items": PASSAGE}],
                    },
                    "text": {"type": "string"},
                    "claims": {
                        "description": "One row's claims, checked as given instead of a text",
                        "type": "array",
                        "items": {"oneOf": [{"type": "string"}, TEXT_WITH_ID]},
                    },
                    **_options(CheckOptions),
                },
                [],
                RESULTS,
            ),
            "/health": _get("200 while the server serves"),
            "/info": _get("The model, its revision, precision, labels and the limits"),
            "/metrics": _get("Prometheus text"),
            "/mcp": {
                "post": {
                    "summary": "MCP, streamable HTTP (tools: score_pairs, "
                    "classify_text, check_claims)",
                    "responses": {},
                }
            },
        },
    }
