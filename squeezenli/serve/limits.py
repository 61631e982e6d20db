"""What a server lets one request ask for, and how long a client waits: the numbers the CLI's
serving and --server options take their defaults from, in a module of their own so that a
command's start imports these and not the request decoders (serve/requests.py)."""

from __future__ import annotations

from dataclasses import dataclass

# How long a client (--server, serve.client.Remote) waits to connect and for each whole answer.
CLIENT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, and how many may be in flight (each refusal names its
    limit, as `squeezenli serve` names the flag)."""

    max_body_bytes: int = 2 << 20  # --max-body-bytes
    max_batch: int = 256  # --max-batch: pairs (texts x labels for zero-shot) per request
    max_concurrent: int = 64  # --max-concurrent: requests in flight, 429 past it
    timeout_s: float = 60.0  # --timeout: seconds a request may take, 503 past it
