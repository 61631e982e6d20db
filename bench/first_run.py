"""A first run as a newcomer meets it: download, build, measure, then one pair (not a test).

    python bench/first_run.py [--model DIR] [--precision auto]

Serves DIR (default: the full-size random stand-in, scripts/make_fullsize_checkpoint.py) from
the tests' hub-like server on 127.0.0.1, runs `squeezenli PREMISE HYPOTHESIS --json` once
with an empty Hugging Face cache, and prints, naming the CPU: the wall time and when each
progress line came (download, build, quantize, measure), the peak memory, then what the
cache holds file by file, and a second run's time (everything cached).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import squeezenli_command  # noqa: E402
from hubserver import HubServer, folder_files  # noqa: E402
from run import PAIR, ensure_model  # noqa: E402

from squeezenli.models.int8_kernels import cpu_name  # noqa: E402

REPO = "bench/first-run"


def timed_run(command: list[str], env: dict[str, str]) -> tuple[float, float, list[str]]:
    """Wall time, peak MiB (wait4) and each stderr line with the second it came at."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            lines.append(f"{time.perf_counter() - started:6.1f} s  {raw.decode().rstrip()}")

    reader = threading.Thread(target=read)
    reader.start()
    assert process.stdout is not None
    process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    reader.join()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("\n".join(lines))
    return time.perf_counter() - started, usage.ru_maxrss / 1024, lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="a model folder [default: the full-size stand-in]")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    folder = ensure_model(args.model)
    files = {k: v for k, v in folder_files(folder).items() if k != "expected.jsonl"}
    with tempfile.TemporaryDirectory() as home, HubServer() as hub:
        hub.add_repo(REPO, files)
        env = {**os.environ, "HF_HOME": home, "HF_ENDPOINT": hub.endpoint}
        env.pop("HF_HUB_OFFLINE", None)
        command = [*squeezenli_command(), *PAIR, "--json", "-m", REPO]
        command += ["--precision", args.precision]
        wall, peak, lines = timed_run(command, env)
        print(f"{cpu_name()}; {folder} served on 127.0.0.1")
        print(f"first run: {wall:.1f} s, peak {peak:.0f} MiB; stderr as it came:")
        print("\n".join(lines))
        downloaded = sum(len(v) for v in files.values())
        print(f"downloaded {downloaded / 1e6:.1f} MB; the cache holds:")
        total = 0
        for path in sorted(Path(home).rglob("*")):
            if path.is_file() and not path.is_symlink():
                size = path.stat().st_size
                total += size
                if size >= 1 << 16:
                    print(f"  {size / 1e6:8.1f} MB  {path.relative_to(home)}")
        print(f"  {total / 1e6:8.1f} MB  in all (files under 64 KiB not listed)")
        wall, peak, _ = timed_run(command, env)
        print(f"second run: {wall:.2f} s, peak {peak:.0f} MiB")


if __name__ == "__main__":
    main()
