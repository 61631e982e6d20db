"""Peak memory and wall time of `batch` on huge rows (not a test).

    python bench/long_rows.py [--model DIR] [--precision fp32] [--long-input chunk]

Writes two JSON-lines files of the shapes the hostile round measured (four 8 MiB lines; one
15.9 MiB line) and runs `squeezenli batch` on each in a fresh process, printing its wall time
and peak resident memory (wait4). Long texts are tokenized a piece at a time and windows end
at WINDOW_CHARS characters, so both stay near the memory of a run on short rows. Default
model: the full-size random checkpoint (bench/run.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ensure_model, measure_rss  # noqa: E402

SENTENCE = "A man plays a guitar on stage while the crowd sings along. "
SHAPES = {"4 lines of 8 MiB": (4, 8 * 2**20), "1 line of 15.9 MiB": (1, int(15.9 * 2**20))}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--long-input", default="truncate")
    args = parser.parse_args()
    model = ensure_model(args.model)
    env = dict(os.environ)
    command = [sys.executable, "-m", "squeezenli", "batch", "-m", str(model), "-q"]
    command += ["--precision", args.precision, "--long-input", args.long_input]
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs; model {model}, {args.precision}, {args.long_input}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        short = Path(tmp) / "short.jsonl"
        short.write_text(json.dumps({"premise": SENTENCE, "hypothesis": "Music."}) + "\n")
        measure_rss([*command, str(short)], env)  # builds the model once, outside the figures
        for name, (lines, chars) in {"1 short line": (1, len(SENTENCE)), **SHAPES}.items():
            path = Path(tmp) / "rows.jsonl"
            text = SENTENCE * max(1, chars // len(SENTENCE))
            row = json.dumps({"premise": text, "hypothesis": "Music is played."}) + "\n"
            path.write_text(row * lines)
            run = measure_rss([*command, str(path)], env)
            size = path.stat().st_size / 2**20
            figures = f"{run.wall:5.2f} s, peak {run.peak_mib:5.0f} MiB"
            print(f"{name:>20}: {size:6.1f} MiB in, {figures}")


if __name__ == "__main__":
    main()
