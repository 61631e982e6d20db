"""Property tests: whatever the input, no unhandled exception, and every row is accounted
for: output rows + reported errors = input rows."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from squeezenli.cli.app import app
from squeezenli.records.readers import read_records
from squeezenli.runtime.model import load_model
from squeezenli.tasks.scoring import score_records

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
            assert outcome.error.source == "<input>" and outcome.error.line >= 1  # says where
            failed += 1
        else:
            assert set(outcome.output.scores) == {"entailment", "neutral", "contradiction"}
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
        and v["premise"].strip()
        and v["hypothesis"].strip()
        and _read(nli, v["premise"], v["hypothesis"])
    )
    assert scored == good


def _read(nli, premise: str, hypothesis: str) -> bool:
    """Whether the tokenizer gives the model something of both texts (one of control
    characters alone gives nothing: that row is an error, not scores of nothing)."""
    return not isinstance(nli.engine.tokenizer.encode([(premise, hypothesis)])[0], str)


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


# Hostile model files: whatever a config or a safetensors header says, the run ends with a
# documented exit code and at most one error line, never an unhandled exception.
CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "q_groups",
    "intermediate_groups",
    "output_groups",
    "num_labels",
    "id2label",
    "architectures",
    "hidden_act",
    "layer_norm_eps",
    "model_type",
    "embedding_size",
)
small_ints = st.integers(min_value=-3, max_value=70) | st.sampled_from([0, 10**9, 2**63])
config_edits = st.lists(
    st.tuples(st.sampled_from(CONFIG_KEYS), st.none() | small_ints | json_values),
    min_size=1,
    max_size=3,
)


def _score_folder(folder) -> None:
    result = runner.invoke(
        app,
        ["A man plays a guitar.", "Music.", "-m", str(folder), "--precision", "fp32"]
        + ["--label-order", "e,n,c", "--quiet"],
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 2, 3), result.output
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == (result.exit_code != 0), result.stderr


def _copy(folder, tmp_path_factory):
    import shutil

    target = tmp_path_factory.mktemp("mutant") / "model"
    shutil.copytree(folder, target)
    return target


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(config_edits)
def test_any_config_edit_ends_cleanly(tiny_model, tmp_path_factory, edits):
    folder = _copy(tiny_model, tmp_path_factory)
    config = json.loads((folder / "config.json").read_text())
    for key, value in edits:
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    _score_folder(folder)


header_edits = st.lists(
    st.tuples(
        st.sampled_from(["shape", "dtype", "data_offsets", "drop", "bytes"]),
        st.integers(min_value=0, max_value=10**6),
        st.lists(small_ints, max_size=3),
        st.sampled_from(["F32", "F16", "I64", "BOOL", "U8", "XX", ""]),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(header_edits)
def test_any_safetensors_header_edit_ends_cleanly(tiny_model, tmp_path_factory, edits):
    import struct

    folder = _copy(tiny_model, tmp_path_factory)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    names = sorted(k for k in header if k != "__metadata__")
    raw = None
    for kind, pick, numbers, dtype in edits:
        entry = header.get(names[pick % len(names)])
        if entry is None:
            continue
        if kind == "shape":
            entry["shape"] = numbers
        elif kind == "dtype":
            entry["dtype"] = dtype
        elif kind == "data_offsets":
            entry["data_offsets"] = (numbers + [pick, pick])[:2]
        elif kind == "drop":
            header.pop(names[pick % len(names)])
        else:
            encoded = bytearray(json.dumps(header).encode())
            encoded[pick % len(encoded)] ^= 1 + pick % 255
            raw = bytes(encoded)
    encoded = raw if raw is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + body)
    _score_folder(folder)


# CSV/TSV output: every field of every row appears, or the run refuses before writing.
field_names = st.sampled_from(["id", "a", "b c", "x,y", 'q"t', "tab\tin", "prediction", "é"])
extra_fields = st.dictionaries(field_names, st.text(max_size=8) | st.integers(), max_size=3)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(extra_fields, min_size=1, max_size=6), st.sampled_from(["csv", "tsv"]))
@example(extras=[{"id": "\r\n"}], fmt="csv")  # a quoted CRLF stays one
def test_delimited_output_keeps_every_field_or_refuses(
    tiny_nli_model, tmp_path_factory, extras, fmt
):
    import csv

    path = tmp_path_factory.mktemp("rows") / "rows.jsonl"
    rows = [{"premise": "A man plays.", "hypothesis": "Music.", **extra} for extra in extras]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(
        app, ["batch", str(path), "-m", str(tiny_nli_model), "--output", fmt, "--quiet"]
    )
    if any("prediction" in r for r in rows):
        assert result.exit_code == 2 and result.stdout == "", result.output
        return
    assert result.exit_code == 0, result.output
    stdout = result.stdout_bytes.decode()  # .stdout turns every \r\n into \n, quoted ones too
    if fmt == "csv":
        table = list(csv.DictReader(io.StringIO(stdout, newline="")))
    else:
        header, *lines = stdout.rstrip("\n").split("\n")  # not splitlines: \x1e
        names = [_unescape(h) for h in header.split("\t")]
        table = [dict(zip(names, (_unescape(c) for c in line.split("\t")))) for line in lines]
    assert len(table) == len(rows)
    for row, out in zip(rows, table):
        for name, value in row.items():
            assert out[name] == str(value), (name, out)


def _unescape(cell: str) -> str:
    import re

    return re.sub(r"\\([tnr\\])", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m[1], "\\"), cell)
