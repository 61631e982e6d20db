"""Several processes on a cold cache, an unwritable cache: one builds, all agree, nothing torn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import run_env, squeezenli

ROWS = "".join(
    json.dumps({"premise": p, "hypothesis": h}) + "\n"
    for p, h in [
        ("A man plays a guitar.", "Music."),
        ("The dog runs.", "A cat sleeps."),
        ("a", "b"),
    ]
)


def test_four_processes_on_a_cold_cache_agree(hub):
    env = run_env(HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint)
    command = [sys.executable, "-m", "squeezenli", "batch", "-m", "acme/tiny-nli", "-q"]
    processes = [
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(4)
    ]
    results = [p.communicate(ROWS.encode(), timeout=120) for p in processes]
    for process, (_, err) in zip(processes, results):
        assert process.returncode == 0, err.decode()
    outputs = {out for out, _ in results}
    assert len(outputs) == 1 and len(outputs.pop().splitlines()) == 3
    builds = Path(hub.home) / "hub" / "models--acme--tiny-nli" / "squeezenli"
    names = sorted(p.name for p in builds.iterdir() if not p.name.startswith(".build"))
    assert len([n for n in names if ".ort" in n and n.endswith(".onnx")]) == 1, names
    assert not [n for n in names if n.endswith(("-fp32.onnx", "-int8.onnx"))], names
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")], names
    downloads = [m for m, path in hub.requests if m == "GET" and "model.safetensors" in path]
    assert 1 <= len(downloads) <= 4  # huggingface_hub's own lock; the files end whole either way


def test_processes_that_wait_for_a_builder_build_nothing_again(hub):
    """The first to take the lock builds, copies and removes its builds; the others find the
    ready copy, and build nothing themselves. auto's first run quantizes nothing."""
    env = run_env(HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint)
    command = [sys.executable, "-m", "squeezenli", "batch", "-m", "acme/tiny-nli"]
    processes = [
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(3)
    ]
    results = [p.communicate(ROWS.encode(), timeout=120) for p in processes]
    said = "".join(err.decode() for _, err in results)
    assert all(p.returncode == 0 for p in processes), said
    assert said.count("building the fp32 ONNX model") == 1, said
    assert said.count("quantizing it to int8") == 0, said


def test_an_unwritable_cache_is_a_clear_error(tiny_nli_model, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache should be")
    done = squeezenli(
        "A man plays.", "Music.", "-m", str(tiny_nli_model), HF_HOME=str(blocker / "home")
    )
    assert done.returncode == 3
    assert "cannot write to the cache folder" in done.stderr and "HF_HOME" in done.stderr
    assert "Traceback" not in done.stderr
    assert blocker.read_text() == "a file where the cache should be"
