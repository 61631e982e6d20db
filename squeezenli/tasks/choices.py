"""The choices a task takes, as enums: light to import (the CLI names them in its flags
before anything heavy loads)."""

from __future__ import annotations

from enum import Enum


class LongInput(str, Enum):
    """What to do with a pair longer than the model reads (tasks/documents.py)."""

    TRUNCATE = "truncate"  # cut longest-first, as transformers does, and say so
    FAIL = "fail"  # make it the row's error
    CHUNK = "chunk"  # read the premise in windows of whole sentences


class Aggregate(str, Enum):
    """Which window of a chunked premise decides (tasks/documents.py)."""

    ENTAILMENT = "entailment"  # the most likely to entail (MiniCheck)
    MARGIN = "margin"  # the largest entailment less contradiction (SummaC-ZS)
    CONTRADICTION = "contradiction"  # the most likely to contradict
