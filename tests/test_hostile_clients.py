"""The `--server` clients (serve.client.Remote, and batch/classify/check/score --server) against
a lying server: any answer that is not the documented shape is one ServerError naming the
server and what was wrong (exit 5, no traceback, the summary counting the rows written before
it); answers are bounded in size and time; a bad URL or key is refused before any request."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from liar import PAIR_RESULT, Liar, endless, honest, json_answer, silent, truncated

from squeezenli.errors import InputError, ServerError
from squeezenli.records.readers import Record
from squeezenli.serve.client import Remote

ROWS = [{"premise": f"A man plays {i}.", "hypothesis": "Music."} for i in range(5)]


def _score(url: str, rows=ROWS, **options) -> list:
    records = [Record("test", i + 1, row) for i, row in enumerate(rows)]
    return list(Remote(url, **options).score_records(records))


def _rows(path: str, body: dict | None) -> list:
    return body["rows"] if body else []


LIES = {
    "one row too many": lambda n, path, body: json_answer(
        {"results": [{"result": PAIR_RESULT}] * (len(_rows(path, body)) + 1)}
    ),
    "one row too few": lambda n, path, body: json_answer(
        {"results": [{"result": PAIR_RESULT}] * (len(_rows(path, body)) - 1)}
    ),
    "no results": lambda n, path, body: json_answer({"rows": []}),
    "results not a list": lambda n, path, body: json_answer({"results": 5}),
    "an answer that is a list": lambda n, path, body: json_answer([1, 2]),
    "a result that is a number": lambda n, path, body: json_answer(
        {"results": [7] * len(_rows(path, body))}
    ),
    "scores that are text": lambda n, path, body: json_answer(
        {"results": [{"result": {**PAIR_RESULT, "scores": "high"}}] * len(_rows(path, body))}
    ),
    "a prediction of no label": lambda n, path, body: json_answer(
        {"results": [{"result": {**PAIR_RESULT, "prediction": "maybe"}}] * len(_rows(path, body))}
    ),
    "a boolean score": lambda n, path, body: json_answer(
        {
            "results": [{"result": {**PAIR_RESULT, "scores": {"entailment": True}}}]
            * len(_rows(path, body))
        }
    ),
    "an error without a message": lambda n, path, body: json_answer(
        {"results": [{"error": {"field": "x"}}] * len(_rows(path, body))}
    ),
    "not JSON": lambda n, path, body: (200, {}, b"<html>hello</html>"),
    "a redirect": lambda n, path, body: (302, {"location": "http://elsewhere:1/score"}, b""),
    "a 500": lambda n, path, body: json_answer({"error": "boom"}, 500),
    "a 429": lambda n, path, body: json_answer({"error": "busy"}, 429),
    "a truncated body": lambda n, path, body: truncated,
    "an endless body": lambda n, path, body: endless,
    "a body said to be 300 MB": lambda n, path, body: (200, {"content-length": "300000000"}, b""),
}
SAID = {
    "one row too many": "with 6 results for 5 rows",
    "one row too few": "with 4 results for 5 rows",
    "no results": "without a `results` list",
    "results not a list": "without a `results` list",
    "an answer that is a list": "without a `results` list",
    "a result that is a number": "results[0] that is neither",
    "scores that are text": "`scores` is a string, not an object",
    "a prediction of no label": "`prediction` is none of the labels",
    "a boolean score": "`scores` must hold numbers only",
    "an error without a message": "results[0] that is neither",
    "not JSON": "with what is not JSON",
    "a redirect": "a redirect (302) to http://elsewhere:1/score",
    "a 500": "refused POST /score (500): boom",
    "a 429": "refused POST /score (429): busy",
    "a truncated body": "a truncated answer to POST /score",
    "an endless body": "with over 64 MiB: refused unread",
    "a body said to be 300 MB": "with over 64 MiB: refused unread",
}


@pytest.mark.parametrize("lie", LIES)
def test_every_lie_is_one_server_error_naming_the_server(lie):
    with Liar(LIES[lie]) as liar:
        with pytest.raises(ServerError) as raised:
            _score(liar.url)
    message = str(raised.value)
    assert message.startswith(f"the server at {liar.url} "), message
    assert SAID[lie] in message, message
    assert "\n" not in message


def test_the_honest_liar_is_believed():
    """The fixture's own honest answers pass, so the refusals above are of the lies."""
    with Liar(lambda n, path, body: json_answer(honest(path, body))) as liar:
        results = _score(liar.url)
        assert [r.output.fields()["scores"] for r in results] == [PAIR_RESULT["scores"]] * 5
        assert Remote(liar.url).identity().model == "acme/liar"


@pytest.mark.parametrize(
    "lie",
    [
        {"model_id": 5},
        {"precision": None},
        {"labels": "entailment"},
        {"labels": ["entailment", "entailment"]},
        {"label_source": "guess"},
    ],
)
def test_an_info_that_lies_is_refused(lie):
    with Liar(lambda n, path, body: json_answer(honest(path, body) | lie)) as liar:
        with pytest.raises(ServerError, match="answered GET /info"):
            remote = Remote(liar.url)
            remote.identity()
            remote.labels()


def test_a_silent_server_times_out():
    with Liar(lambda n, path, body: silent) as liar:
        with pytest.raises(ServerError, match="did not answer POST /score within 0.3 s"):
            _score(liar.url, timeout=0.3)


def test_a_lie_after_good_windows_stops_batch_with_exit_5_and_says_what_was_written():
    """batch --server writes the windows answered honestly; the one that lies (a row too
    many) writes nothing and ends the run: exit 5, one line, the rows written counted."""

    scored: list[int] = []

    def plan(number: int, path: str, body: dict | None):
        if path == "/info" or not scored:
            scored.extend([len(body["rows"])] if path == "/score" else [])
            return json_answer(honest(path, body))
        return LIES["one row too many"](number, path, body)

    rows = [{"premise": f"A man plays {i}.", "hypothesis": "Music."} for i in range(300)]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    with Liar(plan) as liar:
        done = run_cli(["batch", "--server", liar.url], text)
    (first,) = scored
    assert 0 < first < len(rows)
    assert done.returncode == 5, done.stderr
    assert len(done.stdout.splitlines()) == first
    assert f"the server at {liar.url} answered POST /score with" in done.stderr
    assert f"{first} rows scored" in done.stderr and "Traceback" not in done.stderr


def test_timeout_comes_from_the_flag_or_the_environment():
    with Liar(lambda n, path, body: silent) as liar:
        args = ["batch", "--server", liar.url]
        line = json.dumps(ROWS[0]) + "\n"
        flag = run_cli([*args, "--timeout", "0.3"], line)
        env = run_cli(args, line, SQUEEZENLI_TIMEOUT="0.3")
    for done in (flag, env):
        assert done.returncode == 5, done.stderr
        assert "did not answer GET /info within 0.3 s" in done.stderr


@pytest.mark.parametrize(
    "server, key",
    [
        ("http://[::1", None),
        ("http://127.0.0.1:99999", None),
        ("ftp://127.0.0.1:8080", None),
        ("http://user:pass@127.0.0.1:8080", None),
        ("http://127.0.0.1:8080/?q=1", None),
        ("http://127.0.0.1:8080", "ключ"),
        ("http://127.0.0.1:8080", "key "),
        ("http://127.0.0.1:8080", ""),
    ],
)
def test_a_bad_url_or_key_is_refused_before_any_request(server, key):
    with pytest.raises(InputError):
        Remote(server, key)
    args = ["batch", "--server", server] + ([] if key is None else ["--api-key", key])
    done = run_cli(args, json.dumps(ROWS[0]) + "\n")
    assert done.returncode == 2, done.stderr
    assert ("--api-key" if key is not None else "--server") in done.stderr
    assert "Traceback" not in done.stderr


def test_a_path_prefix_is_kept():
    """A server behind a proxy at /nli: requests go under it."""
    with Liar(lambda n, path, body: json_answer(honest(path.removeprefix("/nli"), body))) as liar:
        assert len(_score(liar.url + "/nli/")) == 5
        assert {path for path, _ in liar.requests} == {"/nli/score"}


ZERO_SHOT = {"text": "A match.", "labels": ["sports", "music"], "scores": [0.75, 0.25]}
CHECKED = {"claims": [], "score": None, "supported_text": "", "windows": 1}


@pytest.mark.parametrize(
    "task, result, said",
    [
        ("classify", ZERO_SHOT, None),
        ("classify", {**ZERO_SHOT, "scores": [0.75]}, "as many strings as `scores`"),
        ("classify", {**ZERO_SHOT, "selected": ["politics"]}, "`selected` names labels"),
        ("classify", {**ZERO_SHOT, "labels": None}, "`labels` is null, not a list"),
        ("check", CHECKED, None),
        ("check", {**CHECKED, "claims": [1]}, "`claims` must be a list of objects"),
        ("check", {**CHECKED, "windows": "1"}, "`windows` is a string, not an integer"),
    ],
)
def test_zero_shot_and_check_answers_are_checked_too(task, result, said):
    def plan(number: int, path: str, body: dict | None):
        return json_answer({"results": [{"result": result}] * len(_rows(path, body))})

    rows = [{"text": "A match.", "source": "A match was played."}]
    records = [Record("test", 1, row) for row in rows]
    with Liar(plan) as liar:
        remote = Remote(liar.url)
        run = (
            (lambda: list(remote.classify_records(records, labels="sports,music")))
            if task == "classify"
            else (lambda: list(remote.check_records(records)))
        )
        if said is None:
            assert len(run()) == 1
        else:
            with pytest.raises(ServerError, match=said):
                run()
