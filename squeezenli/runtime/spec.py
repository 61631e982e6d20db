"""Which model, and how to run it: light enough for the command line to build at start-up
(nothing heavy is imported here)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from squeezenli.defaults import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS, DEFAULT_PRECISION


@dataclass(frozen=True)
class ModelSpec:
    """Which model, and how to run it: one object from the caller (the CLI's flags, a
    script) to load_model, prepare_model and Ray's actors, so no layer re-lists the options."""

    model: str | None = None  # Hub repo id or folder; None: the default model
    revision: str | None = None
    onnx_file: str | None = None  # one of the model's ONNX files; None: chosen by its config
    precision: str = DEFAULT_PRECISION
    label_order: str | tuple[str, ...] | None = None
    max_length: int | None = None
    threads: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_tokens: int = DEFAULT_BATCH_TOKENS

    def with_threads(self, threads: int | None) -> ModelSpec:
        return replace(self, threads=threads)
