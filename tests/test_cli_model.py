"""`squeezenli model list|remove`: what is cached, and deleting only squeezenli's entries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_env, squeezenli

PAIR = ["A man plays a guitar.", "A person makes music."]


def _env(hub) -> dict[str, str]:
    return {"HF_HOME": hub.home, "HF_ENDPOINT": hub.endpoint}


def _download(hub, *precisions: str) -> Path:
    args = ["model", "download", "-m", "acme/tiny-nli", "-q"]
    for precision in precisions:
        args += ["--precision", precision]
    done = squeezenli(*args, **_env(hub))
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def _listed(hub, *extra: str) -> dict:
    done = squeezenli("model", "list", "--json", *extra, **_env(hub))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_list_shows_built_models_and_their_variants(hub, tiny_model):
    assert _listed(hub)["models"] == []
    snapshot = _download(hub, "fp32", "int8")
    listed = _listed(hub)
    [entry] = listed["models"]
    assert entry["model"] == "acme/tiny-nli"
    assert entry["revisions"] == [snapshot.name]
    assert entry["precisions"] == ["fp32", "int8"]
    assert all(".ort" in name for name in entry["built"])  # the ready copies: what runs open
    assert entry["downloaded_bytes"] == sum(
        (snapshot / name).stat().st_size
        for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json")
    )
    table = squeezenli("model", "list", **_env(hub))
    assert "acme/tiny-nli" in table.stdout and "fp32, int8" in table.stdout


def test_list_all_includes_repos_other_tools_downloaded(hub, tiny_model):
    other = Path(hub.home) / "hub" / "models--someone--else" / "snapshots" / ("0" * 40)
    other.mkdir(parents=True)
    assert [m["model"] for m in _listed(hub)["models"]] == []
    assert [m["model"] for m in _listed(hub, "--all")["models"]] == ["someone/else"]


def test_remove_deletes_builds_and_keeps_downloads(hub):
    snapshot = _download(hub)
    removed = squeezenli("model", "remove", "acme/tiny-nli", **_env(hub))
    assert removed.returncode == 0, removed.stderr
    assert "removed acme/tiny-nli" in removed.stderr
    assert not (snapshot.parent.parent / "squeezenli").exists()
    assert (snapshot / "model.safetensors").is_file()
    # Scoring again, offline, rebuilds from the cached download.
    again = squeezenli(*PAIR, "-m", "acme/tiny-nli", "--json", HF_HUB_OFFLINE="1", **_env(hub))
    assert again.returncode == 0, again.stderr


def test_remove_downloads_needs_confirmation(hub):
    snapshot = _download(hub)
    refused = squeezenli("model", "remove", "acme/tiny-nli", "--downloads", **_env(hub))
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr
    assert snapshot.is_dir()
    done = squeezenli("model", "remove", "acme/tiny-nli", "--downloads", "--yes", **_env(hub))
    assert done.returncode == 0, done.stderr
    assert not snapshot.parent.parent.exists()
    assert (Path(hub.home) / "hub").is_dir()


def test_remove_never_leaves_the_cache(hub, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    for name in ("../precious", "/tmp", "a/b/c", ".."):
        done = squeezenli("model", "remove", name, "--downloads", "--yes", **_env(hub))
        assert done.returncode in (2, 3), (name, done.stderr)
        assert "Traceback" not in done.stderr
    assert outside.is_dir()
    nothing = squeezenli("model", "remove", "acme/never-cached", **_env(hub))
    assert nothing.returncode == 2
    assert "nothing built by squeezenli for acme/never-cached" in nothing.stderr


def test_remove_local_builds(tiny_nli_model, tmp_path):
    home = str(tmp_path / "home")
    scored = squeezenli(
        *PAIR, "-m", str(tiny_nli_model), "--json", "--precision", "fp32", HF_HOME=home
    )
    assert scored.returncode == 0, scored.stderr
    builds = Path(home) / "hub" / "squeezenli-local"
    assert len(list(builds.glob("*/*-fp32.ort*.onnx"))) == 1  # the onnxruntime-ready copy
    assert not list(builds.glob("*/*-fp32.onnx"))  # which replaced the build
    listed = json.loads(squeezenli("model", "list", "--json", HF_HOME=home).stdout)
    assert len(listed["local_builds"]) == 1
    done = squeezenli("model", "remove", "--local", HF_HOME=home)
    assert done.returncode == 0, done.stderr
    assert not (Path(home) / "hub" / "squeezenli-local").exists()


@pytest.mark.parametrize("answer, removed", [("n", False), ("y", True)])
def test_remove_downloads_asks_at_a_terminal(hub, answer, removed):
    """Answering no removes nothing and is no interruption: exit 0."""
    import pty

    snapshot = _download(hub)
    controller, terminal = pty.openpty()
    with os.fdopen(controller, "wb", buffering=0) as typed:
        typed.write(f"{answer}\n".encode())
        done = subprocess.run(
            [sys.executable, "-m", "squeezenli", "model", "remove", "acme/tiny-nli", "--downloads"],
            stdin=terminal,
            capture_output=True,
            text=True,
            env=run_env(**_env(hub)),
            timeout=120,
        )
    os.close(terminal)
    assert done.returncode == 0, done.stderr
    assert "interrupted" not in done.stderr
    assert snapshot.is_dir() is not removed
    assert ("nothing removed" in done.stderr) is not removed


def test_model_info_shows_bytes_as_bytes_and_builds_apart(tiny_nli_model):
    """The files table holds sizes only; each built ONNX file is its own line, its path whole."""
    squeezenli("model", "download", "-m", str(tiny_nli_model), "--precision", "fp32", "-q")
    shown = squeezenli("model", "info", "-m", str(tiny_nli_model), COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout.split("┡", 1)[1].split("└", 1)[0]
    cells = [row.split("│")[2].strip() for row in table.splitlines() if row.startswith("│")]
    assert cells and all(cell.replace(",", "").isdigit() for cell in cells)
    info = json.loads(squeezenli("model", "info", "-m", str(tiny_nli_model), "--json").stdout)
    assert f"built ONNX (fp32): {info['built']['fp32']}" in shown.stdout
