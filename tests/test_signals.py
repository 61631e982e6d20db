"""Ctrl-C and SIGTERM mid-batch: output ends on a whole line, exit 130 or 143, cache intact."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_env

ROW = json.dumps({"premise": "A man plays a guitar on stage.", "hypothesis": "Music."}) + "\n"


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_batch_ends_on_a_whole_line(tiny_nli_model, signum, code):
    process = subprocess.Popen(
        [sys.executable, "-m", "squeezenli.cli", "batch", "-m", str(tiny_nli_model)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=run_env(),
    )
    process.stdin.write((ROW * 50).encode())
    process.stdin.flush()
    first = process.stdout.readline()  # results are flowing; the input is still open
    assert json.loads(first)["prediction"]
    for _ in range(20):  # keep it busy writing while the signal lands
        process.stdin.write((ROW * 50).encode())
        process.stdin.flush()
        time.sleep(0.01)
    process.send_signal(signum)
    process.stdin.close()
    # Not communicate(): it reads the raw pipe and would skip what readline() buffered.
    out = first + process.stdout.read()
    err = process.stderr.read()
    process.wait(timeout=60)
    assert process.returncode == code, err.decode()
    assert out == b"" or out.endswith(b"\n")
    for line in out.splitlines():
        assert line.startswith(b"{") and json.loads(line)["prediction"], (line[:200], out[-300:])
    assert f"stopped by {signal.Signals(signum).name}" in err.decode()
    assert b"Traceback" not in err
    # The cache still works: the same model loads and scores in a new process.
    again = subprocess.run(
        [sys.executable, "-m", "squeezenli.cli", "batch", "-m", str(tiny_nli_model), "-q"],
        input=ROW.encode(),
        capture_output=True,
        env=run_env(),
    )
    assert again.returncode == 0 and json.loads(again.stdout)["prediction"]
