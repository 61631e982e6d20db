"""What the benches share: where things are, the model they measure, and a child's wall
time, peak memory and CPU time (bench/run.py and the benches beside it import these)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
DEV_CACHE = Path.home() / ".cache" / "squeezenli-dev"
DEFAULT_PAIRS = ROOT.parent / "shared" / "data" / "mnli_dev_mismatched_sample.jsonl"
PAIR = ("A man plays a guitar on stage.", "A person is making music.")


def squeezenli_command() -> list[str]:
    """The squeezenli of the Python running the bench: its console script (a virtual
    environment's, say). `python -m squeezenli` would import the working directory's code
    instead, so a bench run from the repo would measure the repo, not the install."""
    script = Path(sys.executable).with_name("squeezenli")
    return [str(script)] if script.exists() else [sys.executable, "-m", "squeezenli"]


def start_server(model: Path, precision: str, *args: str) -> tuple[subprocess.Popen, str]:
    """`squeezenli serve` on a free port (with `args`), quiet; the process and its URL."""
    command = [*squeezenli_command(), "serve", "-m", str(model), "--port", "0"]
    process = subprocess.Popen(
        [*command, "--precision", precision, "-q", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, found[1]
        print(line, end="", file=sys.stderr)
    raise SystemExit("the server did not start")


class Measured(NamedTuple):
    wall: float  # seconds
    peak_mib: float
    out: str
    cpu: float  # seconds, user + system, every thread


def measure_rss(command: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> Measured:
    """Run command; its wall time, and its own peak memory and CPU time through wait4. An
    exit status outside `ok` stops the bench."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in ok:
        raise SystemExit(
            f"failed ({process.returncode}): {' '.join(command)}\n{err.decode()[-3000:]}"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(wall, usage.ru_maxrss / 1024, out.decode(), cpu)


def ensure_model(model: str | None) -> Path:
    if model:
        return Path(model)
    folder = DEV_CACHE / "fullsize"
    if not (folder / "model.safetensors").exists():
        print(
            "building the full-size random checkpoint (scripts/make_fullsize_checkpoint.py)",
            file=sys.stderr,
        )
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "make_fullsize_checkpoint.py")], check=True
        )
    return folder


def pair_lengths(model: Path, pairs: Path, count: int) -> list[int]:
    """Tokens of each of the first count pairs, as squeezenli encodes them for this model."""
    from squeezenli.runtime.tokenizer import PairTokenizer, model_max_length

    config = json.loads((model / "config.json").read_text())
    present = {
        name: model / name for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
    }
    present = {name: path if path.exists() else None for name, path in present.items()}
    limit = model_max_length(present["tokenizer_config.json"], config["max_position_embeddings"])
    tokenizer = PairTokenizer.from_files(
        tokenizer_json=present["tokenizer.json"],
        vocab=present["vocab.txt"],
        tokenizer_config=present["tokenizer_config.json"],
        max_length=limit,
    )
    with open(pairs, "rb") as f:
        rows = [json.loads(line) for line in f if line.strip()][:count]
    encoded = tokenizer.encode([(r["premise"], r["hypothesis"]) for r in rows])
    return [len(e.ids) for e in encoded if not isinstance(e, str)]
