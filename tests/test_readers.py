"""Honest readers (issue 14): exact line numbers, the rows before a bad one written, encodings,
CSV quoting errors where they open, TSV as GLUE writes it, gzip, delimiters, headerless
files, raw lines kept for rejects, integers of any width, inputs checked before work."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from squeezenli.cli.app import app

runner = CliRunner()


def _batch(model, *args: str, input: bytes | None = None):
    return runner.invoke(
        app, ["batch", *args, "-m", str(model), "--precision", "fp32"], input=input
    )


def _rows(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def _csv(rows: int, bad_line: int | None = None) -> bytes:
    lines = [b"id,premise,hypothesis"]
    for i in range(1, rows + 1):
        premise = f"A man plays guitar number {i}.".encode()
        if i + 1 == bad_line:
            premise = b"Caf\xe9 music."  # latin-1
        lines.append(b"%d,%s,Music." % (i, premise))
    return b"\n".join(lines) + b"\n"


def test_a_bad_byte_is_named_at_its_line_and_the_rows_before_it_are_written(
    tiny_nli_model, tmp_path
):
    path = tmp_path / "pairs.csv"
    path.write_bytes(_csv(200, bad_line=151))
    failed = _batch(tiny_nli_model, str(path))
    assert failed.exit_code == 2
    assert [r["id"] for r in _rows(failed)] == [str(i) for i in range(1, 150)]
    assert f"{path}:151: not valid utf-8" in failed.stderr
    assert "pass it as --encoding, e.g. latin-1" in failed.stderr
    skipped = _batch(tiny_nli_model, str(path), "--on-error", "skip")
    assert skipped.exit_code == 1
    assert len(_rows(skipped)) == 199
    latin = _batch(tiny_nli_model, str(path), "--encoding", "latin-1")
    assert latin.exit_code == 0, latin.output
    assert _rows(latin)[149]["premise"] == "Café music."


def test_an_unclosed_quote_is_an_error_where_it_opens(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('premise,hypothesis\nA,B\nC,D\nE,F\n"G opens,H\nI,J\nK,L\n', encoding="utf-8")
    result = _batch(tiny_nli_model, str(path))
    assert result.exit_code == 2
    assert [r["premise"] for r in _rows(result)] == ["A", "C", "E"]
    assert f"{path}:5: a quote opened on this line is never closed" in result.stderr


def test_a_csv_field_longer_than_128_kib_is_read(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(f'premise,hypothesis\n"{"word " * 60_000}",Words.\nA,B\n')
    result = _batch(tiny_nli_model, str(path))
    assert result.exit_code == 0, result.output
    assert len(_rows(result)) == 2


def test_tsv_is_read_as_glue_writes_it(tiny_nli_model, tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text(
        "index\tsentence1\tsentence2\tgold_label\n"
        '0\t"Quoted" at the start.\tHe said "no.\tneutral\n'
        "1\tA line with a \\t tab escape.\tB\\\\C\tentailment\n"
        '2\tplain "quote" inside\t"\tcontradiction\n'
        "3\tLast.\tOne.\tneutral\n"
    )
    result = _batch(tiny_nli_model, str(path))
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    assert [r["index"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[0]["sentence1"] == '"Quoted" at the start.'
    assert rows[0]["sentence2"] == 'He said "no.'
    assert rows[1]["sentence1"] == "A line with a \t tab escape."
    assert rows[1]["sentence2"] == "B\\C"
    assert rows[2]["sentence2"] == '"'


def test_a_wrong_explicit_field_fails_the_source_once(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("premise,hypothesis\nA,B\nC,D\n")
    result = _batch(tiny_nli_model, str(path), "--premise-field", "premis", "--on-error", "skip")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("error:") == 1
    assert "no field 'premis' (did you mean 'premise'?); columns present: premise, hypothesis" in (
        result.stderr
    )


def test_errors_naming_an_input_file_is_refused(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"premise": "A", "hypothesis": "B"}) + "\n")
    before = path.read_bytes()
    result = _batch(tiny_nli_model, str(path), "--on-error", "skip", "--errors", str(path))
    assert result.exit_code == 2
    assert "is one of the input files" in result.stderr
    assert path.read_bytes() == before


def test_a_missing_input_is_named_before_the_model_is_looked_for(tmp_path):
    result = runner.invoke(app, ["batch", str(tmp_path / "nope.jsonl"), "-m", "acme/absent"])
    assert result.exit_code == 2
    assert "nope.jsonl: no such file" in result.stderr


def test_gzip_input_by_extension(tiny_nli_model, tmp_path):
    rows = [{"premise": f"A man plays {i}.", "hypothesis": "Music."} for i in range(5)]
    text = "".join(json.dumps(r) + "\n" for r in rows).encode()
    plain, packed = tmp_path / "p.jsonl", tmp_path / "p.jsonl.gz"
    plain.write_bytes(text)
    packed.write_bytes(gzip.compress(text))
    assert _batch(tiny_nli_model, str(packed)).stdout == _batch(tiny_nli_model, str(plain)).stdout
    damaged = tmp_path / "d.jsonl.gz"
    damaged.write_bytes(gzip.compress(text)[:-12])
    result = _batch(tiny_nli_model, str(damaged))
    assert result.exit_code == 2
    assert "damaged gzip data" in result.stderr


def test_delimiter_and_no_header(tiny_nli_model, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("A man plays.;Music.\nA dog runs.;An animal moves.\n")
    result = _batch(
        tiny_nli_model,
        str(path),
        "--delimiter",
        ";",
        "--no-header",
        "--premise-field",
        "col1",
        "--hypothesis-field",
        "col2",
    )
    assert result.exit_code == 0, result.output
    assert [r["col1"] for r in _rows(result)] == ["A man plays.", "A dog runs."]


def test_the_rejects_file_keeps_a_bad_lines_raw_text(tiny_nli_model, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    data = b'{"premise": "A", "hypothesis": "B"}\n{"premise": oops}\n'
    result = _batch(tiny_nli_model, "--on-error", "skip", "--errors", str(rejects), input=data)
    assert result.exit_code == 1
    (rejected,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert rejected["line"] == 2 and rejected["row"] is None and rejected["field"] is None
    assert rejected["raw"] == '{"premise": oops}'
    assert rejected["error"].startswith("invalid JSON")


def test_a_rejected_row_is_data_source_line_field_and_message(tiny_nli_model, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    data = b'{"premise": "A", "hypothesis": 7}\n'
    _batch(tiny_nli_model, "--errors", str(rejects), input=data)
    rejected = json.loads(rejects.read_text())
    assert rejected == {
        "source": "<stdin>",
        "line": 1,
        "field": "hypothesis",
        "error": "field 'hypothesis' must be text, got a number",
        "row": {"premise": "A", "hypothesis": 7},
    }


def test_integers_of_any_width_pass_through_unchanged(tiny_nli_model):
    big = 123456789012345678901234567890
    data = (f'{{"id": {big}, "premise": "A man plays.", "hypothesis": "Music."}}\n').encode()
    result = _batch(tiny_nli_model, input=data)
    assert result.exit_code == 0, result.output
    assert f'"id":{big}' in result.stdout
    assert json.loads(result.stdout)["id"] == big


UNICODE_ROWS = [
    {"premise": "Un café à Paris.", "hypothesis": "Music ☕."},
    {"premise": "b", "hypothesis": "c"},
]


def _wide(text: str, encoding: str) -> bytes:
    """text in a wide encoding with its byte-order mark, as Excel's "Unicode text" writes."""
    marks = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff", "utf-32-le": b"\xff\xfe\0\0"}
    return marks[encoding] + text.encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv"])
def test_utf16_and_utf32_with_a_mark_are_read_and_written_as_utf8(
    tiny_nli_model, tmp_path, encoding, fmt
):
    if fmt == "jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in UNICODE_ROWS)
    else:
        sep = "," if fmt == "csv" else "\t"
        lines = [
            "premise" + sep + "hypothesis",
            *(r["premise"] + sep + r["hypothesis"] for r in UNICODE_ROWS),
        ]
        text = "\r\n".join(lines) + "\r\n"
    plain, wide = tmp_path / f"plain.{fmt}", tmp_path / f"wide.{fmt}"
    plain.write_text(text, encoding="utf-8")
    wide.write_bytes(_wide(text, encoding))
    expected = _batch(tiny_nli_model, str(plain))
    found = _batch(tiny_nli_model, str(wide))
    assert found.exit_code == 0, found.output
    assert found.stdout == expected.stdout and "café" in found.stdout
    piped = _batch(tiny_nli_model, "--format", fmt, input=_wide(text, encoding))
    assert piped.exit_code == 0, piped.output
    assert piped.stdout == expected.stdout


def test_utf16_named_without_a_mark_and_a_cut_one(tiny_nli_model, tmp_path):
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in UNICODE_ROWS)
    named = tmp_path / "named.jsonl"
    named.write_bytes(text.encode("utf-16-le"))
    found = _batch(tiny_nli_model, str(named), "--encoding", "utf-16-le")
    assert found.exit_code == 0, found.output
    assert [r["premise"] for r in _rows(found)] == [r["premise"] for r in UNICODE_ROWS]
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(_wide(text, "utf-16-le")[:-1])  # half of the last character
    refused = _batch(tiny_nli_model, str(cut))
    assert refused.exit_code == 2
    assert f"{cut}: not valid utf-16 (found by its byte-order mark)" in refused.stderr
