"""Where commands read rows from and write results to: input files or stdin, result rows as
JSON lines, CSV/TSV or a table on stdout, skipped rows on stderr or in an errors file."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import typer

from squeezenli.cli.flags import in_flags
from squeezenli.errors import InputError, SqueezenliError
from squeezenli.records.readers import ReadOptions, Record, RowError, detect_format, read_records


class CountingReader(io.RawIOBase):
    """A binary stream that counts the bytes read through it (for progress and ETA). Each
    read takes what one read of the source gives, so a slow producer's lines still stream."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._read = 0

    @property
    def consumed(self) -> int:
        """Bytes of the file read so far: a gzip file's compressed bytes (its size is the
        one progress compares them with), else the bytes passed on."""
        return self._raw.compressed_read if isinstance(self._raw, _Gunzip) else self._read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        read = getattr(self._raw, "readinto1", None) or self._raw.readinto  # type: ignore[attr-defined]
        n = read(buffer) or 0
        self._read += n
        return n


@dataclass(frozen=True)
class Source:
    """One input's records; live when it is a pipe or a terminal, whose pauses should
    release the rows read so far (a regular file is read in fixed windows instead)."""

    records: Iterator[Record]
    live: bool


class Inputs:
    """The input files of a command ('-' or none: stdin), read one after the other. Each
    is checked to exist and be readable when the command starts, before any model loads."""

    def __init__(
        self, names: list[str] | None, fmt: str | None, options: ReadOptions | None = None
    ) -> None:
        self.names = names or ["-"]
        self.fmt = fmt
        self.options = options or ReadOptions()
        self._readers: list[CountingReader] = []  # one per input opened so far
        if self.options.delimiter is not None and len(self.options.delimiter) != 1:
            raise InputError(f"--delimiter must be one character, got {self.options.delimiter!r}")
        _check_encoding(self.options.encoding)
        for name in self.names:
            if name != "-" and not os.access(name, os.R_OK):
                why = "no such file" if not os.path.exists(name) else "not readable"
                raise InputError(f"cannot open {name}: {why}")
            if name != "-" and os.path.isdir(name):
                raise InputError(f"cannot open {name}: it is a folder")

    def includes(self, path: Path) -> bool:
        """Whether path is one of the inputs, stdin's file included (writing it would destroy
        the input: `--errors in.jsonl < in.jsonl`, `--errors /dev/stdin`). A terminal or
        /dev/null behind stdin is no input to destroy."""
        try:
            target = os.stat(path)
        except OSError:
            return False  # not there: no input can be it
        for name in self.names:
            try:
                found = os.fstat(sys.stdin.fileno()) if name == "-" else os.stat(name)
            except (OSError, ValueError, io.UnsupportedOperation):
                continue
            kind = stat.S_IFMT(found.st_mode)
            same = (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino)
            if same and kind in (stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK):
                return True
        return False

    def _regular(self) -> bool:
        """Whether every input is a regular file: one that can be read twice (a pipe named
        as a file, /dev/stdin or <(...), is read once, like '-')."""
        try:
            return all(name != "-" and stat.S_ISREG(os.stat(name).st_mode) for name in self.names)
        except OSError:
            return False

    @property
    def total_bytes(self) -> int | None:
        """The size of all inputs, when all are regular files."""
        if not self._regular():
            return None
        try:
            return sum(os.stat(name).st_size for name in self.names)
        except OSError:
            return None

    def columns(self) -> list[str] | None:
        """Every field the inputs hold, in first-seen order, read before scoring (for an
        output whose header comes first); None when an input is stdin or another pipe (read
        once only)."""
        if not self._regular():
            return None
        from squeezenli.records.readers import scan_columns

        names: dict[str, None] = {}
        for name in self.names:
            with _open(name) as (raw, source):
                stream = io.BufferedReader(raw) if not hasattr(raw, "peek") else raw
                fmt = detect_format(source, self.fmt)
                try:
                    for field in scan_columns(stream, source, fmt, self.options):
                        names[field] = None
                except InputError:  # damage (a cut gzip): the scoring pass writes every row
                    return list(names)  # before it, then reports it, as without a header
        return list(names)

    def consumed(self) -> int:
        return sum(r.consumed for r in self._readers)

    def sources(self) -> Iterator[Source]:
        """The records of each input in turn; a file is open while its records are read."""
        for name in self.names:
            with _open(name) as (raw, source):
                counter = CountingReader(raw)
                self._readers.append(counter)
                stream = io.BufferedReader(counter)
                fmt = detect_format(source, self.fmt)
                records = read_records(stream, source, fmt, self.options)
                yield Source(records, live=_is_live(raw))


# Lines are split on the byte 0x0A before they are decoded: an encoding must write these
# characters as ASCII does (EBCDIC does not), or be UTF-16/32, which are decoded first.
_ASCII_PROBE = 'a,\t"\r\n{}:'


def _check_encoding(encoding: str) -> None:
    from squeezenli.records.readers import is_wide

    if is_wide(encoding):  # decoded as it is read, then split (readers.as_utf8)
        return
    try:
        probe = _ASCII_PROBE.encode(encoding)
    except LookupError:
        raise InputError(f"--encoding: unknown encoding {encoding!r}") from None
    except (UnicodeError, TypeError):  # 'undefined', or a codec of bytes to bytes
        probe = b""
    if probe != _ASCII_PROBE.encode("ascii"):
        raise InputError(
            f"--encoding {encoding}: not a text encoding that keeps ASCII as it is (lines are "
            f"split on newline bytes); convert the file first, e.g. iconv -f {encoding} -t UTF-8"
        )


def _is_live(raw: IO[bytes]) -> bool:
    """A pipe or terminal (its pauses matter); False for regular files and in-memory input."""
    try:
        return not stat.S_ISREG(os.fstat(raw.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


@contextmanager
def _open(name: str):
    if name == "-":
        yield sys.stdin.buffer, "<stdin>"
        return
    try:
        handle = open(name, "rb")
    except OSError as err:
        raise InputError(f"cannot open {name}: {err.strerror}") from None
    with handle:
        if name.lower().endswith(".gz"):
            yield _Gunzip(handle, name), name
            return
        yield handle, name


class _Gunzip(io.RawIOBase):
    """A gzip file's bytes, decompressed a bounded piece at a time (a bomb stays small), with
    every member of a multi-member file. Damage (a cut file, corrupt data, trailing garbage)
    is an OSError naming it, raised only once every byte that decompressed before it has
    been read, so the rows before the damage are scored and written (gzip.GzipFile lost the
    last ones it had decompressed)."""

    _PIECE = 1 << 20  # most decompressed bytes held at once

    def __init__(self, raw: IO[bytes], name: str) -> None:
        import zlib

        super().__init__()
        self._raw = raw
        self._name = name
        self._zlib = zlib
        self._stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._damage: str | None = None
        self._ended = False
        self.compressed_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            if self._damage is not None:
                raise OSError(f"{self._name}: damaged gzip data ({self._damage})")
            if self._ended:
                return 0
            self._fill()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _next_input(self) -> bytes:
        chunk = self._raw.read(1 << 16)
        self.compressed_read += len(chunk)
        return chunk

    def _fill(self) -> None:
        stream = self._stream
        if stream.eof:  # a member ended: another may follow, or zero padding, or nothing
            rest = stream.unused_data.lstrip(b"\0")
            while not rest:
                chunk = self._next_input()
                if not chunk:
                    self._ended = True
                    return
                rest = chunk.lstrip(b"\0")
            while len(rest) < 2 and (chunk := self._next_input()):  # a magic number cut in two
                rest += chunk
            if not rest.startswith(b"\x1f\x8b"):
                self._damage = "data after the end of the gzip stream"
                return
            self._stream = stream = self._zlib.decompressobj(16 + self._zlib.MAX_WBITS)
            data = rest
        else:
            data = stream.unconsumed_tail or self._next_input()
            if not data and self.compressed_read == 0:  # an empty file holds no rows
                self._ended = True
                return
            if not data:
                self._damage = "the file ends before the end of its compressed stream"
                return
        try:
            self._pending = stream.decompress(data, self._PIECE)
        except self._zlib.error as err:
            self._damage = str(err)


def write_json_line(row: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed: results stream to the next command at once."""
    from squeezenli.cli.signals import whole_line
    from squeezenli.records.writers import write_jsonl

    with whole_line():
        write_jsonl(sys.stdout.buffer, row)
        sys.stdout.buffer.flush()


def print_json(document: Any) -> None:
    """One indented JSON document on stdout (reports, model info)."""
    import orjson

    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


class JsonLinesFile:
    """The JSON-lines file an option names (--errors); writing to no file does nothing."""

    def __init__(self, path: Path | None, option: str, inputs: Inputs | None = None) -> None:
        self._path = path
        self._option = option
        if path is not None and inputs is not None and inputs.includes(path):
            raise InputError(f"{option} {path} is one of the input files: it would be overwritten")
        try:
            self._file = open(path, "wb") if path is not None else None
        except OSError as err:
            raise InputError(f"cannot write {option} {path}: {err.strerror}") from None

    @property
    def opened(self) -> bool:
        return self._file is not None

    def write(self, row: dict[str, Any]) -> None:
        if self._file is not None:
            from squeezenli.records.writers import write_jsonl

            with self._reporting():
                write_jsonl(self._file, row)

    def close(self) -> None:
        if self._file is not None:
            with self._reporting():
                self._file.close()

    @contextmanager
    def _reporting(self) -> Iterator[None]:
        try:
            yield
        except OSError as err:  # a full disk under the file
            raise SqueezenliError(
                f"cannot write {self._option} {self._path}: {err.strerror or err}"
            ) from None


class ErrorLog:
    """Skipped rows: one line each on stderr, or JSON lines in a file (with the row, or the
    raw text of a line that could not be parsed)."""

    def __init__(self, path: Path | None, inputs: Inputs | None = None) -> None:
        self._file = JsonLinesFile(path, "--errors", inputs)

    def write(self, record: Record, error: RowError) -> None:
        if not self._file.opened:
            typer.echo(f"squeezenli: skipped {in_flags(str(error))}", err=True)
            return
        row = {
            "source": error.source,
            "line": error.line,
            "field": error.field,
            "error": in_flags(error.message),
            "row": record.data,
        }
        if record.data is None and record.raw is not None:
            row["raw"] = record.raw
        self._file.write(row)

    def close(self) -> None:
        self._file.close()


def summary(
    what: str,
    done: int,
    failed: int,
    seconds: float,
    quiet: bool,
    truncated: int = 0,
    error: BaseException | None = None,
) -> None:
    """The closing line of a run on stderr: rows done, rows failed, rows cut to the model's
    length (when any were), time. A run an error ended (`error`: what the app reports as one
    line) gets it after that line, saying so, so the counts never read as a run completed."""
    if quiet:
        return
    cut = f" ({truncated} truncated: --long-input chunk reads them whole)" if truncated else ""
    line = f"squeezenli: {rows(done)} {what}{cut}, {failed} failed, {seconds:.1f} s"
    if isinstance(error, (SqueezenliError, OSError)) and not isinstance(error, BrokenPipeError):
        error.add_note(f"{line}; stopped by the error above")
    else:
        typer.echo(line, err=True)


def rows(count: int) -> str:
    """'1 row', '2 rows'."""
    return f"{count} row" if count == 1 else f"{count} rows"
