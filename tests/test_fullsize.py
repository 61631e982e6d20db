"""`squeezenli batch` on a full-size checkpoint equals transformers within 1e-4.

Runs when scripts/make_fullsize_checkpoint.py has built the checkpoint (real config, random
weights, bert-base-uncased vocabulary, reference probabilities on real MNLI pairs, short and
over-long); skipped otherwise. Set SQUEEZENLI_FULLSIZE_DIR to use another folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_env

FOLDER = Path(
    os.environ.get(
        "SQUEEZENLI_FULLSIZE_DIR", Path.home() / ".cache" / "squeezenli-dev" / "fullsize"
    )
)

pytestmark = pytest.mark.skipif(
    not (FOLDER / "expected.jsonl").exists(), reason=f"no full-size checkpoint in {FOLDER}"
)


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_batch_matches_transformers_on_real_pairs(source):
    expected_path = FOLDER / "expected.jsonl"
    args = [sys.executable, "-m", "squeezenli", "batch", "-m", str(FOLDER), "--quiet"]
    args += ["--precision", "fp32"]
    if source == "file":
        result = subprocess.run(
            [*args, str(expected_path)], capture_output=True, text=True, env=run_env(), timeout=600
        )
    else:
        result = subprocess.run(
            args,
            input=expected_path.read_text(),
            capture_output=True,
            text=True,
            env=run_env(),
            timeout=600,
        )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(expected_path.read_text().splitlines())
    assert any(r["glue_idx"] < 0 for r in rows), "the over-long pairs are part of the check"
    worst = 0.0
    for row in rows:
        ours = [row["scores"][f"LABEL_{i}"] for i in range(3)]
        worst = max(worst, *(abs(a - b) for a, b in zip(ours, row["reference_probabilities"])))
    assert worst < 1e-4, worst
