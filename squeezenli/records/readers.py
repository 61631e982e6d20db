"""Read input records (JSON lines, CSV, TSV); nothing here knows about models.

Readers yield one Record per input row, good or bad, so the caller decides whether a bad row
stops the run or is reported and skipped: no row disappears between reading and writing. A
row that cannot be used is described by a RowError (where, which field, what).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, Any

import orjson

from squeezenli.errors import Fault, InputError


@dataclass(frozen=True)
class Record:
    """One input row: its data, or the reason it could not be read (and then its raw text,
    when there is a line to keep, so a rejects file loses nothing)."""

    source: str  # file name, or <stdin>
    line: int  # 1-based line number of the row's start
    data: dict[str, Any] | None
    error: str | None = None
    raw: str | None = None
    tabular: bool = False  # a CSV/TSV row: every row of its source has the same columns

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class RowError:
    """Why one row has no result: where it is (source, line), the field at fault if one
    is, and the problem. Data, so a rejects file or Ray carries its parts, not a string."""

    source: str
    line: int
    message: str
    field: str | None = None
    kind: Fault = Fault.INVALID

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"

    @classmethod
    def of(
        cls, record: Record, message: str, field: str | None = None, kind: Fault = Fault.INVALID
    ) -> RowError:
        return cls(record.source, record.line, message, field, kind)


class RowFailure(InputError):
    """An InputError about one row, carrying its RowError: a run that skips bad rows
    reports it and goes on; a run that fails on them stops with its message."""

    def __init__(self, error: RowError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class ReadOptions:
    """How to read delimited and encoded inputs (JSON lines are UTF-8 unless told)."""

    encoding: str = "utf-8"
    delimiter: str | None = None  # CSV only; TSV is tab-separated by definition
    header: bool = True  # CSV/TSV: the first row names the columns (else col1, col2, ...)


# The longest input line read: longer ones are a row error, read past without being held
# (a 100 MB line, or /dev/zero, would otherwise take all memory). CSV fields may be as long.
MAX_LINE_BYTES = 16 << 20
csv.field_size_limit(MAX_LINE_BYTES)


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


def _too_long() -> str:
    return f"line is longer than {MAX_LINE_BYTES >> 20} MiB, the most one row may take"


def _decode(raw: bytes, encoding: str) -> str:
    """A line as text, or a UnicodeDecodeError whose message suggests --encoding."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        hint = "latin-1" if _is_utf8(encoding) else "utf-8"
        raise _BadText(
            f"not valid {encoding} at byte {err.start + 1} of the line "
            f"({raw[err.start : err.start + 1]!r}); if the file is in another encoding, "
            f"pass it as `encoding`, e.g. {hint}"
        ) from None


def _is_utf8(encoding: str) -> bool:
    return encoding.replace("_", "-").lower() in ("utf-8", "utf8")


class _BadText(ValueError):
    """A line that does not decode in the input's encoding."""


def read_jsonl(stream: IO[bytes], source: str, encoding: str = "utf-8") -> Iterator[Record]:
    """JSON objects, one per line; a UTF-8 BOM and CRLF are accepted, blank lines skipped."""
    for number, raw in enumerate(bounded_lines(stream), start=1):
        if raw is None:
            yield Record(source, number, None, _too_long())
            continue
        if not _is_utf8(encoding):
            try:
                raw = _decode(raw, encoding).encode("utf-8")
            except _BadText as err:
                yield Record(source, number, None, str(err), raw.decode("utf-8", "replace"))
                continue
        record = parse_jsonl_line(raw, source, number)
        if record is not None:
            yield record


def parse_jsonl_line(raw: bytes, source: str, number: int) -> Record | None:
    """The record on line `number` of a JSON-lines file, or None for a blank line. Integers
    wider than 64 bits keep their exact value (orjson would make them floats)."""
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        return None
    try:
        value = loads_exact(raw)
    except (orjson.JSONDecodeError, ValueError, RecursionError) as err:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        message = f"invalid JSON: {err}"
        if "UTF-8" in message:  # where, and the --encoding hint the other formats give
            try:
                _decode(raw, "utf-8")
            except _BadText as bad:
                message = str(bad)
        return Record(source, number, None, message, text)
    if not isinstance(value, dict):
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        return Record(source, number, None, f"expected a JSON object, got {_kind(value)}", text)
    return Record(source, number, value)


# A run of 19 or more digits: an integer that may not fit in 64 bits.
_BIG_INT = re.compile(rb"\d{19,}")


def loads_exact(raw: bytes) -> Any:
    """JSON as orjson reads it, except that integers wider than 64 bits keep their exact
    value (orjson would make them floats): an id comes back as it was sent."""
    return _exact_json(raw) if _BIG_INT.search(raw) else orjson.loads(raw)


def _exact_json(raw: bytes) -> Any:
    """JSON parsed by the standard library, which keeps integers of any width (and refuses
    NaN and Infinity as orjson does: they are not JSON, and would be written back as such)."""
    import json

    return json.loads(raw, parse_constant=_not_json)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (write it as a string or null)")


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
    """The input format: as given, else from the file extension (under a .gz); stdin
    defaults to JSONL."""
    if given:
        return given
    name = source.lower().removesuffix(".gz")
    for extension, fmt in _EXTENSIONS.items():
        if name.endswith(extension):
            return fmt
    return "jsonl"


# Byte-order marks of the encodings whose newline is not the byte 0x0A (UTF-32 first: its
# little-endian mark begins with UTF-16's).
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def is_wide(encoding: str) -> bool:
    """UTF-16 or UTF-32, in any spelling Python knows: decoded before lines are split."""
    try:
        return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    except LookupError:
        return False


def as_utf8(stream: IO[bytes], source: str, encoding: str) -> tuple[IO[bytes], str]:
    """The stream as the readers take it, and its encoding now: a UTF-16 or UTF-32 input
    (named by `encoding`, or found by its byte-order mark where UTF-8 was assumed, as Excel's
    "Unicode text" is) decoded as it is read and handed on as UTF-8, whose lines end in one
    newline byte; any other stream as it is."""
    wide = is_wide(encoding)
    if not wide and not _is_utf8(encoding):
        return stream, encoding
    peek = getattr(stream, "peek", None)
    if peek is not None:  # files and stdin: looked at, not consumed
        head, whole = peek(4)[:4], stream
    else:
        head = b""
        while len(head) < 4 and (more := stream.read(4 - len(head))):
            head += more
        whole = io.BufferedReader(_Prefixed(head, stream))  # type: ignore[arg-type]
    found = next((name for bom, name in _WIDE_BOMS if head.startswith(bom)), None)
    if not wide and found is None:
        return whole, encoding
    named = encoding if wide else found
    assert named is not None
    transcoded = _Transcoded(whole, named, source, found is not None)
    return io.BufferedReader(transcoded), "utf-8"  # type: ignore[arg-type]


def _some(stream: IO[bytes], size: int) -> bytes:
    """What the stream has, up to size, without waiting for more (a live pipe's rows are
    read as they come)."""
    read1 = getattr(stream, "read1", None)
    return read1(size) if read1 is not None else stream.read(size)


class _Prefixed(io.RawIOBase):
    """Bytes already read from a stream, then the rest of it."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count], self._head = self._head[:count], self._head[count:]
            return count
        data = _some(self._rest, len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Transcoded(io.RawIOBase):
    """A UTF-16/32 stream's text as UTF-8 bytes, decoded a bounded piece at a time; bytes
    that are not valid in it end the input with an InputError naming where."""

    def __init__(self, stream: IO[bytes], encoding: str, source: str, by_mark: bool) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)()
        self._encoding, self._source, self._by_mark = encoding, source, by_mark
        self._pending = b""
        self._read = 0  # bytes of the input decoded so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            data = _some(self._stream, 1 << 16)
            try:
                text = self._decoder.decode(data, final=not data)
            except UnicodeDecodeError as err:
                how = " (found by its byte-order mark)" if self._by_mark else ""
                raise InputError(
                    f"{self._source}: not valid {self._encoding}{how} near byte "
                    f"{self._read + err.start + 1}: {err.reason}; pass the file's encoding "
                    "as `encoding`"
                ) from None
            self._read += len(data)
            self._pending = text.encode("utf-8")
            if not data:
                break
        count = min(len(buffer), len(self._pending))
        buffer[:count], self._pending = self._pending[:count], self._pending[count:]
        return count


def read_records(
    stream: IO[bytes], source: str, fmt: str, options: ReadOptions | None = None
) -> Iterator[Record]:
    """The records of one input; a read that fails (EIO, a vanished mount) is an InputError
    naming the input."""
    options = options or ReadOptions()
    stream, encoding = as_utf8(stream, source, options.encoding)
    options = replace(options, encoding=encoding)
    if fmt == "jsonl":
        records = read_jsonl(stream, source, options.encoding)
    elif fmt == "tsv":
        records = read_tsv(stream, source, options)
    else:
        records = read_csv(stream, source, options)
    try:
        yield from records
    except OSError as err:
        raise InputError(f"{source}: cannot read: {err.strerror or err}") from None


def read_csv(stream: IO[bytes], source: str, options: ReadOptions) -> Iterator[Record]:
    """CSV with quoted fields (newlines and quotes inside them, as the csv module reads
    them). Each record is numbered by the line it starts on. A line that does not decode is
    that row's error; a quote left open is an error at the line that opened it, which ends
    the file: everything after it was read as part of that field."""
    lines = _CountedLines(stream, source, options.encoding)
    reader = csv.reader(lines, delimiter=options.delimiter or ",", strict=True)
    columns: list[str] | None = None
    while True:
        start = lines.count + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except _BadText as err:
            yield Record(source, lines.count, None, str(err), lines.last_text)
            continue
        except csv.Error as err:
            if "unexpected end of data" in str(err):
                raise InputError(
                    f"{source}:{start}: a quote opened on this line is never closed "
                    "(the rest of the file would be one field)"
                ) from None
            yield Record(source, start, None, f"malformed CSV: {err}", lines.last_text)
            continue
        if columns is None:
            if not any(row):  # blank lines before the header, as anywhere, are skipped
                continue
            columns = _header(row, source) if options.header else _numbered(row)
            if options.header:
                continue
        record = _row_record(row, columns, source, start)
        if record is not None:
            yield record


def read_tsv(stream: IO[bytes], source: str, options: ReadOptions) -> Iterator[Record]:
    """Tab-separated values as GLUE and most tools write them: one record per line, no
    quoting (a quote is just a character), and the escapes \\t, \\n, \\r and \\\\ inside fields."""
    columns: list[str] | None = None
    for number, raw in enumerate(bounded_lines(stream), start=1):
        if raw is None:
            yield Record(source, number, None, _too_long())
            continue
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if number == 1:
            _refuse_cr_only(raw, source)
        try:
            text = _decode(raw, options.encoding).rstrip("\r\n")
        except _BadText as err:
            yield Record(source, number, None, str(err), raw.decode("utf-8", "replace"))
            continue
        row = [_unescape(cell) for cell in text.split("\t")]
        if columns is None:
            if not any(row):  # blank lines before the header, as anywhere, are skipped
                continue
            columns = _header(row, source) if options.header else _numbered(row)
            if options.header:
                continue
        record = _row_record(row, columns, source, number, text)
        if record is not None:
            yield record


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def _unescape(cell: str) -> str:
    if "\\" not in cell:
        return cell
    return re.sub(r"\\([tnr\\])", lambda m: _ESCAPES[m.group(1)], cell)


def _header(row: list[str], source: str) -> list[str]:
    from collections import Counter

    duplicates = sorted(h for h, n in Counter(row).items() if n > 1)  # linear: headers may be wide
    if duplicates:
        raise InputError(f"{source}:1: duplicate column names: {', '.join(duplicates)}")
    return row


def _numbered(row: list[str]) -> list[str]:
    """Column names for a file without a header row: col1, col2, ..."""
    return [f"col{i}" for i in range(1, len(row) + 1)]


def _row_record(
    row: list[str], columns: list[str], source: str, line: int, text: str | None = None
) -> Record | None:
    if not any(cell.strip() for cell in row):
        return None  # a blank line
    if len(row) != len(columns):
        raw = text if text is not None else ",".join(row)
        return Record(source, line, None, f"expected {len(columns)} fields, found {len(row)}", raw)
    return Record(source, line, dict(zip(columns, row)), tabular=True)


class _CountedLines:
    """Decoded lines for the csv module, counted (csv's own line_num counts records' lines
    only after a record is complete), each bounded: a line too long for one row ends the
    file, since inside a quoted field there is no telling where the next row starts."""

    def __init__(self, stream: IO[bytes], source: str, encoding: str) -> None:
        self._lines = bounded_lines(stream)
        self._source = source
        self._encoding = encoding
        self.count = 0
        self._last = b""

    @property
    def last_text(self) -> str:
        """The last line read, as text whatever its bytes (for a rejected row's `raw`)."""
        return self._last.decode("utf-8", "replace").rstrip("\r\n")

    def __iter__(self) -> _CountedLines:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.count += 1
        if raw is None:
            raise InputError(f"{self._source}:{self.count}: {_too_long()}")
        if self.count == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if self.count == 1:
            _refuse_cr_only(raw, self._source)
        self._last = raw
        return _decode(raw, self._encoding)


def _refuse_cr_only(first: bytes, source: str) -> None:
    """A file whose lines end in CR alone (classic Mac OS) reads as one endless line: say so
    once, instead of reporting that line as one malformed row."""
    if not first.endswith(b"\n") and b"\r" in first.rstrip(b"\r"):
        raise InputError(
            f"{source}: its lines end in CR alone (old Mac line endings); convert them "
            "first, e.g. tr '\\r' '\\n' < FILE > FIXED"
        )


class ColumnsError(InputError):
    """The input lacks the columns a command needs: no row of it can be scored."""


def choose_pair_fields(
    columns: list[str],
    premise: str | None,
    hypothesis: str | None,
    where: str,
    fixed: bool = False,
) -> tuple[str, str]:
    """The premise/hypothesis fields: as given, else the first known pair present. Given
    names absent from columns that every row shares (fixed: a CSV/TSV header) fail the
    source; in JSON lines each row may differ, and a row without them is its own error."""
    if premise or hypothesis:
        chosen = (premise or "premise", hypothesis or "hypothesis")
        for name in chosen if fixed else ():
            if name not in columns:
                hint = _other_delimiter(columns).rstrip("; ")
                raise ColumnsError(
                    f"{where}: no field '{name}'{did_you_mean(name, columns)}; columns "
                    f"present: {', '.join(columns) or 'none'}" + (f"; {hint}" if hint else "")
                )
        return chosen
    for pair in PAIR_FIELDS:
        if all(name in columns for name in pair):
            return pair
    raise ColumnsError(
        f"{where}: no premise/hypothesis fields (tried "
        + ", ".join("/".join(p) for p in PAIR_FIELDS)
        + f"); columns present: {', '.join(columns) or 'none'}; "
        + (_other_delimiter(columns) if fixed else "")
        + "use `premise_field` and `hypothesis_field`"
    )


def text_field(record: Record, field: str) -> str:
    """A text field of a record, or an InputError naming the file, line and field."""
    assert record.data is not None
    if field not in record.data:
        close = did_you_mean(field, list(record.data))
        raise RowFailure(RowError.of(record, f"missing field '{field}'{close}", field))
    value = record.data[field]
    if not isinstance(value, str):
        message = f"field '{field}' must be text, got {_kind(value)}"
        raise RowFailure(RowError.of(record, message, field))
    if not value.strip():
        raise RowFailure(RowError.of(record, f"field '{field}' is empty", field))
    return value


def _other_delimiter(columns: list[str]) -> str:
    """A header read as one column that another delimiter would split (premise;hypothesis):
    the hint that says which."""
    if len(columns) != 1:
        return ""
    for mark in (";", "\t", "|", ","):
        if mark in columns[0]:
            shown = "\\t" if mark == "\t" else mark
            return f"is it '{shown}'-separated? give `delimiter` '{shown}'; "
    return ""


def did_you_mean(name: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


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


def scan_columns(stream: IO[bytes], source: str, fmt: str, options: ReadOptions) -> Iterator[str]:
    """Every field name an input holds, in first-seen order (repeats included): a CSV/TSV
    header, or the keys of every JSON line (read once more before scoring, for a CSV/TSV
    output's header). Yielded as found, so a caller keeps what came before a damaged part."""
    for record in read_records(stream, source, fmt, options):
        if record.data is not None:
            yield from record.data
            if record.tabular:
                break
