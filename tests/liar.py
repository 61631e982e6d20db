"""A server on 127.0.0.1 that answers squeezenli's clients as told: the documented answers,
or wrong shapes, counts, statuses, redirects, truncated or huge bodies, or silence."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAIR_RESULT = {
    "prediction": "entailment",
    "scores": {"entailment": 0.5, "neutral": 0.25, "contradiction": 0.25},
    "truncated": False,
}
INFO = {
    "model_id": "acme/liar",
    "model_revision": "main",
    "precision": "fp32",
    "labels": ["entailment", "neutral", "contradiction"],
    "label_source": "config",
    "label_source_detail": "config.json id2label",
}


def honest(path: str, body: dict | None) -> dict:
    """What a squeezenli server answers /score and /info with (the same result each row)."""
    if path == "/info":
        return INFO
    return {"results": [{"result": PAIR_RESULT} for _ in body["rows"]]}


# An answer: (status, headers, body bytes), or a callable that writes to the handler itself.
Answer = tuple[int, dict[str, str], bytes] | Callable[[BaseHTTPRequestHandler], None]


def json_answer(value, status: int = 200) -> Answer:
    return status, {"content-type": "application/json"}, json.dumps(value).encode()


class Liar:
    """`plan(number, path, body)` gives the answer to the server's number-th request (from 0).
    Start it with `with Liar(plan) as liar:`; liar.url is its address."""

    def __init__(self, plan: Callable[[int, str, dict | None], Answer]) -> None:
        self.plan = plan
        self.requests: list[tuple[str, dict | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _handler(self):
        liar = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                number = len(liar.requests)
                liar.requests.append((self.path, body))
                answer = liar.plan(number, self.path, body)
                if callable(answer):
                    answer(self)
                    return
                status, headers, data = answer
                self.send_response(status)
                for name, value in {"content-length": str(len(data)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        return Handler

    def __enter__(self) -> Liar:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def silent(handler: BaseHTTPRequestHandler) -> None:
    """Never answers (for as long as a test may wait)."""
    time.sleep(30)


def truncated(handler: BaseHTTPRequestHandler) -> None:
    """Says 1000 bytes, sends 12 and hangs up."""
    handler.send_response(200)
    handler.send_header("content-length", "1000")
    handler.end_headers()
    handler.wfile.write(b'{"results": ')
    handler.wfile.flush()
    handler.close_connection = True


def endless(handler: BaseHTTPRequestHandler) -> None:
    """A chunked answer that never ends (a 300 MB one would read the same): JSON-looking
    whitespace, 1 MiB a chunk, until the client hangs up."""
    handler.send_response(200)
    handler.send_header("transfer-encoding", "chunked")
    handler.end_headers()
    chunk = b" " * (1 << 20)
    try:
        for _ in range(1024):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass
    handler.close_connection = True
