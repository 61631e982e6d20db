"""Write result rows: JSON lines, CSV and TSV. Values pass through as they came (integers of
any width, nested objects as JSON in a cell)."""

from __future__ import annotations

import csv
import io
import sys
from typing import IO, Any

import orjson

from squeezenli.errors import InputError


def write_jsonl(stream: IO[bytes], row: dict[str, Any]) -> None:
    stream.write(dump_json(row) + b"\n")


# The readers accept JSON nested as deep as orjson reads (1024 levels), orjson writes only
# 254, and the standard library's encoder counts its levels against the recursion limit.
_WRITE_DEPTH_LIMIT = 4 * 1024


def dump_json(value: Any) -> bytes:
    """Compact JSON; integers wider than 64 bits (which orjson refuses) written exactly, and
    values nested as deep as any the readers accept."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:
        import json

        if sys.getrecursionlimit() < _WRITE_DEPTH_LIMIT:
            sys.setrecursionlimit(_WRITE_DEPTH_LIMIT)
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_plain)
        return text.encode()


def _plain(value: Any) -> Any:
    """numpy values as JSON knows them (for the standard library's encoder)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


class DelimitedWriter:
    """CSV or TSV rows under one header: the columns given (all that the inputs hold, found
    before the first row is written), else the first row's. A row with a field the header
    lacks is refused, never cut. CSV quotes as the csv module does; TSV writes one line per
    row, with tab, newline, carriage return and backslash escaped as \\t, \\n, \\r, \\\\ (so
    cut, sort and awk see whole rows). Nested values become JSON."""

    def __init__(self, stream: IO[bytes], fmt: str, columns: list[str] | None = None) -> None:
        self._stream = stream
        self._tsv = fmt == "tsv"
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        # csv quotes a field holding a character of its line terminator: with "\r\n" a lone
        # \r is quoted too (with "\n" it was not, and readers split the row there). Each row
        # is written to a buffer and ends in "\n" alone.
        self._row = io.StringIO()
        self._writer = csv.writer(self._row, lineterminator="\r\n")
        self._columns = columns
        self._known: set[str] = set(columns or ())  # a set: rows may have thousands of fields
        self._started = False

    def write(self, row: dict[str, Any]) -> None:
        if not self._started:
            self._columns = self._columns or list(row)
            self._known = set(self._columns)
            self.start()
        assert self._columns is not None
        extra = [name for name in row if name not in self._known]
        if extra:
            raise InputError(
                f"field(s) {', '.join(extra)} are not in the header written from the first "
                "rows; use --output jsonl, or give every row the same fields"
            )
        self._write_cells([_cell(row.get(c)) for c in self._columns])

    def start(self) -> None:
        """Write the header, if it is known and not yet written."""
        if not self._started and self._columns is not None:
            self._started = True
            self._write_cells(self._columns)

    def _write_cells(self, cells: list[str]) -> None:
        if self._tsv:
            self._text.write("\t".join(_escape_tsv(cell) for cell in cells) + "\n")
        else:
            self._row.seek(0)
            self._row.truncate()
            self._writer.writerow(cells)
            self._text.write(self._row.getvalue()[:-2] + "\n")
        self._text.flush()
        self._stream.flush()

    def close(self) -> None:
        self._text.flush()
        self._text.detach()


def _escape_tsv(cell: str) -> str:
    return cell.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return dump_json(value).decode()
    return str(value)
