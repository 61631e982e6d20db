"""The HTTP app behind `squeezenli serve`, on Starlette (the MCP SDK's own ASGI stack, so MCP
and HTTP share one server, one model and one batcher).

Each model endpoint runs the same steps: read the body (refused past --max-body-bytes),
decode it (serve/requests.py: a 4xx naming the field), take a slot (429 past
--max-concurrent), run the Service on a worker thread (503 past --timeout) and encode the
answer with TEI's timing headers. Every request, whatever its path, passes the guard: the
bearer token, an access-log line on stderr and the metrics.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from squeezenli.errors import SqueezenliError
from squeezenli.records.writers import dump_json
from squeezenli.serve import requests
from squeezenli.serve.jobs import Jobs
from squeezenli.serve.limits import Limits
from squeezenli.serve.metrics import Metrics
from squeezenli.serve.requests import RequestError
from squeezenli.serve.service import Service

log = logging.getLogger("squeezenli.serve")
OPEN_PATHS = ("/health",)  # answered without the bearer token (for load balancers)


class Json(JSONResponse):
    """JSON as the CLI writes it: floats printed as the shortest that reads back, integers of
    any width exactly, rows nested as deep as a request may bring them."""

    def render(self, content: Any) -> bytes:
        return dump_json(content)


@dataclass
class State:
    """What every request shares: the service, the limits, the slots in flight."""

    service: Service
    limits: Limits
    api_key: str | None = None
    metrics: Metrics = field(default_factory=Metrics)
    jobs: Jobs = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = Jobs(self.limits, self.metrics)

    @property
    def in_flight(self) -> int:
        return self.jobs.in_flight


async def _body(request: Request, limits: Limits) -> bytes:
    """The body, refused (413) past --max-body-bytes before or while it is read."""
    declared = request.headers.get("content-length")
    too_big = RequestError(
        413,
        f"the body is over {limits.max_body_bytes} bytes (squeezenli serve --max-body-bytes)",
        "validation",
    )
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _gone(request: Request) -> None:
    """Returns when the client has closed its connection (ASGI's http.disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.01)  # a stray body message: keep listening


# What the access log shows for a request whose client left before its answer (nginx's).
CLIENT_CLOSED = 499


def _model_endpoint(name: str, decode: Callable):
    """An endpoint: body, decode, then Service.<name> as a job (serve/jobs.py), encoded with
    TEI's timing headers."""

    async def endpoint(request: Request) -> Response:
        state: State = request.app.state.squeezenli
        started = time.perf_counter()
        try:
            raw = await _body(request, state.limits)
            decoded = decode(requests.parse_body(raw), state.limits)
            queued = time.perf_counter()
            answer = await state.jobs.run(
                lambda cancel: getattr(state.service, name)(decoded, cancel),
                lambda: _gone(request),
            )
        except ClientDisconnect:  # it left while its body was read: nothing to answer
            state.metrics.failures.labels(name, "cancelled").inc()
            return Response(status_code=CLIENT_CLOSED)
        except RequestError as err:
            state.metrics.failures.labels(name, err.error_type).inc()
            return Json(err.body(), status_code=err.status)
        except SqueezenliError as err:  # the model failed (TEI: a backend error)
            state.metrics.failures.labels(name, "backend").inc()
            return Json({"error": str(err), "error_type": "backend"}, status_code=424)
        done = time.perf_counter()
        if name in requests.DECODERS:  # the task routes: rows, each a result or an error
            answer = {"results": answer}
        chars = sum(len(text) for text in _texts(decoded))
        headers = {
            "x-compute-type": "cpu",
            "x-compute-characters": str(chars),
            "x-compute-time": f"{(done - queued) * 1e3:.3f}",
            "x-total-time": f"{(done - started) * 1e3:.3f}",
            "x-queue-time": f"{(queued - started) * 1e3:.3f}",
            "x-inference-time": f"{(done - queued) * 1e3:.3f}",
        }
        return Json(answer, headers=headers)

    return endpoint


def _texts(decoded) -> list[str]:
    """The texts a request brought (TEI's x-compute-characters)."""
    if isinstance(decoded, requests.ZeroShotTask):
        decoded = decoded.request
    if isinstance(decoded, requests.TeiPredict):
        return [text for pair in decoded.pairs for text in pair]
    return [value for row in decoded.rows for value in row.values() if isinstance(value, str)]


async def health(request: Request) -> Response:
    return Json({"status": "ok"})


async def info(request: Request) -> Response:
    state: State = request.app.state.squeezenli
    limits = state.limits
    return Json(
        {
            **state.service.info(),
            "max_client_batch_size": limits.max_batch,
            "max_concurrent_requests": limits.max_concurrent,
            "max_body_bytes": limits.max_body_bytes,
            "timeout_s": limits.timeout_s,
            "routes": ROUTES,
        }
    )


# What each model route takes (GET /info; /openapi.json has their schemas).
ROUTES = {
    "POST /": "the Inference API's zero-shot-classification payload (inputs, parameters."
    "candidate_labels, multi_label, hypothesis_template: huggingface_hub's InferenceClient), "
    "or TEI's /predict payload",
    "POST /predict": "TEI's payload: inputs, a [premise, hypothesis] pair or a list of them",
    "POST /score": "rows (or pairs) with batch's options",
    "POST /classify": "texts (or rows) with classify's options",
    "POST /check": "rows, or one source with a text or claims, with check's options",
    "POST /mcp": "MCP over streamable HTTP: score_pairs, classify_text, check_claims",
}


async def metrics(request: Request) -> Response:
    state: State = request.app.state.squeezenli
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


async def openapi(request: Request) -> Response:
    from squeezenli.serve.openapi import document

    return Json(document())


def routes() -> list[Route]:
    decoders = {"predict": requests.tei_predict, **requests.DECODERS}
    return [
        *(
            Route(f"/{name}", _model_endpoint(name, decode), methods=["POST"])
            for name, decode in decoders.items()
        ),
        Route("/", _model_endpoint("root", requests.root_request), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


async def _crash(request: Request, exc: Exception) -> Response:
    """A bug of ours: a JSON 500 (the traceback on stderr), and the server keeps serving."""
    import traceback

    traceback.print_exception(exc, file=sys.stderr)
    state: State = request.app.state.squeezenli
    state.metrics.failures.labels(request.url.path, "internal").inc()
    message = f"internal error ({type(exc).__name__}): please report it"
    return Json({"error": message, "error_type": "internal"}, status_code=500)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (an unknown path, a wrong method) as JSON errors."""
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "validation")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return Json({"error": message, "error_type": kind}, status_code=exc.status_code)


class Guard:
    """Around every request: the bearer token (401 without it), the metrics, and one
    access-log line on stderr."""

    def __init__(self, app, state: State, quiet: bool = False) -> None:
        self.app = app
        self.state = state
        self.quiet = quiet

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        path = scope.get("path", "")
        try:
            guarded = self.state.api_key and path not in OPEN_PATHS
            refusal = self._refusal(scope) if guarded else None
            if refusal is not None:
                await self._refuse(sending, *refusal)
            else:
                await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            # The server was forced to stop (a second signal, or --timeout past the drain):
            # what it abandons is answered 503, and the request's task ends without a trace.
            if status[0] == 500:  # nothing sent yet
                await self._refuse(sending, 503, STOPPING, "unavailable")
        finally:
            elapsed = time.perf_counter() - started
            known = path if path in KNOWN_PATHS else "other"
            self.state.metrics.requests.labels(known, str(status[0])).inc()
            self.state.metrics.latency.labels(known).observe(elapsed)
            if not self.quiet:
                client = scope.get("client") or ("-", 0)
                sys.stderr.write(
                    f'squeezenli: {client[0]}:{client[1]} "{scope.get("method")} {path}" '
                    f"{status[0]} {elapsed * 1e3:.1f} ms\n"
                )

    def _refusal(self, scope) -> tuple[int, str, str] | None:
        """Why a request is refused for its token (status, message, error_type), or None.
        Exactly one Authorization header is read: a request with two is refused rather than
        decided by their order."""
        assert self.state.api_key is not None
        given = [v for k, v in scope.get("headers") or [] if k.lower() == b"authorization"]
        if len(given) > 1:
            return 400, "more than one Authorization header: send exactly one", "validation"
        expected = f"Bearer {self.state.api_key}".encode()
        if given and hmac.compare_digest(given[0], expected):  # constant time
            return None
        self.state.metrics.failures.labels("auth", "unauthorized").inc()
        return 401, UNAUTHORIZED, "unauthorized"

    async def _refuse(self, sending, status: int, message: str, kind: str) -> None:
        body = orjson.dumps({"error": message, "error_type": kind})
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await sending({"type": "http.response.start", "status": status, "headers": headers})
        await sending({"type": "http.response.body", "body": body})


UNAUTHORIZED = (
    "missing or wrong bearer token: send Authorization: Bearer <key> "
    "(squeezenli serve --api-key / SQUEEZENLI_API_KEY)"
)
STOPPING = "the server was stopped before this request was answered: send it again"


KNOWN_PATHS = (
    "/",
    "/predict",
    "/score",
    "/classify",
    "/check",
    "/health",
    "/info",
    "/metrics",
    "/openapi.json",
    "/mcp",
)


def build_app(
    service: Service,
    limits: Limits | None = None,
    *,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    quiet: bool = False,
):
    """The ASGI app: the HTTP endpoints and the streamable-HTTP MCP endpoint at /mcp, guarded."""
    from squeezenli.serve.mcp import mcp_server

    limits = limits or Limits()
    state = State(service, limits, api_key)
    server = mcp_server(service, state.jobs)
    app = server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, host=host
    )
    app.router.routes.extend(routes())
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _crash)
    app.state.squeezenli = state

    inner_lifespan = app.router.lifespan_context

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(scope_app):
        with service.observed(state.metrics.observe_window):
            async with inner_lifespan(scope_app) as found:
                yield found

    app.router.lifespan_context = lifespan
    return Guard(app, state, quiet)
