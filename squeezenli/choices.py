"""Every choice a caller makes, as an enum: light to import (the CLI names them in its flags
before anything heavy loads), and below every layer, so that the library, the CLI, Ray and
the server compare members, never strings in whatever case they came."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from squeezenli.errors import InputError


class Choice(str, Enum):
    """An enum of strings that prints as its value (as a flag or a JSON field gives it)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class LongInput(Choice):
    """What to do with a pair longer than the model reads (tasks/documents.py)."""

    TRUNCATE = "truncate"  # cut longest-first, as transformers does, and say so
    FAIL = "fail"  # make it the row's error
    CHUNK = "chunk"  # read the premise in windows of whole sentences


class Aggregate(Choice):
    """Which window of a chunked premise decides (tasks/documents.py)."""

    ENTAILMENT = "entailment"  # the most likely to entail (MiniCheck)
    MARGIN = "margin"  # the largest entailment less contradiction (SummaC-ZS)
    CONTRADICTION = "contradiction"  # the most likely to contradict


class Evidence(Choice):
    """What a checked claim cites (tasks/claims.py)."""

    SENTENCE = "sentence"  # the fewest whole sentences that carry its verdict
    WINDOW = "window"  # the whole window that decided it


class Precision(Choice):
    """Which ONNX build runs (runtime/precision.py)."""

    AUTO = "auto"  # int8 where measured to agree with fp32 and to be faster here
    FP32 = "fp32"  # exact: equals transformers
    INT8 = "int8"


class RowScore(Choice):
    """How a checked row's claims make its score (tasks/claims.py)."""

    MEAN = "mean"  # the mean of the claims' entailment probabilities
    MIN = "min"  # the weakest claim's: a text is as good as its worst sentence


class LabelSource(Choice):
    """Where a model's label order came from (models/labels.py)."""

    LABEL_ORDER = "label_order"  # the caller named it
    CONFIG = "config"  # the model's config names its outputs
    MEASURED = "measured"  # its answers on the check pairs, at build time
    KNOWN = "known"  # squeezenli's table of known models
    UNNAMED = "unnamed"  # nothing names them: LABEL_0..n


class Output(Choice):
    """What rows are written as (interfaces)."""

    JSONL = "jsonl"
    CSV = "csv"
    TSV = "tsv"
    TABLE = "table"  # for a terminal
    PARQUET = "parquet"  # files Ray writes
    HTML = "html"  # a page a person opens (check's report)


class Engine(Choice):
    """Where rows are scored."""

    LOCAL = "local"
    RAY = "ray"


class OnError(Choice):
    """What a task does with a record it cannot score (tasks/scoring.py)."""

    FAIL = "fail"  # raise RowFailure at the first one
    SKIP = "skip"  # yield it as that record's error and go on


E = TypeVar("E", bound=Enum)


def choose(kind: type[E], value: E | str, name: str) -> E:
    """`value` as a member of `kind` (a member, or its value in any case), else an InputError
    naming the parameter and the choices."""
    if isinstance(value, kind):
        return value
    for member in kind:
        if str(member.value) == str(value).lower():
            return member
    choices = ", ".join(str(member.value) for member in kind)
    raise InputError(f"`{name}` must be one of {choices}, got {value!r}", name)
