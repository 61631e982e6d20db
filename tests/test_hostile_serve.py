"""`squeezenli serve` against hostile clients, and the `--server` clients against lying servers:
no 5xx or traceback for anything a client sends, no slot held by a client that left, a forced
stop that says so, one rule for the bearer token, and clients that trust no answer."""

from __future__ import annotations

import json
import signal
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import run_cli
from serving import Server

httpx = pytest.importorskip("httpx2")
pytest.importorskip("mcp")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

HEAVY = [
    [f"A man number {i} plays a guitar on the big stage tonight.", "Music."] for i in range(20000)
]
ROOMY = ("--max-batch", "100000", "--max-body-bytes", "100000000")


@pytest.fixture(scope="module")
def app(tiny_nli_model):
    """The app in this process (ASGI), with the bearer token s3cret."""
    from squeezenli.runtime.model import load_model
    from squeezenli.serve.app import build_app
    from squeezenli.serve.service import Service

    return build_app(Service(load_model(str(tiny_nli_model), precision="fp32")), api_key="s3cret")


KEY = {"authorization": "Bearer s3cret"}


def _post(app, path: str, content: bytes, headers=None) -> httpx.Response:
    import anyio

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(
                path, content=content, headers=headers or [*KEY.items()], timeout=60
            )

    return anyio.run(post)


def test_integers_of_any_size_and_deep_rows_come_back_as_batch_writes_them(app, tiny_nli_model):
    deep: object = "leaf"
    for _ in range(300):  # past orjson's writing depth (254): it was a 500
        deep = [deep]
    row = {"id": 2**70 + 1, "premise": "A man plays.", "hypothesis": "Music.", "deep": deep}
    line = json.dumps(row)
    answer = _post(app, "/score", f'{{"rows": [{line}]}}'.encode())
    assert answer.status_code == 200, answer.text
    assert '"id":1180591620717411303425,' in answer.text  # not 1.1805916207174113e+21
    local = run_cli(["batch", "-m", str(tiny_nli_model), "--precision", "fp32"], line + "\n")
    assert local.returncode == 0, local.stderr
    assert json.loads(answer.text)["results"][0]["row"] == json.loads(local.stdout)


def _wrong_values(kind: type) -> list:
    if kind in (int, float):
        return ["1", True, [1]]
    if kind is bool:
        return ["yes", 1]
    return [7, {"a": 1} if kind is not dict else ["a"]]


def test_every_options_type_error_says_what_it_wants_once(app):
    """Each option of each route refuses a value of the wrong type with one 422 naming the
    field and the type it wants (it once said "must be a number or a number")."""
    import re

    from squeezenli.tasks.options import CheckOptions, PairOptions, ZeroShotOptions, params

    bodies = {
        PairOptions: ("/score", {"pairs": [["A man plays.", "Music."]]}),
        ZeroShotOptions: ("/classify", {"texts": ["A match."], "labels": ["sports"]}),
        CheckOptions: ("/check", {"source": "A man plays.", "text": "A man plays."}),
    }
    checked = 0
    for options, (path, body) in bodies.items():
        for param in params(options):
            if param.spec.names_field or issubclass(param.kind, (str,)):
                continue
            for value in _wrong_values(param.kind):
                answer = _post(app, path, json.dumps({**body, param.wire: value}).encode())
                found = answer.json()
                assert answer.status_code == 422, (param.wire, value, answer.text)
                assert found["field"] == param.wire, found
                wanted = re.search(r"must be (.+?), got", found["error"])
                if wanted:  # an Enum's refusal lists its choices instead
                    alternatives = wanted[1].split(" or ")
                    assert len(set(alternatives)) == len(alternatives), found["error"]
                checked += 1
    assert checked > 20


def test_mcp_options_are_checked_as_http_checks_them(tiny_nli_model):
    """`true` is no threshold over MCP either, refused with HTTP's message (pydantic took it
    for 1.0)."""
    import anyio
    from mcp.server.mcpserver.exceptions import ToolError

    from squeezenli.runtime.model import load_model
    from squeezenli.serve.jobs import Jobs
    from squeezenli.serve.limits import Limits
    from squeezenli.serve.mcp import mcp_server
    from squeezenli.serve.service import Service

    server = mcp_server(Service(load_model(str(tiny_nli_model), precision="fp32")), Jobs(Limits()))
    pair = {"premise": "A man plays.", "hypothesis": "Music."}

    async def call(arguments: dict) -> str:
        try:
            await server.call_tool("score_pairs", {"pairs": [pair], **arguments})
        except ToolError as err:
            return str(err)
        return "answered"

    assert anyio.run(call, {"threshold": True}).endswith(
        ": `threshold` must be a number, got a boolean"
    )
    assert anyio.run(call, {"threshold": 0.5}) == "answered"


def _raw(port: int, body: bytes, sent: int) -> socket.socket:
    """A raw client that sends a /score request's headers and `sent` bytes of its body."""
    client = socket.create_connection(("127.0.0.1", port))
    head = f"POST /score HTTP/1.1\r\nhost: test\r\ncontent-length: {len(body)}\r\n\r\n"
    client.sendall(head.encode() + body[:sent])
    return client


def _reset(client: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a client that dies does."""
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def _until(check, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def test_clients_that_reset_mid_body_or_mid_work_free_their_slot(tiny_nli_model):
    """With one slot, a heavy request whose client resets is cancelled: the honest request
    after it is answered long before the heavy work could have ended (fewer of its pairs
    were scored than it holds), and stderr holds one access line per request, no trace."""
    running = Server(tiny_nli_model, "--max-concurrent", "1", *ROOMY)
    try:
        body = json.dumps({"pairs": HEAVY}).encode()
        _reset(_raw(running.port, body, 1000))  # mid-body
        _until(lambda: any('" 499 ' in line for line in running.lines), "the mid-body 499")
        client = _raw(running.port, body, len(body))  # mid-work
        _until(lambda: running.metric("squeezenli_pairs_total") > 0, "the heavy work started")
        _reset(client)
        while (answer := running.post("/score", {"pairs": [HEAVY[0]]})).status_code == 429:
            time.sleep(0.01)
        assert answer.status_code == 200, answer.text
        assert running.metric("squeezenli_pairs_total") < len(HEAVY)
        assert running.metric("squeezenli_queue_depth") == 0
    finally:
        assert running.stop() == 0
    said = "".join(running.lines)
    assert "Traceback" not in said and "Exception" not in said, said
    assert sum('"POST /score" 499' in line for line in running.lines) == 2, said


@pytest.mark.parametrize("sent, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_forces_the_stop_and_answers_503(tiny_nli_model, sent, code):
    running = Server(tiny_nli_model, *ROOMY)
    answers: list = []

    def client(number: int) -> None:
        try:
            answer = running.post("/score", {"pairs": HEAVY})
            answers.append((answer.status_code, answer.json().get("error_type")))
        except httpx.TransportError as err:  # closed: allowed for what a forced stop abandons
            answers.append(type(err).__name__)

    with ThreadPoolExecutor(3) as pool:
        for number in range(3):
            pool.submit(client, number)
        _until(lambda: running.metric("squeezenli_queue_depth") == 3, "three in flight")
        running.process.send_signal(sent)
        time.sleep(0.2)
        running.process.send_signal(sent)
        assert running.wait() == code
    said = "".join(running.lines)
    assert answers.count((503, "unavailable")) == 3, (answers, said)
    assert "Traceback" not in said and "Exception" not in said, said
    assert f"forced to stop by a second {sent.name}" in said


def test_one_authorization_header_decides(app):
    body = json.dumps({"pairs": [["A man plays.", "Music."]]}).encode()
    right, wrong = ("authorization", "Bearer s3cret"), ("authorization", "Bearer nope")
    assert _post(app, "/score", body, [right]).status_code == 200
    assert _post(app, "/score", body, [wrong]).status_code == 401
    for headers in ([wrong, right], [right, wrong], [right, right]):
        refused = _post(app, "/score", body, headers)
        assert refused.status_code == 400, headers
        assert "more than one Authorization header" in refused.json()["error"]


@pytest.mark.parametrize("key", ["", " ", "\t", "s3cret ", " s3cret", "clé", "ключ", "a\nb"])
def test_keys_http_cannot_carry_are_refused_at_start(tiny_nli_model, key):
    done = run_cli(["serve", "-m", str(tiny_nli_model), "--port", "0", "--api-key", key])
    assert done.returncode == 2, done.stderr
    assert "--api-key" in done.stderr and "Traceback" not in done.stderr


def test_an_mcp_call_past_the_timeout_stops_its_work(tiny_nli_model):
    """The timed-out call's work is cancelled, not left to run: its slot is free and fewer of
    its pairs were scored than it holds."""
    import anyio
    from mcp.server.mcpserver.exceptions import ToolError

    from squeezenli.runtime.model import load_model
    from squeezenli.serve.jobs import Jobs
    from squeezenli.serve.limits import Limits
    from squeezenli.serve.mcp import mcp_server
    from squeezenli.serve.service import Service

    nli = load_model(str(tiny_nli_model), precision="fp32")
    scored = []
    nli.batcher.observers.append(lambda pairs, seconds: scored.append(pairs))
    jobs = Jobs(Limits(max_batch=len(HEAVY), timeout_s=0.3))
    server = mcp_server(Service(nli), jobs)
    pairs = [{"premise": p, "hypothesis": h} for p, h in HEAVY]

    async def call() -> str:
        try:
            await server.call_tool("score_pairs", {"pairs": pairs})
        except ToolError as err:
            return str(err)
        return "answered"

    assert "took over 0.3 s" in anyio.run(call)
    _until(lambda: jobs.in_flight == 0, "the slot is free")
    time.sleep(0.5)  # were it still running, more windows would be scored meanwhile
    assert sum(scored) < len(HEAVY)


def test_malformed_http_is_one_line_each_and_the_server_serves_on(tiny_nli_model):
    running = Server(tiny_nli_model)
    malformed = [
        b"GARBAGE\r\n\r\n",
        b"POST /score HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        b"GET /\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n",
    ]
    try:
        for request in malformed:
            with socket.create_connection(("127.0.0.1", running.port)) as client:
                client.settimeout(30)
                client.sendall(request)
                assert client.recv(100).startswith(b"HTTP/1.1 400 ")
        assert running.post("/score", {"pairs": [HEAVY[0]]}).status_code == 200
    finally:
        assert running.stop() == 0
    said = "".join(running.lines)
    assert said.count("squeezenli: uvicorn: Invalid HTTP request received.") == len(malformed)
    assert "Traceback" not in said and "WARNING" not in said, said
