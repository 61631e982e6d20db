"""`squeezenli serve` and `squeezenli mcp`: the real server on 127.0.0.1 with the tiny model,
driven by real HTTP and MCP clients. Answers equal `batch`'s, `classify`'s and `check`'s bit
for bit, whatever else is in flight; bad requests get their 4xx; limits, the bearer token
and SIGTERM's drain hold. Runs when the serve extra is installed (pip install -e '.[serve]')."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import run_cli, run_env
from serving import Server

httpx = pytest.importorskip("httpx2")
pytest.importorskip("mcp")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

PAIRS = [
    ["A man plays a guitar on stage.", "A person is making music."],
    ["The dog runs in the park.", "A cat sleeps on the sofa."],
    ["Some people were eating food.", "Nobody ate anything."],
    ["The team won the match.", "The team lost."],
    ["A child reads a book in the library.", "A child reads."],
    ["It rained all day.", "The street was dry."],
]
LABELS = ["sports", "politics", "music"]
TEXTS = ["The match went to extra time.", "Parliament passed the bill.", "The band played."]


@pytest.fixture(scope="module")
def server(tiny_nli_model):
    running = Server(tiny_nli_model)
    yield running
    assert running.stop() == 0


def _batch_rows(model, rows: list[dict], *args: str) -> list[dict]:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    done = run_cli(["batch", "-m", str(model), "--precision", "fp32", *args], text)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _rows(pairs) -> list[dict]:
    return [{"id": i, "premise": p, "hypothesis": h} for i, (p, h) in enumerate(pairs)]


def test_tei_predict_equals_batch(server, tiny_nli_model):
    expected = _batch_rows(tiny_nli_model, _rows(PAIRS), "--logits")
    single = server.post("/predict", {"inputs": PAIRS[0]})
    assert single.status_code == 200, single.text
    assert {"x-compute-time", "x-total-time", "x-queue-time"} <= set(single.headers)
    ranked = single.json()
    assert [p["score"] for p in ranked] == sorted((p["score"] for p in ranked), reverse=True)
    assert {p["label"]: p["score"] for p in ranked} == expected[0]["scores"]
    many = server.post("/predict", {"inputs": PAIRS, "raw_scores": True})
    assert many.status_code == 200, many.text
    for answer, row in zip(many.json(), expected):
        assert {p["label"]: p["score"] for p in answer} == row["logits"]


def test_score_classify_and_check_equal_the_commands(server, tiny_nli_model):
    rows = _rows(PAIRS)
    scored = server.post("/score", {"rows": rows, "threshold": 0.4})
    assert scored.status_code == 200, scored.text
    expected = _batch_rows(tiny_nli_model, rows, "--threshold", "0.4")
    assert [r["row"] for r in scored.json()["results"]] == expected

    classified = server.post("/classify", {"texts": TEXTS, "labels": LABELS, "top_k": 2})
    assert classified.status_code == 200, classified.text
    text = "".join(json.dumps({"text": t}) + "\n" for t in TEXTS)
    args = ["classify", "-m", str(tiny_nli_model), "--precision", "fp32", "-l", ",".join(LABELS)]
    local = run_cli([*args, "--top-k", "2"], text)
    assert local.returncode == 0, local.stderr
    local_rows = [json.loads(line) for line in local.stdout.splitlines()]
    assert [r["row"] for r in classified.json()["results"]] == local_rows

    source = "A man plays a guitar on stage. The crowd cheers. It is late at night."
    checks = [{"source": source, "text": "A man plays music. It is early morning."}]
    checked = server.post("/check", {"rows": checks})
    assert checked.status_code == 200, checked.text
    text = json.dumps(checks[0]) + "\n"
    local = run_cli(["check", "-m", str(tiny_nli_model), "--precision", "fp32"], text)
    assert local.returncode == 0, local.stderr
    assert [r["row"] for r in checked.json()["results"]] == [json.loads(local.stdout)]

    # Passages, as strings and as objects with ids, and claims given in a field.
    passages = ["A man plays a guitar on stage.", {"id": "p2", "text": "The crowd cheers."}]
    claims = ["A man plays music.", {"id": "c", "text": "Late."}]
    given = [{"source": passages, "subclaims": claims}]
    checked = server.post("/check", {"rows": given, "claims_field": "subclaims"})
    assert checked.status_code == 200, checked.text
    args = [
        "check",
        "-m",
        str(tiny_nli_model),
        "--precision",
        "fp32",
        "--claims-field",
        "subclaims",
    ]
    local = run_cli(args, json.dumps(given[0]) + "\n")
    assert local.returncode == 0, local.stderr
    assert [r["row"] for r in checked.json()["results"]] == [json.loads(local.stdout)]
    one = server.post("/check", {"source": passages, "claims": claims})
    assert one.json()["results"][0]["row"]["claims"] == json.loads(local.stdout)["claims"]


def test_a_bad_row_is_that_rows_error_and_the_others_are_answered(server):
    rows = [{"premise": "A man plays.", "hypothesis": "Music."}, {"premise": "x"}]
    found = server.post("/score", {"rows": rows}).json()["results"]
    assert "row" in found[0]
    assert found[1]["error"] == {
        "message": "missing field 'hypothesis'",
        "field": "hypothesis",
        "index": 1,
    }
    clash = server.post("/score", {"rows": [{**rows[0], "prediction": "mine"}]}).json()
    assert "would be overwritten" in clash["results"][0]["error"]["message"]
    prefixed = server.post("/score", {"rows": [{**rows[0], "prediction": "mine"}], "prefix": "m_"})
    row = prefixed.json()["results"][0]["row"]
    assert row["prediction"] == "mine" and "m_scores" in row


@pytest.mark.parametrize(
    "path, body, status, field",
    [
        ("/predict", b"not json", 422, None),
        ("/predict", b"", 400, None),
        ("/predict", b"[1, 2]", 422, None),
        ("/predict", {"inputs": 3}, 422, "inputs"),
        ("/predict", {"inputs": [["a", 1]]}, 422, "inputs[0]"),
        ("/predict", {"inputs": []}, 400, "inputs"),
        ("/predict", {"inputs": [["a", "b"]] * 300}, 413, "inputs"),
        ("/predict", {"inputs": ["a", "b"], "raw_scores": "yes"}, 422, "raw_scores"),
        ("/score", {"rows": "x"}, 422, "rows"),
        ("/score", {"rows": [1]}, 422, "rows[0]"),
        (
            "/score",
            {"rows": [{"premise": "a", "hypothesis": "b"}], "long_input": "cut"},
            422,
            "long_input",
        ),
        ("/score", {"pairs": [["a", "b"]], "threshold": 2}, 422, "threshold"),
        ("/score", {"pairs": [["a", "b"]], "output_fields": "nope"}, 422, "output_fields"),
        ("/classify", {"texts": ["a"], "labels": LABELS, "template": "no slot"}, 422, "template"),
        ("/classify", {"texts": ["a"] * 100, "labels": LABELS}, 413, "rows"),
        ("/check", {"rows": [{"source": "a", "text": "b"}], "score": "max"}, 422, "score"),
    ],
)
def test_bad_requests_get_their_status_naming_the_field(server, path, body, status, field):
    options = {"content": body} if isinstance(body, bytes) else {"json": body}
    answer = httpx.post(server.url + path, timeout=60, **options)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error"] and error["error_type"]
    assert error.get("field") == field
    assert server.post("/predict", {"inputs": PAIRS[0]}).status_code == 200  # still serving


def test_a_long_pair_without_truncate_is_refused_as_tei_does(server):
    long_pair = [" ".join(["word"] * 200), "A hypothesis."]
    refused = server.post("/predict", {"inputs": [PAIRS[0], long_pair]})
    assert refused.status_code == 413 and refused.json()["field"] == "inputs[1]"
    cut = server.post("/predict", {"inputs": [PAIRS[0], long_pair], "truncate": True})
    assert cut.status_code == 200


def test_oversize_bodies_unknown_paths_and_methods_are_json_errors(server):
    huge = {"inputs": ["x" * (3 << 20), "y"]}
    answer = server.post("/predict", huge)
    assert answer.status_code == 413 and "--max-body-bytes" in answer.json()["error"]
    assert httpx.get(server.url + "/nowhere").json()["error_type"] == "not_found"
    assert httpx.get(server.url + "/predict").status_code == 405


def test_info_metrics_and_openapi(server):
    info = httpx.get(server.url + "/info").json()
    assert info["precision"] == "fp32" and info["labels"] and info["max_client_batch_size"] == 256
    assert info["label_source"] == "config"
    server.post("/predict", {"inputs": PAIRS})
    metrics = httpx.get(server.url + "/metrics").text
    for name in (
        "squeezenli_requests_total",
        "squeezenli_request_failures_total",
        "squeezenli_queue_depth",
        "squeezenli_batch_size_bucket",
        "squeezenli_request_seconds_bucket",
    ):
        assert name in metrics
    assert re.search(r'squeezenli_requests_total\{path="/predict",status="200"\} [1-9]', metrics)
    document = httpx.get(server.url + "/openapi.json").json()
    assert {"/predict", "/score", "/classify", "/check"} <= set(document["paths"])
    assert any('"GET /info" 200' in line for line in server.lines)  # the access log


def test_sixteen_clients_get_the_answers_batch_gives(server, tiny_nli_model):
    pairs = [[f"{p} Take {i}.", h] for i in range(8) for p, h in PAIRS]
    expected = {
        tuple(row_pair): row["scores"]
        for row_pair, row in zip(pairs, _batch_rows(tiny_nli_model, _rows(pairs)))
    }
    checks = [{"source": "A man plays a guitar. The crowd cheers.", "text": "A man plays."}]
    expected_check = server.post("/check", {"rows": checks}).json()
    expected_zero = server.post("/classify", {"texts": TEXTS, "labels": LABELS}).json()
    stop = time.monotonic() + 4
    wrong: list[str] = []
    answered = [0]

    def client(number: int) -> None:
        turn = 0
        while time.monotonic() < stop:
            turn += 1
            kind = (number + turn) % 3
            if kind == 0:
                chosen = pairs[(number * 7 + turn) % len(pairs) :][: 1 + turn % 9]
                answer = server.post("/predict", {"inputs": chosen})
                for pair, ranked in zip(chosen, answer.json()):
                    if {p["label"]: p["score"] for p in ranked} != expected[tuple(pair)]:
                        wrong.append(f"predict {pair}")
            elif kind == 1:
                answer = server.post("/classify", {"texts": TEXTS, "labels": LABELS})
                if answer.json() != expected_zero:
                    wrong.append("classify")
            else:
                answer = server.post("/check", {"rows": checks})
                if answer.json() != expected_check:
                    wrong.append("check")
            if answer.status_code != 200:
                wrong.append(f"status {answer.status_code}")
            answered[0] += 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client, range(16)))
    assert wrong == [] and answered[0] > 16


def test_sigterm_under_load_answers_every_accepted_request(tiny_nli_model):
    running = Server(tiny_nli_model)
    pairs = [[f"{p} Again {i}.", h] for i in range(40) for p, h in PAIRS]
    outcomes: list = []
    signalled = threading.Event()

    def client(number: int) -> None:
        # Requests one after another until the server has gone: some are in flight when
        # SIGTERM comes, and each must be answered whole; later ones find no listener.
        while True:
            try:
                answer = running.post("/predict", {"inputs": pairs[number * 20 :][:200]})
            except httpx.ConnectError:
                outcomes.append("refused")
                return
            except httpx.ReadError:  # a connection the server never took (its backlog)
                outcomes.append("reset")
                return
            ok = answer.status_code == 200 and len(answer.json()) == len(pairs[number * 20 :][:200])
            outcomes.append(("late " if signalled.is_set() else "") + ("ok" if ok else "bad"))

    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(client, n) for n in range(12)]
        while sum(o == "ok" for o in outcomes) < 24:  # under load
            time.sleep(0.01)
        running.process.send_signal(signal.SIGTERM)
        signalled.set()
        for future in futures:
            future.result()
    assert running.wait() == 0
    assert {o for o in outcomes} <= {"ok", "late ok", "refused", "reset"}, outcomes
    assert outcomes.count("refused") + outcomes.count("reset") == 12
    assert "late ok" in outcomes  # requests in flight at SIGTERM were answered
    # Every request the server took is answered: as many answers logged as received.
    answered = sum('"POST /predict" 200' in line for line in running.lines)
    assert answered == outcomes.count("ok") + outcomes.count("late ok")
    assert any("stopped serving (SIGTERM)" in line for line in running.lines)


def test_the_bearer_token_is_enforced(tiny_nli_model):
    running = Server(tiny_nli_model, "--api-key", "s3cret")
    try:
        assert running.post("/predict", {"inputs": PAIRS[0]}).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert running.post("/predict", {"inputs": PAIRS[0]}, headers=wrong).status_code == 401
        right = {"authorization": "Bearer s3cret"}
        assert running.post("/predict", {"inputs": PAIRS[0]}, headers=right).status_code == 200
        assert httpx.get(running.url + "/health").status_code == 200
        assert httpx.get(running.url + "/info").status_code == 401
        text = json.dumps({"premise": "A man plays.", "hypothesis": "Music."}) + "\n"
        remote = run_cli(["batch", "--server", running.url], text, SQUEEZENLI_API_KEY="s3cret")
        assert remote.returncode == 0, remote.stderr
        refused = run_cli(["batch", "--server", running.url], text)
        assert refused.returncode == 2 and "401" in refused.stderr
    finally:
        assert running.stop() == 0


def test_binding_beyond_loopback_needs_a_key(tiny_nli_model):
    done = run_cli(["serve", "-m", str(tiny_nli_model), "--host", "0.0.0.0", "--port", "0"])
    assert done.returncode == 2 and "--api-key" in done.stderr


@pytest.mark.parametrize("output", ["jsonl", "csv"])
def test_batch_classify_and_check_with_server_equal_local(server, tiny_nli_model, tmp_path, output):
    rows = _rows(PAIRS) + [{"id": 99, "premise": "only a premise"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["batch", str(path), "-o", output, "--on-error", "skip", "--prefix", "s_"]
    local = run_cli([*args, "-m", str(tiny_nli_model), "--precision", "fp32"])
    remote = run_cli([*args, "--server", server.url])
    assert local.returncode == remote.returncode == 1
    assert remote.stdout == local.stdout and local.stdout
    assert "pairs.jsonl:7" in remote.stderr and "missing field 'hypothesis'" in remote.stderr

    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    args = ["classify", "-i", str(texts), "-l", ",".join(LABELS), "--threshold", "0.3"]
    local = run_cli([*args, "-m", str(tiny_nli_model), "--precision", "fp32"])
    remote = run_cli([*args, "--server", server.url])
    assert local.returncode == remote.returncode == 0 and remote.stdout == local.stdout

    docs = tmp_path / "docs.jsonl"
    rows = [
        {"source": "A man plays a guitar. It rains.", "text": "Music.", "subclaims": ["Rain."]},
        {"source": ["A man plays.", {"id": 7, "text": "It rains."}], "text": "Music. Rain."},
    ]
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for extra in (
        [],
        ["--claims-field", "subclaims", "--on-error", "skip"],
        ["--evidence", "window"],
    ):
        local = run_cli(
            ["check", str(docs), *extra, "-m", str(tiny_nli_model), "--precision", "fp32"]
        )
        remote = run_cli(["check", str(docs), *extra, "--server", server.url])
        assert local.returncode == remote.returncode and remote.stdout == local.stdout
        assert local.stdout.count("\n") == 2 - bool(extra[:1] == ["--claims-field"])


# The CLI as `python -m squeezenli` runs it, saying as it exits (cli/app.py ends with
# os._exit) which heavy modules it loaded.
WATCHED = ("numpy", "onnxruntime", "tokenizers", "huggingface_hub", "rich", "mcp", "ray")
WATCHING = f"""
import os, sys
real_exit = os._exit
def reporting_exit(code):
    loaded = sorted({{name.split('.')[0] for name in sys.modules}} & set({WATCHED!r}))
    print('loaded:', loaded, file=sys.stderr, flush=True)
    real_exit(code)
os._exit = reporting_exit
sys.argv[0] = 'squeezenli'
from squeezenli.cli.entry import main
main()
"""


def _watched(args: list[str], text: str | None = None) -> tuple[subprocess.CompletedProcess, str]:
    done = subprocess.run(
        [sys.executable, "-c", WATCHING, *args],
        env=run_env(),
        input=text,
        capture_output=True,
        text=True,
        timeout=180,
    )
    loaded = re.findall(r"^loaded: (.*)$", done.stderr, re.M)
    assert loaded, done.stderr
    return done, loaded[-1]


def test_score_and_batch_with_server_are_thin_clients(server, tiny_nli_model):
    """With --server, score and batch answer as the local commands do without loading the
    model's runtime (numpy, onnxruntime, tokenizers) or anything else heavy."""
    premise, hypothesis = PAIRS[0]
    local = run_cli(
        ["score", premise, hypothesis, "--json", "-m", str(tiny_nli_model), "--precision", "fp32"]
    )
    remote, loaded = _watched(["score", premise, hypothesis, "--json", "--server", server.url])
    assert remote.returncode == local.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout and json.loads(remote.stdout)["prediction"]
    assert loaded == "[]", loaded

    table, _ = _watched(["score", premise, hypothesis, "--server", server.url])
    here = run_cli(["score", premise, hypothesis, "-m", str(tiny_nli_model), "--precision", "fp32"])
    assert table.returncode == 0 and table.stdout == here.stdout and "prediction:" in table.stdout

    text = "".join(json.dumps(row) + "\n" for row in _rows(PAIRS))
    remote, loaded = _watched(["batch", "--server", server.url], text)
    assert remote.returncode == 0, remote.stderr
    assert (
        remote.stdout
        == run_cli(["batch", "-m", str(tiny_nli_model), "--precision", "fp32"], text).stdout
    )
    assert loaded == "[]", loaded

    local, _ = _watched(["score", premise, hypothesis, "--json", "-m", str(tiny_nli_model)])
    assert "numpy" in _ and "onnxruntime" in _  # the watch sees what a local run loads


def test_mcp_over_http_and_stdio(server, tiny_nli_model):
    import anyio
    from mcp import Client, StdioServerParameters

    expected = {
        p["label"]: p["score"] for p in server.post("/predict", {"inputs": PAIRS[0]}).json()
    }
    pair = {"premise": PAIRS[0][0], "hypothesis": PAIRS[0][1]}

    async def over(target) -> tuple:
        async with Client(target) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            scored = await client.call_tool("score_pairs", {"pairs": [pair]})
            checked = await client.call_tool(
                "check_claims", {"source": "A man plays a guitar.", "text": "A man plays."}
            )
            cited = await client.call_tool("check_claims", {"source": passages, "claims": claims})
            refused = await client.call_tool("score_pairs", {"pairs": [pair], "threshold": 3})
            return tools, scored, (checked, cited), refused

    passages = ["It rains.", {"id": "p", "text": "A man plays a guitar."}]
    claims = ["A man plays.", "It is dry."]
    over_http = server.post("/check", {"source": passages, "claims": claims}).json()
    expected_claims = over_http["results"][0]["row"]["claims"]

    stdio = StdioServerParameters(
        command=sys.executable,
        args=["-m", "squeezenli", "mcp", "-m", str(tiny_nli_model), "--precision", "fp32", "-q"],
        env=run_env(),
    )
    for target in (server.url + "/mcp", stdio):
        tools, scored, (checked, cited), refused = anyio.run(over, target)
        assert not cited.is_error and cited.structured_content, cited
        assert cited.structured_content["claims"] == [
            {"id": None, **claim} for claim in expected_claims
        ]
        assert set(tools) == {"score_pairs", "classify_text", "check_claims"}
        assert tools["score_pairs"].input_schema["properties"]["pairs"]["type"] == "array"
        assert not scored.is_error
        assert scored.structured_content["results"][0]["scores"] == expected
        assert checked.structured_content["claims"][0]["verdict"] in (
            "supported",
            "contradicted",
            "not_supported",
        )
        assert refused.is_error and "threshold" in refused.content[0].text


def test_past_max_concurrent_is_429_and_past_the_timeout_503(tiny_nli_model):
    import anyio

    from squeezenli.runtime.model import load_model
    from squeezenli.serve.app import build_app
    from squeezenli.serve.limits import Limits
    from squeezenli.serve.service import Service

    entered, gate = threading.Event(), threading.Event()

    class Held(Service):
        """The real service, held at the door of its first call until the test opens it."""

        def score(self, request, cancel):
            if not entered.is_set():
                entered.set()
                gate.wait(30)
            return super().score(request, cancel)

    nli = load_model(str(tiny_nli_model), precision="fp32")
    app = build_app(Held(nli), Limits(max_concurrent=1, timeout_s=0.5), quiet=True)
    body = {"pairs": [PAIRS[0]]}

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            statuses: list[int] = []

            async def first() -> None:
                statuses.append((await client.post("/score", json=body)).status_code)

            async with anyio.create_task_group() as group:
                group.start_soon(first)
                await anyio.to_thread.run_sync(entered.wait, 30)
                overloaded = await client.post("/score", json=body)
                statuses.append(overloaded.status_code)
                assert "--max-concurrent" in overloaded.json()["error"]
            gate.set()
            while app.state.in_flight:  # the held call ends, and frees its slot
                await anyio.sleep(0.01)
            statuses.append((await client.post("/score", json=body)).status_code)
            return statuses

    assert anyio.run(scenario) == [429, 503, 200]


def test_connections_send_without_waiting_for_acks():
    """Each accepted connection has TCP_NODELAY: without it an answer's body waited for the
    client's delayed ACK of its headers (~40 ms a request; asyncio sets the option only on
    sockets made with IPPROTO_TCP)."""
    import asyncio
    import socket

    from squeezenli.cli.commands.serve import _bind

    listener = _bind("127.0.0.1", 0)

    async def accepted() -> int:
        found: asyncio.Future = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                sock = transport.get_extra_info("socket")
                found.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            value = await asyncio.wait_for(found, 10)
            writer.close()
        return value

    assert asyncio.run(accepted()) != 0
