"""Soak (slow; `pytest -m slow`): 200k rows stream through `batch` in flat memory, and four
processes sharing one cold cache write exactly what a single run writes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time

import pytest
from conftest import run_env

pytestmark = pytest.mark.slow

PAIRS = [
    ("A man plays a guitar on stage.", "A person is making music."),
    ("The dog runs in the park and the cat sits on the red car.", "No."),
    ("Some people were eating food.", "Nobody ate."),
    ("", "An empty premise."),
]


def _rows(count: int):
    for i in range(count):
        premise, hypothesis = PAIRS[i % len(PAIRS)]
        yield json.dumps({"id": i, "premise": premise, "hypothesis": hypothesis}) + "\n"


def _peak_mib(pid: int) -> float:
    # VmHWM is this process's own high-water mark (ru_maxrss would include pytest's, which
    # a child inherits across fork and exec).
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _stream(model, count: int, env) -> tuple[int, float, str]:
    """Feed count rows through `squeezenli batch`; lines out, peak MiB, sha256 of output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "squeezenli", "batch", "-m", str(model), "-q"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )

    def feed() -> None:
        for row in _rows(count):
            process.stdin.write(row.encode())
        process.stdin.close()

    threading.Thread(target=feed, daemon=True).start()
    peak, lines, digest = 0.0, 0, hashlib.sha256()
    last = time.monotonic()
    for line in process.stdout:
        lines += 1
        digest.update(line)
        if time.monotonic() - last > 0.2:
            peak = max(peak, _peak_mib(process.pid))
            last = time.monotonic()
    peak = max(peak, _peak_mib(process.pid)) if process.poll() is None else peak
    assert process.wait() == 0
    return lines, peak, digest.hexdigest()


def test_memory_is_flat_in_input_size(tiny_nli_model, tmp_path):
    env = run_env(HF_HOME=str(tmp_path / "home"))
    small_lines, small_peak, _ = _stream(tiny_nli_model, 2_000, env)
    large_lines, large_peak, _ = _stream(tiny_nli_model, 200_000, env)
    assert (small_lines, large_lines) == (2_000, 200_000)
    assert small_peak > 0
    assert large_peak < small_peak + 40, (small_peak, large_peak)


def test_four_processes_on_one_cold_cache_match_a_single_run(tiny_nli_model, tmp_path):
    # A file, not a pipe: files are read in fixed windows, so batches (and int8 scores) do
    # not depend on timing.
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(_rows(20_000)))
    command = [sys.executable, "-m", "squeezenli", "batch", str(source), "-m"]
    command += [str(tiny_nli_model), "-q"]
    single = subprocess.run(
        command, capture_output=True, env=run_env(HF_HOME=str(tmp_path / "alone"))
    )
    assert single.returncode == 0 and len(single.stdout.splitlines()) == 20_000
    shared = run_env(HF_HOME=str(tmp_path / "shared"))
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=shared)
        for _ in range(4)
    ]
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err.decode()
        assert out == single.stdout
