"""`squeezenli batch [FILE ...]`: score pairs from JSONL/CSV/TSV, one output row per input."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InputError
from ..io import FORMATS, ReadOptions
from .options import (
    ErrorsOpt,
    FilesArg,
    FormatOpt,
    HypothesisFieldOpt,
    ModelOptions,
    OnErrorOpt,
    PremiseFieldOpt,
    check_choice,
    model_options,
    reading_options,
)

OUTPUTS = ("jsonl", "csv", "tsv", "table")


@model_options()
@reading_options()
def batch(
    files: FilesArg = None,
    fmt: FormatOpt = None,
    premise_field: PremiseFieldOpt = None,
    hypothesis_field: HypothesisFieldOpt = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="jsonl, csv, tsv or table.")
    ] = "jsonl",
    on_error: OnErrorOpt = "fail",
    errors: ErrorsOpt = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local, or ray (pip install 'squeezenli[ray]').")
    ] = "local",
    address: Annotated[
        Optional[str],
        typer.Option("--address", help="Ray cluster to join [default: start a local one]."),
    ] = None,
    output_path: Annotated[
        Optional[Path],
        typer.Option(
            "--output-path",
            help="With --engine ray: write files here (--output parquet, jsonl or csv).",
        ),
    ] = None,
    *,
    opts: ModelOptions,
    reading: ReadOptions,
) -> None:
    """Score pairs from JSONL, CSV or TSV: one output row per input row, in order, every
    input field kept, `prediction` and `scores` added.

    Example: cat pairs.jsonl | squeezenli batch > scored.jsonl
    """
    from ..scoring import score_records
    from .rows import RowRun
    from .streams import ErrorLog, Inputs

    check_choice("--format", fmt, (*FORMATS, "parquet") if engine == "ray" else FORMATS)
    check_choice("--output", output, (*OUTPUTS, "parquet") if output_path else OUTPUTS)
    check_choice("--on-error", on_error, ("fail", "skip"))
    check_choice("--engine", engine, ("local", "ray"))
    if engine == "ray":
        from .ray_batch import run_on_ray

        failed = run_on_ray(
            files or [],
            fmt,
            address=address,
            output=output,
            output_path=output_path,
            premise_field=premise_field,
            hypothesis_field=hypothesis_field,
            on_error=on_error,
            errors=errors,
            opts=opts,
            make_sink=lambda labels: ResultSink(output, labels),
        )
        if failed:
            raise typer.Exit(1)
        return
    if output_path is not None:
        raise InputError("--output-path goes with --engine ray")
    inputs = Inputs(files, fmt, reading)
    error_log = ErrorLog(errors, inputs)
    nli = opts.load()
    sink = ResultSink(output, nli.labels)

    score = partial(
        score_records,
        nli,
        premise_field=premise_field,
        hypothesis_field=hypothesis_field,
        on_error=on_error,
    )

    try:
        with RowRun("scored", inputs, error_log, quiet=opts.quiet) as run:
            for outcome in run.outcomes(score):
                sink.write(outcome.record.data, outcome.pair, outcome.prediction)
    finally:
        sink.close()
    if run.failed:
        raise typer.Exit(1)


class ResultSink:
    """Result rows to stdout as JSON lines, CSV/TSV (a column per class) or a table."""

    def __init__(self, output: str, labels) -> None:
        self.output = output
        self.labels = labels
        self._rows: list = []
        self._delimited = None
        if output in ("csv", "tsv"):
            from ..io import DelimitedWriter

            self._delimited = DelimitedWriter(sys.stdout.buffer, "," if output == "csv" else "\t")

    def write(self, data: dict, pair: tuple[str, str], prediction) -> None:
        if self.output == "jsonl":
            from .streams import write_json_line

            write_json_line({**data, **prediction.fields()})
        elif self._delimited is not None:
            from .signals import whole_line

            row = {**data, "prediction": prediction.label, **prediction.rounded_scores()}
            with whole_line():
                self._delimited.write(row)
        else:
            self._rows.append((pair, prediction))

    def close(self) -> None:
        if self._delimited is not None:
            self._delimited.close()
        if self._rows:
            from ..render import batch_table

            batch_table(self._rows, self.labels)
