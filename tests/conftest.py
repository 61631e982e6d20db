"""Shared fixtures. Everything here is offline: models are built by the tests, downloads go
to a hub-like server on 127.0.0.1, and the Hugging Face cache is a temporary folder."""

from __future__ import annotations

import json
import os
import shutil
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

from tinymodel import write_tiny_model  # noqa: E402

FIXTURES = HERE / "fixtures"
NLI_ORDER = "contradiction,entailment,neutral"


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
    folder = write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-nli")
    config = json.loads((folder / "config.json").read_text())
    names = NLI_ORDER.split(",")
    config["id2label"] = {str(i): n for i, n in enumerate(names)}
    config["label2id"] = {n: i for i, n in enumerate(names)}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


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
