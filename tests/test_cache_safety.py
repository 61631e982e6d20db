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


def _temporaries(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.name.endswith(".tmp") or p.name.startswith(".ready-")
    )


def test_a_signal_during_a_build_leaves_no_temporary(tiny_nli_model, tmp_path):
    """SIGINT or SIGTERM at moments spread over a build and its measurement (int8: both
    precisions built, measured and timed): the process ends with the signal's code and what
    it was writing is gone (they were left as `.NAME.PID.RANDOM.tmp` and `.ready-PID-*`)."""
    import shutil
    import signal
    import time

    outcomes = set()
    for trial, delay in enumerate([0.5, 0.8, 1.1, 1.4, 1.7, 2.0]):
        model = shutil.copytree(tiny_nli_model, tmp_path / f"model-{trial}")
        home = tmp_path / f"home-{trial}"
        sent = (signal.SIGINT, signal.SIGTERM)[trial % 2]
        process = subprocess.Popen(
            [sys.executable, "-m", "squeezenli", "-m", str(model), "a", "b", "--precision", "int8"],
            env=run_env(HF_HOME=str(home)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        process.send_signal(sent)
        _, err = process.communicate(timeout=120)
        assert process.returncode in (0, 128 + sent), err
        assert b"Traceback" not in err
        assert _temporaries(tmp_path) == [], (delay, err)
        outcomes.add(process.returncode)
    assert outcomes - {0}, "no signal came during a build: start later"


def test_a_killed_builders_temporaries_are_removed_by_a_warm_run(tiny_nli_model, tmp_path):
    """kill -9 leaves what it was writing; the next run removes it even when it builds
    nothing (it was removed only by a run that built)."""
    home = tmp_path / "home"
    assert squeezenli("a", "b", "-m", str(tiny_nli_model), HF_HOME=str(home)).returncode == 0
    (ready,) = [p for p in home.rglob("*.ort*.onnx")]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_text())
    pid = int(dead.stdout)  # a process id that no longer runs
    left = [ready.parent / f".{ready.name}.{pid}.abc123.tmp", ready.parent / f".ready-{pid}-x"]
    left[0].write_bytes(b"half a model")
    left[1].mkdir()
    assert squeezenli("a", "b", "-m", str(tiny_nli_model), HF_HOME=str(home)).returncode == 0
    assert not any(path.exists() for path in left)


def _text() -> dict:
    return {"capture_output": True, "text": True, "check": True}


def test_a_stop_at_once_removes_what_the_process_was_writing(tmp_path):
    """What a signal outside a pass over rows does (cli/signals.py: os._exit, no unwinding),
    in the middle of an atomic write and of a ready copy's scratch folder."""
    script = f"""
from pathlib import Path
from squeezenli.cli.signals import _stop_at_once
from squeezenli.models.atomic import atomic_path, scratch_dir
with atomic_path(Path({str(tmp_path)!r}) / "model.onnx") as tmp:
    tmp.write_bytes(b"half")
    with scratch_dir(Path({str(tmp_path)!r})) as scratch:
        (scratch / "model.onnx.data").write_bytes(b"half")
        _stop_at_once(15, "")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 143, done.stderr
    assert list(tmp_path.iterdir()) == []
