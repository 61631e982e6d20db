"""`squeezenli serve` (HTTP and MCP over streamable HTTP) and `squeezenli mcp` (MCP over
stdio): one loaded model behind many clients, their pairs batched together."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from squeezenli.cli.options import ModelOptions, limits_options, model_options
from squeezenli.errors import InputError
from squeezenli.serve.limits import Limits

if TYPE_CHECKING:
    import uvicorn

SERVE_HINT = "pip install 'squeezenli[serve]'"
API_KEY_ENV = "SQUEEZENLI_API_KEY"


def _needs_serve() -> None:
    try:
        import mcp  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise InputError(f"serving needs {err.name}: {SERVE_HINT}") from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@model_options()
@limits_options()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind: loopback unless told otherwise.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")
    ] = 8080,
    api_key: Annotated[
        Optional[str],
        typer.Option(
            "--api-key",
            envvar=API_KEY_ENV,
            help="Require Authorization: Bearer KEY (required when bound beyond loopback).",
        ),
    ] = None,
    *,
    opts: ModelOptions,
    limits: Limits,
) -> None:
    """Serve pairs (TEI's POST /predict, and /score), zero-shot (/classify) and claim checks
    (/check) over HTTP, and the same as MCP tools at /mcp; GET /health, /info, /metrics,
    /openapi.json. Requests from every client are scored in shared windows. SIGTERM stops
    accepting, answers what was accepted and exits 0; a second SIGINT or SIGTERM stops at
    once, answers what was in flight 503 and exits 130 (143).

    Example: squeezenli serve --port 8080
    """
    _needs_serve()
    import uvicorn

    from squeezenli.serve.app import build_app
    from squeezenli.serve.requests import check_api_key
    from squeezenli.serve.service import Service

    if api_key is not None:
        check_api_key(api_key, "--api-key")
    if not _loopback(host) and not api_key:
        raise InputError(
            f"--host {host} is reachable beyond this machine: give --api-key (or "
            f"{API_KEY_ENV}) so that only clients with the key are served"
        )
    listener = _bind(host, port)
    nli = opts.load()
    app = build_app(Service(nli), limits, api_key=api_key, host=host, quiet=opts.quiet)
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=UVICORN_LOGGING,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(limits.timeout_s) + 5,
    )
    server = _server(config)
    bound = listener.getsockname()
    typer.echo(
        f"squeezenli: serving {nli.files.source} ({nli.precision}) on "
        f"http://{_url_host(bound[0])}:{bound[1]} (MCP at /mcp); SIGTERM or Ctrl-C stops",
        err=True,
    )
    stopped = _after_uvicorn()
    server.run(sockets=[listener])
    if not server.started:
        raise InputError(f"could not serve on {host}:{port}")
    if server.forced is not None:
        forced = signal.Signals(server.forced)
        typer.echo(
            f"squeezenli: forced to stop by a second {forced.name}: requests in flight "
            "were answered 503",
            err=True,
        )
        raise typer.Exit(128 + forced.value)
    if not opts.quiet:
        why = f" ({stopped[0]})" if stopped else ""
        typer.echo(f"squeezenli: stopped serving{why}", err=True)


def _server(config: uvicorn.Config) -> Any:
    """uvicorn's server, except that any second SIGINT or SIGTERM forces the stop (uvicorn
    forces only on SIGINT) and that the app's lifespan still ends then, without a trace."""
    import uvicorn

    class Server(uvicorn.Server):
        forced: int | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit:  # the second signal: stop draining
                self.forced = sig
                self.force_exit = True
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            if self.force_exit:  # uvicorn skips it then, and the lifespan task dies loudly
                await self.lifespan.shutdown()

    return Server(config)


# uvicorn's own lines (a malformed request: "Invalid HTTP request received.") in squeezenli's
# manner, one line each; the access log is the app's (serve/app.py's Guard).
UVICORN_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "squeezenli: uvicorn: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
}


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is one clear line (and port 0
    names the port it got). Its protocol is named: asyncio sets TCP_NODELAY only on
    connections whose socket says IPPROTO_TCP, and without it every answer's body waited
    for the client's delayed ACK of its headers (~40 ms a request on Linux)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as err:
        listener.close()
        raise InputError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def _after_uvicorn() -> list[str]:
    """uvicorn handles SIGINT/SIGTERM while it serves (it drains, then returns) and raises
    the signal again once done: the handlers it finds (ours) only note that it came, so a
    drained stop exits 0. Returns the list the signal's name is put in."""
    seen: list[str] = []

    def note(signum, frame) -> None:
        seen.append(signal.Signals(signum).name)

    for name in ("SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), note)
    return seen


@model_options()
@limits_options(body=False)
def mcp(*, opts: ModelOptions, limits: Limits) -> None:
    """Serve the MCP tools (score_pairs, classify_text, check_claims) over stdio, for an
    agent that starts squeezenli itself; stdout carries the protocol, stderr the rest.

    Example: claude mcp add squeezenli -- squeezenli mcp
    """
    _needs_serve()
    from squeezenli.serve.jobs import Jobs
    from squeezenli.serve.mcp import mcp_server
    from squeezenli.serve.service import Service

    nli = opts.load()
    server = mcp_server(Service(nli), Jobs(limits))
    if not opts.quiet:
        print(f"squeezenli: MCP on stdio, {nli.files.source} ({nli.precision})", file=sys.stderr)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    server.run("stdio")
