"""Stop signals mid-batch: output ends on a whole line, exit 128 + the signal, cache intact;
at start-up: one line, no traceback; with output blocked: an exit within seconds."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_env
from hostile import write_loop_export

EXPORTS = Path(__file__).parent / "fixtures" / "exports"

ROW = json.dumps({"premise": "A man plays a guitar on stage.", "hypothesis": "Music."}) + "\n"


STOPS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT]


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["PYTHONUNBUFFERED", "buffered"])
@pytest.mark.parametrize("signum", STOPS, ids=[s.name for s in STOPS])
def test_a_signal_mid_batch_ends_on_a_whole_line(tiny_nli_model, signum, unbuffered):
    code = 128 + signum
    env = run_env()
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:  # many container images set it: stdout's bytes then go straight out
        env["PYTHONUNBUFFERED"] = unbuffered
    process = subprocess.Popen(
        [sys.executable, "-m", "squeezenli", "batch", "-m", str(tiny_nli_model)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
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
        [sys.executable, "-m", "squeezenli", "batch", "-m", str(tiny_nli_model), "-q"],
        input=ROW.encode(),
        capture_output=True,
        env=run_env(),
    )
    assert again.returncode == 0 and json.loads(again.stdout)["prediction"]


@pytest.mark.parametrize("delay", [0.1, 0.2, 0.35, 0.6])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_is_one_line(tiny_nli_model, signum, delay):
    process = subprocess.Popen(
        [sys.executable, "-m", "squeezenli", "batch", "-m", str(tiny_nli_model)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=run_env(),
    )
    time.sleep(delay)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err.decode()
    assert b"Traceback" not in err and b"Error" not in err, err.decode()
    assert f"stopped by {signum.name}" in err.decode()
    assert out == b""


def test_sigterm_ends_a_run_whose_reader_stopped_reading(tiny_nli_model, tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text(ROW * 5000)  # far more output than a pipe holds
    process = subprocess.Popen(
        [sys.executable, "-m", "squeezenli", "batch", str(source), "-m", str(tiny_nli_model)],
        stdout=subprocess.PIPE,  # never read: the run blocks writing
        stderr=subprocess.PIPE,
        env=run_env(),
    )
    time.sleep(3)
    assert process.poll() is None  # blocked on its output
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("SIGTERM did not end a run blocked on its output")
    err = process.stderr.read().decode()
    assert process.returncode == 143, err
    assert "stopped by SIGTERM (output blocked" in err


@pytest.mark.parametrize(
    "command", [["score", "A man.", "A person."], ["batch"], ["batch", "--threads", "1"]]
)
def test_a_signal_ends_a_run_that_onnxruntime_would_never_finish(tmp_path, command):
    """An export with a Loop of 10^15 trips: the signal terminates onnxruntime's run."""
    folder = write_loop_export(tmp_path / "loop", EXPORTS / "roberta", 10**15)
    env = run_env(HF_HOME=str(tmp_path / "hf"))
    model = ("-m", str(folder), "--precision", "fp32")
    process = subprocess.Popen(
        [sys.executable, "-m", "squeezenli", *command, *model],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    process.stdin.write(ROW.encode() * 3)
    process.stdin.close()
    time.sleep(6)  # built and inside the run (a build of this graph takes well under a second)
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("SIGTERM did not end a run inside onnxruntime")
    out, err = process.stdout.read(), process.stderr.read()
    assert process.returncode == 143, err.decode()
    assert err.decode().strip().splitlines()[-1] == "squeezenli: stopped by SIGTERM"
    assert b"Traceback" not in err and out == b""
