"""Which model, and how to run it: light enough for the command line to build at start-up
(nothing heavy is imported here)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from squeezenli.choices import Precision, choose
from squeezenli.defaults import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS, MIN_LENGTH
from squeezenli.errors import InputError


@dataclass(frozen=True)
class ModelSpec:
    """Which model, and how to run it: one object from the caller (the CLI's flags, a
    script) to load_model, prepare_model and Ray's actors, so no layer re-lists the options."""

    model: str | None = None  # Hub repo id or folder; None: the default model
    revision: str | None = None
    onnx_file: str | None = None  # one of the model's ONNX files; None: chosen by its config
    precision: Precision = Precision.AUTO  # a member, or its name in any case
    label_order: str | tuple[str, ...] | None = None
    max_length: int | None = None
    threads: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_tokens: int = DEFAULT_BATCH_TOKENS

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", choose(Precision, self.precision, "precision"))
        if self.max_length is not None and self.max_length < MIN_LENGTH:  # before a download
            raise InputError(f"`max_length` must be at least {MIN_LENGTH}, got {self.max_length}")

    def with_threads(self, threads: int | None) -> ModelSpec:
        return replace(self, threads=threads)
