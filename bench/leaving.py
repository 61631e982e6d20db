"""How fast a server frees the slot of a client that leaves: a heavy /score request is sent
whole once (its full time), then again from a raw socket that resets a third of the way in;
prints how long after the reset an honest one-pair request is answered (--max-concurrent 1,
so it waits for that slot), and how many of the heavy request's pairs were scored.

    python bench/leaving.py --model /path/to/model --pairs 20000
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
import urllib.request

from common import ensure_model, start_server


def _post(url: str, body: dict) -> int:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def _pairs_scored(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=60) as answer:
        text = answer.read().decode()
    return sum(
        float(x.split()[-1]) for x in text.splitlines() if x.startswith("squeezenli_pairs_total")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    model = ensure_model(args.model)
    limits = ["--max-concurrent", "1", "--max-batch", str(args.pairs), "--timeout", "3600"]
    server, url = start_server(model, args.precision, *limits, "--max-body-bytes", str(1 << 30))
    port = int(url.rsplit(":", 1)[1])
    pairs = [
        [f"A man number {i} plays a guitar on a big stage.", "Music."] for i in range(args.pairs)
    ]
    body = json.dumps({"pairs": pairs}).encode()
    try:
        started = time.perf_counter()
        assert _post(url + "/score", {"pairs": pairs}) == 200
        whole = time.perf_counter() - started
        before = _pairs_scored(url)
        client = socket.create_connection(("127.0.0.1", port))
        head = f"POST /score HTTP/1.1\r\nhost: bench\r\ncontent-length: {len(body)}\r\n\r\n"
        client.sendall(head.encode() + body)
        time.sleep(whole / 3)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        reset = time.perf_counter()
        refused = 0
        while _post(url + "/score", {"pairs": [pairs[0]]}) == 429:
            refused += 1
            time.sleep(0.005)
        freed = time.perf_counter() - reset
        scored = _pairs_scored(url) - before - 1
    finally:
        server.terminate()
        server.wait(60)
    print(f"model {model}, {args.precision}, {args.pairs} pairs a request")
    print(f"whole request: {whole:.2f} s; reset at {whole / 3:.2f} s")
    print(f"honest request answered {freed * 1e3:.0f} ms after the reset ({refused} refused 429)")
    print(f"pairs of the reset request scored: {scored:.0f} of {args.pairs}")


if __name__ == "__main__":
    sys.exit(main())
