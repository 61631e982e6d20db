"""Sinks that know the schema (issue 14): every input field of every row reaches the output
or the run refuses; result fields never overwrite input fields; TSV stays one line a row."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from squeezenli.cli.app import app

runner = CliRunner()


def _batch(model, *args: str, input: str | None = None):
    return runner.invoke(
        app, ["batch", *args, "-m", str(model), "--precision", "fp32"], input=input
    )


def test_csv_output_has_every_column_of_every_input(tiny_nli_model, tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("id,premise,hypothesis\n1,A man plays.,Music.\n")
    b = tmp_path / "b.tsv"
    b.write_text(
        "index\tsentence1\tsentence2\tgold_label\n7\tA dog runs.\tAn animal.\tentailment\n"
    )
    c = tmp_path / "c.jsonl"
    c.write_text(
        json.dumps({"premise": "P.", "hypothesis": "H."})
        + "\n"
        + json.dumps({"premise": "P2.", "hypothesis": "H2.", "late": [1, 2]})
        + "\n"
    )
    result = _batch(tiny_nli_model, str(a), str(b), str(c), "--output", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == [
        "id",
        "premise",
        "hypothesis",
        "index",
        "sentence1",
        "sentence2",
        "gold_label",
        "late",
        "prediction",
        "entailment",
        "neutral",
        "contradiction",
        "truncated",
    ]
    texts = [r["premise"] or r["sentence1"] for r in rows]
    assert texts == ["A man plays.", "A dog runs.", "P.", "P2."]
    assert rows[1]["gold_label"] == "entailment" and rows[1]["index"] == "7"
    assert rows[3]["late"] == "[1,2]" and rows[2]["late"] == ""


def test_csv_output_keeps_fields_that_only_later_rows_have(tiny_nli_model, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"premise": "A.", "hypothesis": "B."})
        + "\n"
        + json.dumps({"premise": "C.", "hypothesis": "D.", "id": 12345678901234567890123})
        + "\n"
    )
    result = _batch(tiny_nli_model, str(path), "--output", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == ["", "12345678901234567890123"]


def test_a_new_field_on_stdin_after_the_header_is_refused_not_dropped(tiny_nli_model):
    data = (
        json.dumps({"premise": "A.", "hypothesis": "B."})
        + "\n"
        + json.dumps({"premise": "C.", "hypothesis": "D.", "id": 3})
        + "\n"
    )
    result = _batch(tiny_nli_model, "--output", "csv", input=data)
    assert result.exit_code == 2
    assert "field(s) id are not in the header" in result.stderr


def test_result_fields_never_overwrite_input_fields(tiny_nli_model):
    scored = _batch(
        tiny_nli_model, input=json.dumps({"premise": "A man.", "hypothesis": "Music."}) + "\n"
    )
    assert scored.exit_code == 0
    again = _batch(tiny_nli_model, input=scored.stdout)
    assert again.exit_code == 2
    assert "<stdin>:1: input field 'prediction' would be overwritten" in again.stderr
    assert again.stdout == ""
    prefixed = _batch(tiny_nli_model, "--prefix", "m2_", input=scored.stdout)
    assert prefixed.exit_code == 0, prefixed.output
    row = json.loads(prefixed.stdout)
    first = json.loads(scored.stdout)
    assert row["prediction"] == first["prediction"] and row["scores"] == first["scores"]
    assert set(row["m2_scores"]) == set(first["scores"])


def test_a_csv_column_named_like_a_class_is_not_overwritten(tiny_nli_model, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("premise,hypothesis,entailment\nA.,B.,gold\n")
    refused = _batch(tiny_nli_model, str(path), "--output", "csv")
    assert refused.exit_code == 2
    assert "input field 'entailment' would be overwritten" in refused.stderr
    assert refused.stdout == ""
    renamed = _batch(tiny_nli_model, str(path), "--output", "csv", "--prefix", "p_")
    row = next(csv.DictReader(io.StringIO(renamed.stdout)))
    assert row["entailment"] == "gold" and float(row["p_entailment"]) > 0


def test_tsv_output_is_one_line_per_row(tiny_nli_model):
    data = json.dumps({"premise": "Tab\there.", "hypothesis": "New\nline \\ slash."}) + "\n"
    result = _batch(tiny_nli_model, "--output", "tsv", input=data)
    assert result.exit_code == 0, result.output
    header, line = result.stdout.splitlines()
    cells = line.split("\t")
    assert len(cells) == len(header.split("\t"))
    assert cells[0] == "Tab\\there." and cells[1] == "New\\nline \\\\ slash."


def test_output_fields_rename_the_results_fields(tiny_nli_model):
    data = json.dumps({"premise": "A man.", "hypothesis": "Music.", "prediction": "old"}) + "\n"
    renamed = _batch(tiny_nli_model, "--output-fields", "prediction=label,scores=probs", input=data)
    assert renamed.exit_code == 0, renamed.output
    row = json.loads(renamed.stdout)
    assert row["prediction"] == "old" and row["label"] in row["probs"]
    as_csv = _batch(
        tiny_nli_model,
        "--output",
        "csv",
        "--output-fields",
        "entailment=p_e",
        input=data.replace(', "prediction": "old"', ""),
    )
    assert as_csv.exit_code == 0, as_csv.output
    assert (
        as_csv.stdout.splitlines()[0]
        == "premise,hypothesis,prediction,p_e,neutral,contradiction,truncated"
    )
    wrong = _batch(tiny_nli_model, "--output-fields", "label=x", input=data)
    assert wrong.exit_code == 2
    assert "--output-fields renames the result's fields" in wrong.stderr
