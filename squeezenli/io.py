"""Read input records and write result rows; nothing here knows about models.

Readers yield one Record per input row, good or bad, so the caller decides whether a bad row
stops the run or is reported and skipped: no row disappears between reading and writing.
"""

from __future__ import annotations

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


def read_jsonl(stream: IO[bytes], source: str) -> Iterator[Record]:
    """JSON objects, one per line; a UTF-8 BOM and CRLF are accepted, blank lines skipped."""
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            yield Record(source, number, None, f"invalid JSON: {err}")
            continue
        if not isinstance(value, dict):
            yield Record(source, number, None, f"expected a JSON object, got {_kind(value)}")
            continue
        yield Record(source, number, value)


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
