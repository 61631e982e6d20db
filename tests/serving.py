"""A real `squeezenli serve` for the tests: a subprocess on a free port of 127.0.0.1."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading

from conftest import run_env


class Server:
    """`squeezenli serve` in a subprocess on a free port; its stderr collected."""

    def __init__(self, model, *args: str) -> None:
        command = [sys.executable, "-m", "squeezenli", "serve", "-m", str(model), "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--precision", "fp32", *args],
            env=run_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        found = None
        for line in self.process.stderr:  # the line that names the port comes first
            self.lines.append(line)
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            if found or "error" in line:
                break
        assert found, "".join(self.lines)
        self.url = found[1]
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def post(self, path: str, body, **options):
        import httpx2 as httpx

        return httpx.post(self.url + path, json=body, timeout=60, **options)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self) -> int:
        """The exit code, once every line of stderr is read."""
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=30)
        return code

    def metric(self, name: str) -> float:
        """A value of the server's /metrics (the sum of its series)."""
        import httpx2 as httpx

        text = httpx.get(self.url + "/metrics", timeout=60).text
        found = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)]
        assert found, f"{name} not in /metrics"
        return sum(found)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])
