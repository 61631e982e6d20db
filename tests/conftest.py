"""Shared fixtures. Everything here is offline: models are built by the tests, downloads go
to a hub-like server on 127.0.0.1, and the Hugging Face cache is a temporary folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub (it reads the environment once, at import):
# a private cache, and an endpoint that refuses connections, so no test can reach the Hub.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="squeezenli-test-hf-")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("SQUEEZENLI_MODEL", None)
os.environ.pop("SQUEEZENLI_LABEL_ORDER", None)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pytest  # noqa: E402

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from hubserver import HubServer, folder_files  # noqa: E402
from tinymodel import name_labels, write_tiny_model  # noqa: E402

FIXTURES = HERE / "fixtures"


@pytest.fixture(params=["vnni", "no-vnni"])
def cpu_kind(request, tmp_path, monkeypatch) -> str:
    """Runs a test as on an x86 CPU with VNNI and as on one without (AVX2 only), whatever
    this one is: int8_kernels reads the CPU's flags from a file made here. onnxruntime's
    kernels stay this machine's; what changes is every choice squeezenli makes from them."""
    from squeezenli.models import int8_kernels

    flags = "fpu sse avx2 avx512f avx512_vnni" if request.param == "vnni" else "fpu sse avx2"
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"model name\t: Test CPU\nflags\t\t: {flags}\n")
    monkeypatch.setattr(int8_kernels, "CPUINFO", cpuinfo)
    monkeypatch.setattr(int8_kernels.platform, "machine", lambda: "x86_64")
    for cached in (int8_kernels.needs_exact_kernels, int8_kernels.cpu_name):
        cached.cache_clear()
    yield request.param
    for cached in (int8_kernels.needs_exact_kernels, int8_kernels.cpu_name):
        cached.cache_clear()


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads((FIXTURES / "golden.json").read_text())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random SqueezeBERT: config.json, vocab.txt, tokenizer_config.json, safetensors."""
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_nli_model(tmp_path_factory) -> Path:
    """The tiny model with NLI label names in its config, for commands that need them."""
    return name_labels(write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-nli"))


@pytest.fixture(scope="session")
def tiny_bin_model(tiny_model, tmp_path_factory) -> Path:
    """The same weights as pytorch_model.bin, saved by torch (tests/make_golden.py)."""
    folder = tmp_path_factory.mktemp("models") / "tiny-bin"
    shutil.copytree(tiny_model, folder)
    (folder / "model.safetensors").unlink()
    shutil.copy(FIXTURES / "tiny_pytorch_model.bin", folder / "pytorch_model.bin")
    return folder


def run_env(**extra: str) -> dict[str, str]:
    """The environment for a squeezenli subprocess: this test session's cache and endpoint."""
    env = dict(os.environ)
    env.update(extra)
    return env


def squeezenli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run squeezenli as a user's shell would, with extra environment variables."""
    return subprocess.run(
        [sys.executable, "-m", "squeezenli", *args],
        env=run_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_cli(
    args: list[str], text: str | None = None, stdin=None, **env: str
) -> subprocess.CompletedProcess:
    """squeezenli with these arguments, text (or the file stdin) on its stdin."""
    return subprocess.run(
        [sys.executable, "-m", "squeezenli", *args],
        env=run_env(**env),
        stdin=stdin,
        input=text,
        capture_output=True,
        text=True,
        timeout=180,
    )


def one_error(done: subprocess.CompletedProcess, code: int = 3) -> str:
    """The one error line of a finished run that had to end with `code`, no traceback."""
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("squeezenli: error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.fixture()
def hub(tiny_model, tmp_path):
    """A hub-like server holding acme/tiny-nli (main and refs/pr/3), and a fresh HF_HOME."""
    with HubServer() as server:
        files = folder_files(tiny_model)
        files["pytorch_model.bin"] = b"never fetched: safetensors is preferred"
        files["README.md"] = b"# never fetched either"
        server.add_repo("acme/tiny-nli", files, refs=("main", "refs/pr/3"))
        server.home = str(tmp_path / "hf-home")
        yield server
