"""`squeezenli serve` under 1 and 16 concurrent clients sending 1 and 16 pairs a request,
beside the same pairs scored in-process and by `batch` (not a test; prints figures).

    python bench/serve.py [--model DIR] [--precision fp32] [--pairs FILE] [--seconds 10]

First times `nli.probabilities(pairs)` in this process for requests of 1 and 16 pairs (the
model's own cost, p50/p99), then frees the model and starts the server on a free loopback
port; for each of 1 and 16 clients and 1 and 16 pairs a request it sends POST /predict
requests (pairs taken in turn from the pairs file) for `--seconds`, and prints requests/s,
pairs/s, p50/p99 latency and, for one client, p50 over the in-process p50. Last it times
`squeezenli batch` on the pairs the clients sent, in a fresh process (start-up excluded: its
summary's own time), and prints each load's pairs/s as a share of it. Model: the full-size
random stand-in by default (bench/run.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import squeezenli_command, start_server  # noqa: E402
from long_rows import cpu_name  # noqa: E402
from run import DEFAULT_PAIRS, ensure_model  # noqa: E402


def load(url: str, pairs: list[list[str]], clients: int, per: int, seconds: float):
    import httpx2 as httpx  # huggingface_hub's client, installed with squeezenli

    latencies: list[float] = []
    sent: list[list[str]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        turn = number * 97
        with httpx.Client(timeout=120) as session:
            while time.monotonic() < stop:
                chosen = [pairs[(turn + i) % len(pairs)] for i in range(per)]
                turn += per * clients
                started = time.perf_counter()
                answer = session.post(url + "/predict", json={"inputs": chosen, "truncate": True})
                answer.raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - started)
                    sent.extend(chosen)

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return latencies, sent, time.perf_counter() - began


def in_process(model: Path, precision: str, pairs: list[list[str]], per: int, seconds: float):
    """Latencies of nli.probabilities on `per` pairs at a time, taken in turn, in this process."""
    from squeezenli import load_model

    nli = load_model(str(model), precision=precision)
    chosen = [tuple(pair) for pair in pairs]
    for i in range(20):  # warm up
        nli.probabilities(chosen[i * per % len(chosen) :][:per])
    latencies, turn, stop = [], 0, time.monotonic() + seconds
    while time.monotonic() < stop:
        batch = [chosen[(turn + i) % len(chosen)] for i in range(per)]
        turn += per
        started = time.perf_counter()
        nli.probabilities(batch)
        latencies.append(time.perf_counter() - started)
    return latencies


def batch_speed(model: Path, precision: str, pairs: list[list[str]]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        path.write_text(
            "".join(json.dumps({"premise": p, "hypothesis": h}) + "\n" for p, h in pairs)
        )
        command = [*squeezenli_command(), "batch", str(path), "-m", str(model)]
        done = subprocess.run(
            [*command, "--precision", precision], capture_output=True, text=True, check=True
        )
    seconds = float(re.search(r"([\d.]+) s", done.stderr.splitlines()[-1])[1])
    return len(pairs) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    model = ensure_model(args.model)
    rows = [json.loads(line) for line in args.pairs.read_text().splitlines() if line.strip()]
    pairs = [[row["premise"], row["hypothesis"]] for row in rows]
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs; model {model}, {args.precision}; "
        f"{args.seconds:g} s each"
    )
    sizes = (1, 16)
    own: dict[int, float] = {}
    for per in sizes:
        cuts = statistics.quantiles(
            in_process(model, args.precision, pairs, per, args.seconds), n=100
        )
        own[per] = cuts[49]
        print(
            f"in-process, {per:>2} pair(s): p50 {cuts[49] * 1e3:6.1f} ms, "
            f"p99 {cuts[98] * 1e3:6.1f} ms"
        )
    process, url = start_server(model, args.precision)
    every: list[list[str]] = []
    rates: list[tuple[str, float]] = []
    try:
        load(url, pairs, 1, 1, 2.0)  # warm up
        for clients in (1, 16):
            for per in sizes:
                latencies, sent, elapsed = load(url, pairs, clients, per, args.seconds)
                every.extend(sent)
                cuts = statistics.quantiles(latencies, n=100)
                name = f"{clients:>2} client(s), {per:>2} pair(s) a request"
                rates.append((name, len(sent) / elapsed))
                against = f", {cuts[49] / own[per]:.2f}x in-process" if clients == 1 else ""
                print(
                    f"{name}: {len(latencies) / elapsed:7.1f} requests/s, "
                    f"{len(sent) / elapsed:7.1f} pairs/s, p50 {cuts[49] * 1e3:6.1f} ms, "
                    f"p99 {cuts[98] * 1e3:6.1f} ms{against}"
                )
    finally:
        process.terminate()
        process.wait()
    speed = batch_speed(model, args.precision, every)
    print(f"batch on the {len(every)} pairs sent: {speed:7.1f} pairs/s")
    for name, rate in rates:
        print(f"{name}: {rate / speed:.0%} of batch's pairs/s")


if __name__ == "__main__":
    main()
