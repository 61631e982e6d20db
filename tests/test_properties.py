"""Property tests: whatever the input, no unhandled exception, and every row is accounted
for: output rows + reported errors = input rows."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from squeezenli.cli import app
from squeezenli.io import read_records
from squeezenli.model import load_model
from squeezenli.scoring import score_records

runner = CliRunner()
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
rows = st.one_of(
    json_values,
    st.fixed_dictionaries({"premise": json_values, "hypothesis": json_values}),
    st.fixed_dictionaries({"premise": st.text(), "hypothesis": st.text()}),
)


@pytest.fixture(scope="module")
def nli(tiny_nli_model):
    return load_model(str(tiny_nli_model), precision="fp32", batch_size=4)


def _expected_rows(data: bytes) -> int:
    lines = data.split(b"\n")
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    return sum(1 for line in lines if line.strip())


def _account(nli, data: bytes, fmt: str = "jsonl") -> tuple[int, int]:
    outcomes = score_records(
        nli,
        read_records(io.BytesIO(data), "<input>", fmt),
        premise_field="premise",
        hypothesis_field="hypothesis",
        on_error="skip",
    )
    scored = failed = 0
    for outcome in outcomes:
        if outcome.error:
            assert outcome.error.startswith("<input>:")  # says where
            failed += 1
        else:
            assert set(outcome.prediction.scores) == {"entailment", "neutral", "contradiction"}
            scored += 1
    return scored, failed


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_are_all_accounted_for(nli, data):
    scored, failed = _account(nli, data)
    assert scored + failed == _expected_rows(data)


@SETTINGS
@given(st.lists(rows, max_size=12))
def test_random_json_values_are_all_accounted_for(nli, values):
    data = "".join(json.dumps(v) + "\n" for v in values).encode()
    scored, failed = _account(nli, data)
    assert scored + failed == len(values)
    good = sum(
        1
        for v in values
        if isinstance(v, dict)
        and isinstance(v.get("premise"), str)
        and isinstance(v.get("hypothesis"), str)
    )
    assert scored == good


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_the_cli_never_shows_a_traceback(tiny_nli_model, data):
    result = runner.invoke(
        app,
        ["batch", "-m", str(tiny_nli_model), "--on-error", "skip", "--premise-field", "premise"]
        + ["--hypothesis-field", "hypothesis"],
        input=data,
    )
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.stderr
    skipped = result.stderr.count("squeezenli: skipped ")
    assert len(result.stdout.splitlines()) + skipped == _expected_rows(data)


def test_a_one_megabyte_line_is_truncated_and_scored(nli):
    premise = "word " * 200_000
    data = json.dumps({"premise": premise, "hypothesis": "Words."}).encode() + b"\n"
    assert len(data) > 1_000_000
    assert _account(nli, data) == (1, 0)
