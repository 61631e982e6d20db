"""Hostile inputs and outputs (issue 13): endless or huge lines, read errors, closed or
full outputs. Each ends in one line and a documented exit code, in bounded memory."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest
from conftest import run_env

ROW = json.dumps({"premise": "A man plays a guitar.", "hypothesis": "Music."}) + "\n"


def _command(model, *args: str) -> list[str]:
    return [sys.executable, "-m", "squeezenli", *args, "-m", str(model), "--precision", "fp32"]


def _run(model, *args: str, **kwargs) -> subprocess.CompletedProcess:
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run(_command(model, *args), env=run_env(), timeout=120, **kwargs)


def _no_traceback(done) -> str:
    err = done.stderr.decode() if isinstance(done.stderr, bytes) else done.stderr
    assert "Traceback" not in err, err
    return err


def test_a_closed_stdout_is_named(tiny_nli_model):
    command = " ".join(_command(tiny_nli_model, "A man plays.", "Music.")) + " >&-"
    done = subprocess.run(["bash", "-c", command], capture_output=True, env=run_env())
    assert done.returncode == 2
    assert "stdout is closed" in _no_traceback(done)


@pytest.mark.parametrize(
    "args", [("A man plays.", "Music."), ("batch",), ("batch", "-o", "csv"), ("batch", "-q")]
)
def test_a_full_stdout_is_named_once(tiny_nli_model, args):
    """One error line, then (unless -q) the run's summary, which says the error stopped it."""
    with open("/dev/full", "wb") as full:
        done = _run(
            tiny_nli_model, *args, input=ROW.encode() * 3, stdout=full, stderr=subprocess.PIPE
        )
    assert done.returncode == 1
    lines = _no_traceback(done).splitlines()
    lines = lines[[i for i, line in enumerate(lines) if "error" in line][0] :]  # after a build
    assert lines[0] == "squeezenli: error: cannot write to stdout: No space left on device"
    if args[0] == "batch" and "-q" not in args:
        assert len(lines) == 2 and lines[1].endswith("; stopped by the error above")
    else:
        assert len(lines) == 1


@pytest.mark.parametrize("quiet, code", [((), 1), (("-q",), 0)])
def test_a_full_stderr_loses_only_words_and_says_so_by_its_exit_code(tiny_nli_model, quiet, code):
    """2>/dev/full: every result reaches stdout; the summary could not be written, so the
    run is not all done (exit 1, documented), unless -q asked for no summary (exit 0)."""
    alone = _run(tiny_nli_model, "batch", "-q", input=ROW.encode() * 3)
    with open("/dev/full", "wb") as full:
        done = _run(
            tiny_nli_model,
            "batch",
            *quiet,
            input=ROW.encode() * 3,
            stdout=subprocess.PIPE,
            stderr=full,
        )
    assert done.returncode == code
    assert done.stdout == alone.stdout and len(done.stdout.splitlines()) == 3


def test_the_summary_of_a_run_a_bad_row_stopped_comes_after_its_error(tiny_nli_model):
    done = _run(tiny_nli_model, "batch", input=(ROW * 3 + '{"premise": "x"}\n').encode())
    assert done.returncode == 2
    error, after = _no_traceback(done).splitlines()[-2:]
    assert error == "squeezenli: error: <stdin>:4: missing field 'hypothesis'"
    assert after.startswith("squeezenli: 3 rows scored, 1 failed, ")
    assert after.endswith("; stopped by the error above")


def test_a_full_errors_file_is_named(tiny_nli_model):
    bad = json.dumps({"premise": 1, "hypothesis": "x"}) + "\n"
    done = _run(
        tiny_nli_model,
        "batch",
        "--on-error",
        "skip",
        "--errors",
        "/dev/full",
        input=(ROW + bad).encode(),
    )
    assert done.returncode == 1
    assert "cannot write --errors /dev/full: No space left on device" in _no_traceback(done)


def test_a_table_cut_short_by_head_exits_0(tiny_nli_model):
    command = " ".join(_command(tiny_nli_model, "batch", "-o", "table"))
    script = f"yes '{ROW.strip()}' | head -3000 | {command} | head -1; exit ${{PIPESTATUS[2]}}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, env=run_env())
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    _no_traceback(done)


def _peak_rss_kib(command: list[str], feed: str) -> tuple[int, subprocess.CompletedProcess]:
    """Run command with stdin from a shell pipeline; its peak resident memory, measured by
    a parent that has no other children."""
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[2:])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(done.returncode)\n"
    )
    script = f"{feed} | {sys.executable} -c '{probe}' - " + " ".join(command)
    done = subprocess.run(["bash", "-c", script], capture_output=True, env=run_env(), timeout=300)
    peak = int(done.stderr.decode().strip().splitlines()[-1])
    return peak, done


def test_a_huge_line_is_a_row_error_read_in_bounded_memory(tiny_nli_model):
    command = _command(tiny_nli_model, "batch", "--on-error", "skip")
    small, normal = _peak_rss_kib(command, f"printf '%s' '{ROW.strip()}'")
    assert normal.returncode == 0, normal.stderr
    # 200 MB with no newline, then a good row.
    huge_feed = f"(head -c 200000000 /dev/zero | tr '\\0' ' '; printf '\\n%s\\n' '{ROW.strip()}')"
    big, done = _peak_rss_kib(command, huge_feed)
    assert done.returncode == 1, done.stderr
    err = _no_traceback(done)
    assert "<stdin>:1: line is longer than 16 MiB" in err
    assert len(done.stdout.splitlines()) == 1  # the row after it was scored
    assert big - small < 64 * 1024  # the 200 MB line was never held


def test_dev_zero_as_input_stops_at_the_first_row(tiny_nli_model):
    with open("/dev/zero", "rb") as zero:
        done = _run(tiny_nli_model, "batch", stdin=zero)
    assert done.returncode == 2
    assert "<stdin>:1: line is longer than 16 MiB" in _no_traceback(done)


def test_an_io_error_while_reading_is_named(tiny_nli_model):
    # Reading the master side of a pseudo-terminal whose other side has closed gives EIO.
    master, slave = pty.openpty()
    os.write(slave, ROW.encode())
    os.close(slave)
    try:
        done = _run(tiny_nli_model, "batch", stdin=master)
    finally:
        os.close(master)
    assert done.returncode == 2, done.stderr
    assert "<stdin>: cannot read: Input/output error" in _no_traceback(done)
    assert len(done.stdout.splitlines()) == 1  # the row read before the error


def test_batch_settings_past_their_bounds_are_refused(tiny_nli_model):
    done = _run(tiny_nli_model, "batch", "--batch-tokens", "10000000", input=ROW.encode())
    assert done.returncode == 2
    assert "--batch-tokens" in _no_traceback(done)


def test_batches_of_long_pairs_keep_attention_bounded():
    from squeezenli.defaults import MAX_ATTENTION, MAX_BATCH_SIZE, MAX_BATCH_TOKENS
    from squeezenli.runtime.engine import Engine

    engine = Engine.__new__(Engine)
    engine.batch_size, engine.max_tokens = MAX_BATCH_SIZE, MAX_BATCH_TOKENS
    engine.threads = 1
    lengths = [512] * 300 + [128] * 500 + [16] * 2000
    batches = list(engine.batches(lengths))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) * longest**2 <= MAX_ATTENTION or len(batch) == 1
