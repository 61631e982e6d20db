"""`squeezenli batch`: JSONL in, one JSON line out per input row, in order."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import run_env
from typer.testing import CliRunner

from squeezenli.cli.app import app
from squeezenli.runtime.model import load_model

runner = CliRunner()

ROWS = [
    {
        "id": 1,
        "premise": "A man plays a guitar.",
        "hypothesis": "A person makes music.",
        "extra": [1, 2],
    },
    {
        "id": 2,
        "premise": "The dog runs in the park and the cat sits on the red car.",
        "hypothesis": "No.",
    },
    {"id": 3, "premise": "A premise.", "hypothesis": "Another one."},
    {
        "id": 4,
        "premise": "Some people were eating food today.",
        "hypothesis": "The team lost the match.",
    },
]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_every_row_out_in_order_with_fields_kept(tiny_nli_model):
    result = runner.invoke(
        app,
        ["batch", "-m", str(tiny_nli_model), "--batch-size", "2", "--precision", "fp32"],
        input=_jsonl(ROWS),
    )
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in out] == [1, 2, 3, 4]
    assert out[0]["extra"] == [1, 2]
    nli = load_model(str(tiny_nli_model), precision="fp32")
    probs = nli.probabilities([(r["premise"], r["hypothesis"]) for r in ROWS])
    for row, p in zip(out, probs):
        assert row["prediction"] == nli.labels.names[int(p.argmax())]
        assert abs(row["scores"]["entailment"] - p[1]) < 1e-6


def test_file_argument_bom_crlf_and_blank_lines(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _jsonl(ROWS[:2]).replace("\n", "\r\n\r\n").encode())
    result = runner.invoke(app, ["batch", str(path), "-m", str(tiny_nli_model)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [1, 2]


def test_an_empty_or_blank_text_is_that_rows_error(tiny_nli_model):
    rows = [ROWS[0], {"premise": "", "hypothesis": "x"}, {"premise": "x", "hypothesis": " \t"}]
    args = ["batch", "-m", str(tiny_nli_model), "--precision", "fp32", "--on-error", "skip"]
    result = runner.invoke(app, args, input=_jsonl(rows))
    assert result.exit_code == 1, result.output
    assert len(result.stdout.splitlines()) == 1
    assert "<stdin>:2: field 'premise' is empty" in result.stderr
    assert "<stdin>:3: field 'hypothesis' is empty" in result.stderr


def test_custom_field_names(tiny_nli_model):
    rows = [{"s1": "A man plays.", "s2": "A man sleeps."}]
    args = ["batch", "-m", str(tiny_nli_model), "--premise-field", "s1", "--hypothesis-field", "s2"]
    result = runner.invoke(app, args, input=_jsonl(rows))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["s1"] == "A man plays."


def test_bad_rows_name_file_line_and_field(tiny_nli_model, tmp_path):
    path = tmp_path / "bad.jsonl"
    cases = [
        ('{"premise": "a"}', "bad.jsonl:2: missing field 'hypothesis'"),
        (
            '{"premise": "a", "hypothesis": null}',
            "bad.jsonl:2: field 'hypothesis' must be text, got null",
        ),
        (
            '{"premise": 3, "hypothesis": "b"}',
            "bad.jsonl:2: field 'premise' must be text, got a number",
        ),
        ("[1, 2]", "bad.jsonl:2: expected a JSON object, got a list"),
        ("{oops", "bad.jsonl:2: invalid JSON"),
    ]
    for line, message in cases:
        path.write_text(_jsonl(ROWS[:1]) + line + "\n")
        result = runner.invoke(app, ["batch", str(path), "-m", str(tiny_nli_model)])
        assert result.exit_code == 2, line
        assert message in result.stderr, (line, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_misspelt_field_in_json_lines_fails_once_with_a_suggestion(tiny_nli_model, tmp_path):
    """No row of the first window holds the field: a typo, refused as one line (the rows
    are not each reported); one row without it among rows with it is that row's error."""
    path = tmp_path / "pairs.jsonl"
    rows = [{"id": i, "premise": f"A dog {i}.", "hypothesis": "An animal."} for i in range(50)]
    path.write_text(_jsonl(rows))
    errors = tmp_path / "rejected.jsonl"
    args = ["batch", str(path), "-m", str(tiny_nli_model), "--errors", str(errors)]
    result = runner.invoke(app, [*args, "--premise-field", "premis"])
    assert result.exit_code == 2
    assert result.stdout == "" and errors.read_text() == ""
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("squeezenli: error:")]
    assert "none of the first 16 rows has a field 'premis' (did you mean 'premise'?)" in line
    assert "--premise-field" in line
    rows[3] = {"id": 3, "premis": "A dog.", "hypothesis": "An animal."}
    path.write_text(_jsonl(rows))
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    [rejected] = [json.loads(ln) for ln in errors.read_text().splitlines()]
    assert rejected["line"] == 4
    assert "missing field 'premise' (did you mean 'premis'?)" in rejected["error"]


def test_missing_file_is_an_input_error(tiny_nli_model, tmp_path):
    result = runner.invoke(app, ["batch", str(tmp_path / "nope.jsonl"), "-m", str(tiny_nli_model)])
    assert result.exit_code == 2
    assert "cannot open" in result.stderr


def test_empty_input_gives_no_output(tiny_nli_model):
    result = runner.invoke(app, ["batch", "-m", str(tiny_nli_model)], input="")
    assert result.exit_code == 0 and result.stdout == ""


def test_a_real_pipeline(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(_jsonl(ROWS * 50))
    cmd = f"cat {path} | {sys.executable} -m squeezenli batch -m {tiny_nli_model} | head -1"
    result = subprocess.run(
        cmd, shell=True, capture_output=True, text=True, env=run_env(), timeout=120
    )
    assert json.loads(result.stdout)["id"] == 1
    assert "Traceback" not in result.stderr
