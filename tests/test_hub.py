"""The real download path (huggingface_hub) against a hub-like server on 127.0.0.1.

These run squeezenli as a subprocess, so HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE are read
exactly as a user's shell would set them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import squeezenli
from hubserver import folder_files

from squeezenli.models.hub import DEFAULT_MODEL

PAIR = ["A man plays a guitar.", "A person makes music."]


def test_download_then_offline(hub):
    first = squeezenli(
        *PAIR, "--json", "-m", "acme/tiny-nli", HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint
    )
    assert first.returncode == 0, first.stderr
    row = json.loads(first.stdout)
    assert row["premise"] == PAIR[0] and set(row["scores"]) == {"LABEL_0", "LABEL_1", "LABEL_2"}
    fetched = {
        path.rsplit("/", 1)[-1]
        for method, path in hub.requests
        if method == "GET" and "/resolve/" in path
    }
    assert fetched == {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}
    # Off a terminal (no bar), each download and the build are said in a line on stderr.
    said = first.stderr.splitlines()
    for name in sorted(fetched):
        assert f"squeezenli: downloading {name} from acme/tiny-nli (once)" in said
        assert any(line.startswith(f"squeezenli: downloaded {name}: ") for line in said)
    assert any(line.startswith("squeezenli: building the fp32 ONNX model") for line in said)

    hub.requests.clear()
    offline = squeezenli(
        *PAIR,
        "--json",
        "-m",
        "acme/tiny-nli",
        HF_HOME=hub.home,
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_OFFLINE="1",
    )
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == first.stdout
    assert hub.requests == []
    assert "download" not in offline.stderr


def test_a_pinned_cached_commit_needs_no_round_trip(hub):
    commit = hub.repos["acme/tiny-nli"].refs["main"]
    args = (*PAIR, "--json", "-m", "acme/tiny-nli", "--revision", commit)
    assert squeezenli(*args, HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint).returncode == 0
    hub.requests.clear()
    again = squeezenli(*args, HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint)
    assert again.returncode == 0, again.stderr
    assert hub.requests == []


def test_a_pr_revision_is_fetched_url_encoded_and_cached_by_name(hub):
    args = (*PAIR, "--json", "-m", "acme/tiny-nli", "--revision", "refs/pr/3")
    assert squeezenli(*args, HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint).returncode == 0
    assert ("GET", "/api/models/acme/tiny-nli/revision/refs%2Fpr%2F3") in hub.requests
    offline = squeezenli(*args, HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="1")
    assert offline.returncode == 0, offline.stderr


def test_the_default_model_uses_the_pinned_revision(hub, tiny_model):
    from squeezenli.models.hub import DEFAULT_REVISION

    repo = hub.repos.setdefault(DEFAULT_MODEL, type(hub.repos["acme/tiny-nli"])())
    repo.commits[DEFAULT_REVISION] = folder_files(tiny_model)
    result = squeezenli(*PAIR, "--json", HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint)
    assert result.returncode == 0, result.stderr
    assert f"/api/models/{DEFAULT_MODEL}/revision/{DEFAULT_REVISION}" in {
        p for _, p in hub.requests
    }
    # config names LABEL_0..2: the known mapping for this repo applies, NLI names come out.
    assert set(json.loads(result.stdout)["scores"]) == {"entailment", "neutral", "contradiction"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-m", "acme/missing"), "model repo 'acme/missing' not found"),
        (("-m", "acme/tiny-nli", "--revision", "v9"), "revision 'v9' not found in acme/tiny-nli"),
        (("-m", "./no-such-folder"), "does not exist"),
        (("-m", "/"), "no config.json"),
        (("-m", "acme/bad..name"), "nor a valid Hub repo id"),
    ],
)
def test_clear_errors(hub, args, message):
    result = squeezenli(*PAIR, *args, HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint)
    assert result.returncode == 3
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_offline_with_an_empty_cache_says_how_to_fix_it(hub):
    result = squeezenli(*PAIR, "-m", "acme/tiny-nli", HF_HOME=hub.home, HF_HUB_OFFLINE="1")
    assert result.returncode == 3
    assert "squeezenli model download" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert hub.requests == []


def test_an_unreachable_endpoint_is_a_clear_error(hub):
    result = squeezenli(
        *PAIR, "-m", "acme/tiny-nli", HF_HOME=hub.home, HF_ENDPOINT="http://127.0.0.1:9"
    )
    assert result.returncode == 3
    assert "cannot download acme/tiny-nli@main" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_repo_that_is_not_a_classifier(hub, tiny_model):
    files = folder_files(tiny_model)
    config = json.loads(files["config.json"])
    files["config.json"] = json.dumps({**config, "model_type": "gpt2"}).encode()
    hub.add_repo("acme/gpt", files)
    result = squeezenli(*PAIR, "-m", "acme/gpt", HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint)
    assert result.returncode == 3
    assert "model_type 'gpt2' is not supported" in result.stderr


def test_unsafe_file_names_from_the_server_are_refused(hub, tiny_model):
    files = folder_files(tiny_model)
    files["../../escape.txt"] = b"x"
    hub.add_repo("acme/evil", files)
    result = squeezenli(*PAIR, "-m", "acme/evil", HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint)
    assert result.returncode == 3
    assert "unsafe file name" in result.stderr


def _blob(hub, name: str):
    snapshot = next((Path(hub.home) / "hub" / "models--acme--tiny-nli" / "snapshots").iterdir())
    return (snapshot / name).resolve()


def test_a_download_cut_halfway_ends_whole_or_as_a_clear_error(hub):
    hub.cut["model.safetensors"] = 1
    first = squeezenli(
        *PAIR, "--json", "-m", "acme/tiny-nli", HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint
    )
    assert "Traceback" not in first.stderr
    assert first.returncode == 0 or (first.returncode == 3 and "download" in first.stderr), (
        first.stderr
    )
    again = squeezenli(
        *PAIR, "--json", "-m", "acme/tiny-nli", HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint
    )
    assert again.returncode == 0, again.stderr
    blob = _blob(hub, "model.safetensors")
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert hub.cut["model.safetensors"] == 0  # the cut really happened


def test_a_damaged_cached_download_is_fetched_again(hub):
    env = {"HF_HOME": hub.home, "HF_ENDPOINT": hub.endpoint}
    first = squeezenli(*PAIR, "--json", "-m", "acme/tiny-nli", "--precision", "fp32", **env)
    assert first.returncode == 0, first.stderr
    blob = _blob(hub, "model.safetensors")
    damaged = bytearray(blob.read_bytes())
    damaged[-10] ^= 0xFF  # bit rot: same size, wrong content
    blob.chmod(0o644)
    blob.write_bytes(bytes(damaged))
    shutil.rmtree(Path(hub.home) / "hub" / "models--acme--tiny-nli" / "squeezenli")
    again = squeezenli(*PAIR, "--json", "-m", "acme/tiny-nli", "--precision", "fp32", **env)
    assert again.returncode == 0, again.stderr
    assert "does not match its hash; downloading it again" in again.stderr
    assert again.stdout == first.stdout
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
