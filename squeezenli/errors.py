"""User-facing errors: each carries the exit code the CLI returns for it."""

from __future__ import annotations

from enum import Enum

EXIT_OK = 0
EXIT_FAILED = 1  # some rows failed, or a runtime error
EXIT_USAGE = 2  # bad arguments or bad input
EXIT_MODEL = 3  # model resolution, download or build problems
EXIT_UNDER = 4  # check --fail-under: a row's score was under the bar
EXIT_SERVER = 5  # --server: unreachable, too slow, overloaded, or an answer not as documented
EXIT_INTERRUPTED = 130


class SqueezenliError(Exception):
    """An error meant for the user: its message is printed as one line, without a traceback."""

    exit_code = EXIT_FAILED


class ServerError(SqueezenliError):
    """The server a client scores on (--server) could not be reached, did not answer within
    its timeout, was overloaded or failed (429, 5xx), or answered what is not the documented
    shape: nothing of that answer is written."""

    exit_code = EXIT_SERVER


class Fault(str, Enum):
    """What kind of wrong an input is: callers that answer by kind (the server's HTTP status)
    read this, never the message."""

    INVALID = "invalid"  # a value of the wrong type, or one no option takes
    REQUIRED = "required"  # nothing given where something must be
    EMPTY = "empty"  # an empty list where at least one item is needed
    TOO_LONG = "too_long"  # longer than the model reads (TEI answers it 413)


class InputError(SqueezenliError):
    """Bad input data or arguments; the message says where (file, line, field). `param` names
    the parameter at fault (the CLI shows its flag, the server its field), `kind` the fault."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, param: str | None = None, kind: Fault = Fault.INVALID):
        super().__init__(message)
        self.param = param
        self.kind = kind


class ModelError(SqueezenliError):
    """A model that cannot be found, downloaded, read or built."""

    exit_code = EXIT_MODEL


class DamagedModelError(ModelError):
    """A model file that exists but cannot be loaded (torn by a full disk, bit rot)."""


class DamagedDownloadError(ModelError):
    """A cached download whose content no longer matches its hash."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name  # the repo file it came from


class UnsafeModelFileError(ModelError):
    """A model file that would run code or reference something other than tensors."""
