"""`squeezenli batch`: CSV/TSV in and out, field fallbacks, --on-error skip, streaming."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time

from conftest import run_env
from typer.testing import CliRunner

from squeezenli.cli.app import app

runner = CliRunner()


def _batch(model, *args, input=None):
    return runner.invoke(app, ["batch", "-m", str(model), *args], input=input)


def test_csv_with_quoted_newlines_and_quotes(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(
        'id,premise,hypothesis\n1,"A man, ""quoted""\nover two lines",A person.\n2,a,b\n'
    )
    result = _batch(tiny_nli_model, str(path))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["1", "2"]
    assert rows[0]["premise"] == 'A man, "quoted"\nover two lines'


def test_tsv_and_sentence1_sentence2_fallback(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("sentence1\tsentence2\nA dog runs.\tAn animal moves.\n")
    result = _batch(tiny_nli_model, str(path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sentence1"] == "A dog runs."


def test_missing_columns_are_listed(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("a,b\n1,2\n")
    result = _batch(tiny_nli_model, str(path))
    assert result.exit_code == 2
    assert "columns present: a, b" in result.stderr


def test_duplicate_columns_are_an_error(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("premise,premise,hypothesis\n1,2,3\n")
    result = _batch(tiny_nli_model, str(path))
    assert result.exit_code == 2 and "duplicate column names: premise" in result.stderr


def test_csv_output_has_a_column_per_class(tiny_nli_model):
    result = _batch(
        tiny_nli_model, "--output", "csv", input='{"id": 1, "premise": "a", "hypothesis": "b"}\n'
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == [
        "id",
        "premise",
        "hypothesis",
        "prediction",
        "entailment",
        "neutral",
        "contradiction",
        "truncated",
    ]
    assert rows[0]["truncated"] == "false"
    total = sum(float(rows[0][c]) for c in ("entailment", "neutral", "contradiction"))
    assert abs(total - 1) < 1e-5


def test_table_output(tiny_nli_model):
    result = _batch(
        tiny_nli_model, "-o", "table", input='{"premise": "a dog", "hypothesis": "a cat"}\n'
    )
    assert result.exit_code == 0, result.output
    assert "a dog" in result.stdout and "prediction" in result.stdout


LINES = [
    '{"id": 1, "premise": "a", "hypothesis": "b"}',
    "{broken",
    '{"id": 3, "premise": "a"}',
    '{"id": 4, "premise": "c", "hypothesis": "d"}',
    "7",
]


def test_skip_reports_bad_rows_and_scores_the_rest(tiny_nli_model):
    result = _batch(tiny_nli_model, "--on-error", "skip", input="\n".join(LINES) + "\n")
    assert result.exit_code == 1
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [1, 4]
    for where in (
        "<stdin>:2: invalid JSON",
        "<stdin>:3: missing field 'hypothesis'",
        "<stdin>:5: expected a JSON object",
    ):
        assert where in result.stderr
    assert "2 rows scored, 3 failed" in result.stderr


def test_skip_to_an_errors_file(tiny_nli_model, tmp_path):
    errors = tmp_path / "errors.jsonl"
    result = _batch(
        tiny_nli_model, "--on-error", "skip", "--errors", str(errors), input="\n".join(LINES)
    )
    assert result.exit_code == 1
    logged = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [e["line"] for e in logged] == [2, 3, 5]
    assert logged[1]["row"] == {"id": 3, "premise": "a"}
    assert len(result.stdout.splitlines()) + len(logged) == len(LINES)


def test_fail_stops_at_the_first_bad_row(tiny_nli_model):
    result = _batch(tiny_nli_model, input="\n".join(LINES))
    assert result.exit_code == 2
    assert "<stdin>:2: invalid JSON" in result.stderr


def test_bad_choices_are_usage_errors(tiny_nli_model):
    assert _batch(tiny_nli_model, "--output", "xml", input="").exit_code == 2
    assert _batch(tiny_nli_model, "--on-error", "ignore", input="").exit_code == 2


def test_several_files_in_order(tiny_nli_model, tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "a", "premise": "x", "hypothesis": "y"}\n')
    (tmp_path / "b.csv").write_text("id,premise,hypothesis\nb,x,y\n")
    result = _batch(tiny_nli_model, str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv"))
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["a", "b"]


def test_a_slow_producer_gets_results_while_its_input_is_open(tiny_nli_model):
    proc = subprocess.Popen(
        [sys.executable, "-m", "squeezenli", "batch", "-m", str(tiny_nli_model), "-q"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=run_env(),
    )
    try:
        proc.stdin.write(b'{"id": 1, "premise": "a", "hypothesis": "b"}\n')
        proc.stdin.flush()
        first = proc.stdout.readline()  # blocks until the row is scored; input still open
        assert json.loads(first)["id"] == 1
        assert proc.poll() is None
        proc.stdin.write(b'{"id": 2, "premise": "c", "hypothesis": "d"}\n')
        proc.stdin.close()
        assert json.loads(proc.stdout.readline())["id"] == 2
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        time.sleep(0)


def test_a_table_prints_in_parts_while_the_input_is_still_open(tiny_nli_model):
    """The first 32 rows print as a table of their own before the input ends: `| head`
    answers without waiting for the whole file."""
    process = subprocess.Popen(
        [sys.executable, "-m", "squeezenli", "batch", "-m", str(tiny_nli_model), "-o", "table"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=run_env(COLUMNS="100"),
    )
    assert process.stdin is not None and process.stdout is not None
    guard = threading.Timer(120, process.kill)  # a table that waits for the end never comes
    guard.start()
    try:
        for i in range(32):
            process.stdin.write(json.dumps({"premise": f"row {i}", "hypothesis": "b"}).encode())
            process.stdin.write(b"\n")
        process.stdin.flush()
        first: list[str] = []
        while not first or not first[-1].startswith("└"):  # the input is still open here
            line = process.stdout.readline().decode()
            assert line, process.stderr.read().decode() if process.stderr else ""
            first.append(line)
        assert sum("│ row " in line for line in first) == 32
        process.stdin.write(b'{"premise": "row 32", "hypothesis": "b"}\n')
        process.stdin.close()
        rest = process.stdout.read().decode()
        assert process.wait(timeout=120) == 0
    finally:
        guard.cancel()
        process.kill()
    assert rest.count("prediction") == 1 and "│ row 32" in rest


def test_a_header_another_delimiter_would_split_says_which(tiny_nli_model, tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("premise;hypothesis\na dog;an animal\n")
    for extra in ([], ["--premise-field", "premise"]):
        result = _batch(tiny_nli_model, str(path), *extra)
        assert result.exit_code == 2
        assert "columns present: premise;hypothesis; is it ';'-separated? give --delimiter ';'" in (
            result.stderr
        )
    fixed = _batch(tiny_nli_model, str(path), "--delimiter", ";")
    assert fixed.exit_code == 0 and json.loads(fixed.stdout)["premise"] == "a dog"
