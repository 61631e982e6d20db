"""A hub that lies or stalls (issue 13): answers that would write outside the cache are
refused before anything is written, malformed listings are named, and no wait is unbounded;
a cached model is used when the server does not answer."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import one_error, squeezenli

PAIR = ["A man plays a guitar.", "A person makes music."]


def _score(hub, *extra: str, **env: str):
    return squeezenli(
        *PAIR,
        "-m",
        "acme/tiny-nli",
        "--precision",
        "fp32",
        *extra,
        HF_HOME=hub.home,
        HF_ENDPOINT=hub.endpoint,
        **env,
    )


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize(
    ("lie", "value"),
    [
        ("etag", "../../../escaped"),
        ("etag", "../escaped"),
        ("commit", "../../../../escaped"),
        ("commit", "0123456789abcdef0123456789abcdef0123456/.."),
    ],
)
def test_a_path_in_an_etag_or_commit_writes_nothing_outside_the_cache(hub, tmp_path, lie, value):
    home = Path(hub.home)
    home.mkdir(parents=True)
    outside = _files_under(tmp_path) - _files_under(home)
    hub.lies[lie] = value
    line = one_error(_score(hub))
    assert "refused the server's answer" in line and "nothing was written" in line
    assert _files_under(tmp_path) - _files_under(home) == outside
    assert not list(home.rglob("*escaped*"))


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"this is not json", "malformed"),
        (b"[1, 2, 3]", "malformed"),
        (b'{"id": "acme/tiny-nli", "sha": "x", "siblings": [1, 2]}', "malformed"),
        (b'{"id": "acme/tiny-nli", "sha": "x", "siblings": null}', "no config.json"),
        (b'{"id": "acme/tiny-nli", "siblings": [{"rfilename": 7}]}', "not text"),
    ],
)
def test_a_malformed_model_listing_is_named(hub, body, says):
    hub.lies["info"] = body
    line = one_error(_score(hub))
    assert "acme/tiny-nli@main" in line and says in line


def test_a_server_that_never_answers_times_out(hub):
    hub.lies["stall"] = 30
    started = time.monotonic()
    line = one_error(_score(hub, HF_HUB_ETAG_TIMEOUT="1", HF_HUB_DOWNLOAD_TIMEOUT="1"))
    assert time.monotonic() - started < 20
    assert "cannot download acme/tiny-nli@main" in line and "HF_HUB_ETAG_TIMEOUT" in line


def test_a_server_that_drips_is_cut_off(hub):
    hub.lies["drip"] = 0.3
    started = time.monotonic()
    line = one_error(_score(hub, HF_HUB_ETAG_TIMEOUT="2", HF_HUB_DOWNLOAD_TIMEOUT="2"))
    assert time.monotonic() - started < 30
    assert "bytes in" in line


def test_a_cached_model_is_used_when_the_server_stalls(hub):
    assert _score(hub).returncode == 0
    hub.lies["stall"] = 30
    started = time.monotonic()
    done = _score(hub, HF_HUB_ETAG_TIMEOUT="1", HF_HUB_DOWNLOAD_TIMEOUT="1")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 20
    assert "using the cached snapshot" in done.stderr
    assert done.stdout.startswith("entail") or done.stdout  # a result was printed


def test_the_guard_lets_an_honest_hub_through(hub):
    # The lies above fail on the lie alone: the same server, honest, serves the model.
    done = _score(hub)
    assert done.returncode == 0, done.stderr
    assert os.path.isdir(Path(hub.home) / "hub" / "models--acme--tiny-nli" / "snapshots")


def test_a_file_the_server_claims_is_huge_is_one_error(hub):
    hub.lies["head_size"] = {"model.safetensors": 60 * 10**9}
    line = one_error(_score(hub))
    assert "cannot download model.safetensors" in line and "too large" in line


def test_a_listed_file_the_server_does_not_serve_says_what_to_do(hub):
    hub.lies["unserved"] = {"model.safetensors"}
    line = one_error(_score(hub))
    assert "names model.safetensors, but the server does not serve it (404)" in line
    assert "--onnx-file" in line
