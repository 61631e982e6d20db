"""Read input records and write result rows; nothing here knows about models.

Readers yield one Record per input row, good or bad, so the caller decides whether a bad row
stops the run or is reported and skipped: no row disappears between reading and writing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from .errors import InputError


@dataclass(frozen=True)
class Record:
    """One input row: its data, or the reason it could not be read."""

    source: str  # file name, or <stdin>
    line: int  # 1-based line number of the row's start
    data: dict[str, Any] | None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


# The longest input line read: longer ones are a row error, read past without being held
# (a 100 MB line, or /dev/zero, would otherwise take all memory).
MAX_LINE_BYTES = 16 << 20


def bounded_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The stream's lines, newline kept; None in place of a line longer than limit bytes,
    whose rest is skipped only when the next line is asked for (so a caller that stops at
    the error never reads on, into an endless line)."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        yield None
        while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
            pass


def read_jsonl(stream: IO[bytes], source: str) -> Iterator[Record]:
    """JSON objects, one per line; a UTF-8 BOM and CRLF are accepted, blank lines skipped."""
    for number, raw in enumerate(bounded_lines(stream), start=1):
        if raw is None:
            yield Record(source, number, None, _too_long())
            continue
        record = parse_jsonl_line(raw, source, number)
        if record is not None:
            yield record


def _too_long() -> str:
    return f"line is longer than {MAX_LINE_BYTES >> 20} MiB, the most one row may take"


def parse_jsonl_line(raw: bytes, source: str, number: int) -> Record | None:
    """The record on line `number` of a JSON-lines file, or None for a blank line."""
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return Record(source, number, None, f"invalid JSON: {err}")
    if not isinstance(value, dict):
        return Record(source, number, None, f"expected a JSON object, got {_kind(value)}")
    return Record(source, number, value)


FORMATS = ("jsonl", "csv", "tsv")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
}

# Column pairs other datasets use, tried in order when premise/hypothesis are absent.
PAIR_FIELDS = (("premise", "hypothesis"), ("sentence1", "sentence2"), ("text", "text_pair"))


def detect_format(source: str, given: str | None) -> str:
    """The input format: as given, else from the file extension; stdin defaults to JSONL."""
    if given:
        return given
    for extension, fmt in _EXTENSIONS.items():
        if source.lower().endswith(extension):
            return fmt
    return "jsonl"


def read_records(stream: IO[bytes], source: str, fmt: str) -> Iterator[Record]:
    """The records of one input; a read that fails (EIO, a vanished mount) is an InputError
    naming the input."""
    if fmt == "jsonl":
        records = read_jsonl(stream, source)
    else:
        records = read_delimited(stream, source, "," if fmt == "csv" else "\t")
    try:
        yield from records
    except OSError as err:
        raise InputError(f"{source}: cannot read: {err.strerror or err}") from None


def read_delimited(stream: IO[bytes], source: str, delimiter: str) -> Iterator[Record]:
    """CSV/TSV with a header row; quoted newlines and quotes as the csv module reads them."""
    lines = _decoded_lines(stream, source)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return
        duplicates = sorted({h for h in header if header.count(h) > 1})
        if duplicates:
            raise InputError(f"{source}:1: duplicate column names: {', '.join(duplicates)}")
        start = reader.line_num + 1
        for row in reader:
            if not any(cell.strip() for cell in row):
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                error = f"expected {len(header)} fields, found {len(row)}"
                yield Record(source, start, None, error)
            else:
                yield Record(source, start, dict(zip(header, row)))
            start = reader.line_num + 1
    except UnicodeDecodeError as err:
        raise InputError(f"{source}:{reader.line_num + 1}: invalid UTF-8 ({err.reason})") from None
    except csv.Error as err:
        raise InputError(f"{source}:{reader.line_num}: {err}") from None


def _decoded_lines(stream: IO[bytes], source: str) -> Iterator[str]:
    """Text lines for the csv module, each bounded (a line too long for one row ends the
    read: inside a quoted field there is no telling where the next row starts)."""
    for number, raw in enumerate(bounded_lines(stream), start=1):
        if raw is None:
            raise InputError(f"{source}:{number}: {_too_long()}")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield raw.decode("utf-8")


class ColumnsError(InputError):
    """The input lacks the columns a command needs: no row of it can be scored."""


def choose_pair_fields(
    columns: list[str], premise: str | None, hypothesis: str | None, where: str
) -> tuple[str, str]:
    """The premise/hypothesis fields: as given, else the first known pair present."""
    if premise or hypothesis:
        return premise or "premise", hypothesis or "hypothesis"
    for pair in PAIR_FIELDS:
        if all(name in columns for name in pair):
            return pair
    raise ColumnsError(
        f"{where}: no premise/hypothesis fields (tried "
        + ", ".join("/".join(p) for p in PAIR_FIELDS)
        + f"); columns present: {', '.join(columns) or 'none'}; "
        "use --premise-field and --hypothesis-field"
    )


def text_field(record: Record, field: str) -> str:
    """A text field of a record, or an InputError naming the file, line and field."""
    assert record.data is not None
    if field not in record.data:
        raise InputError(f"{record.where}: missing field '{field}'")
    value = record.data[field]
    if not isinstance(value, str):
        raise InputError(f"{record.where}: field '{field}' must be text, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
        str: "text",
    }.get(type(value), type(value).__name__)


def write_jsonl(stream: IO[bytes], row: dict[str, Any]) -> None:
    stream.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


class DelimitedWriter:
    """CSV/TSV rows: the first row's columns set the header; nested values become JSON."""

    def __init__(self, stream: IO[bytes], delimiter: str) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        self._writer = csv.writer(self._text, delimiter=delimiter, lineterminator="\n")
        self._columns: list[str] | None = None

    def write(self, row: dict[str, Any]) -> None:
        if self._columns is None:
            self._columns = list(row)
            self._writer.writerow(self._columns)
        self._writer.writerow([_cell(row.get(c)) for c in self._columns])

    def close(self) -> None:
        self._text.flush()
        self._text.detach()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)
