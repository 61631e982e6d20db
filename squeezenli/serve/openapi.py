"""The server's OpenAPI document (GET /openapi.json), written out: the request bodies the
decoders in serve/requests.py take and the answers the Service gives."""

from __future__ import annotations

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


RESULTS = {"type": "object", "properties": {"results": {"type": "array", "items": ROW_RESULT}}}


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
                {
                    "rows": ROWS,
                    "pairs": {"type": "array", "items": PAIR},
                    "premise_field": {"type": "string"},
                    "hypothesis_field": {"type": "string"},
                    "long_input": {"enum": ["truncate", "fail", "chunk"]},
                    "aggregate": {"enum": ["entailment", "margin", "contradiction"]},
                    "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                    "logits": {"type": "boolean"},
                    **SHAPING,
                },
                [],
                RESULTS,
            ),
            "/classify": _post(
                "Zero-shot classification, every option of `squeezenli classify`",
                {
                    "texts": {"type": "array", "items": {"type": "string"}},
                    "rows": ROWS,
                    "labels": {"type": "array", "items": {"type": "string"}},
                    "hypotheses": {"type": "object", "additionalProperties": {"type": "string"}},
                    "template": {"type": "string"},
                    "multi_label": {"type": "boolean"},
                    "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                    "top_k": {"type": "integer", "minimum": 1},
                    "none_label": {"type": "string"},
                    "labels_field": {"type": "string"},
                    "text_field": {"type": "string"},
                    **SHAPING,
                },
                [],
                RESULTS,
            ),
            "/check": _post(
                "Texts checked against their sources, as `squeezenli check`",
                {
                    "rows": ROWS,
                    "source": {"type": "string"},
                    "text": {"type": "string"},
                    "source_field": {"type": "string"},
                    "text_field": {"type": "string"},
                    "support": {"type": "number", "minimum": 0, "maximum": 1},
                    "contradict": {"type": "number", "minimum": 0, "maximum": 1},
                    "score": {"enum": ["mean", "min"]},
                    "aggregate": {"enum": ["entailment", "margin", "contradiction"]},
                    **SHAPING,
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
