"""`squeezenli batch [FILE ...]`: score pairs from JSONL/CSV/TSV, one output row per input."""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from squeezenli.choices import LongInput, Output
from squeezenli.cli.options import (
    Backend,
    Delivery,
    FilesArg,
    FormatOpt,
    ModelOptions,
    ThresholdFromOpt,
    allowed,
    backend_options,
    check_choice,
    chosen_output,
    delivery_options,
    fitted_threshold,
    model_options,
    output_option,
    reading_options,
    task_options,
)
from squeezenli.errors import InputError
from squeezenli.records.readers import FORMATS, ReadOptions, Record, RowError, RowFailure
from squeezenli.tasks.options import PairOptions

OUTPUTS = (Output.JSONL, Output.CSV, Output.TSV, Output.TABLE)  # to stdout
# A table prints every this many rows, each part with its header: `| head` answers as soon as
# the first rows are scored, not after the whole input, and the same input makes the same parts.
TABLE_ROWS = 32


@model_options()
@reading_options()
@task_options(PairOptions, "pairs")
@delivery_options()
@backend_options()
def batch(
    files: FilesArg = None,
    fmt: FormatOpt = None,
    output: output_option(  # type: ignore[valid-type]
        (*OUTPUTS, Output.PARQUET),
        "jsonl, csv, tsv or table (parquet: files, with --engine ray --output-path).",
    ) = Output.JSONL,
    output_path: Annotated[
        Optional[Path],
        typer.Option(
            "--output-path",
            help="With --engine ray: write files here (--output parquet, jsonl or csv).",
        ),
    ] = None,
    threshold_from: ThresholdFromOpt = None,
    *,
    opts: ModelOptions,
    reading: ReadOptions,
    pairs: PairOptions,
    delivery: Delivery,
    backend: Backend,
) -> None:
    """Score pairs from JSONL, CSV or TSV: one output row per input row, in order, every
    input field kept, `prediction`, `scores` and `truncated` added (with --long-input
    chunk, also `evidence` and `windows`).

    Example: cat pairs.jsonl | squeezenli batch > scored.jsonl
    """
    fmt = check_choice("--format", fmt, (*FORMATS, "parquet") if backend.ray else FORMATS)
    output = chosen_output(output)
    if output_path is None:
        allowed("--output", output, OUTPUTS, "writes files: give --engine ray --output-path DIR")
    if threshold_from is not None and (pairs.threshold is not None or backend.ray):
        raise InputError("--threshold-from goes without --threshold, and not with --engine ray")
    if backend.ray:
        failed = _batch_on_ray(
            files or [], fmt, pairs, output, output_path, delivery, backend, opts
        )
    elif output_path is not None:
        raise InputError("--output-path goes with --engine ray")
    else:
        here = files, fmt, reading, pairs, output, delivery, backend, opts
        failed = _batch_here(*here, threshold_from)
    if failed:
        raise typer.Exit(1)


def _batch_here(
    files: list[str] | None,
    fmt: str | None,
    reading: ReadOptions,
    pairs: PairOptions,
    output: Output,
    delivery: Delivery,
    backend: Backend,
    opts: ModelOptions,
    threshold_from: Path | None = None,
) -> int:
    """batch's rows scored here or on the server, written to stdout; the rows that failed."""
    from squeezenli.cli.rowrun import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs

    inputs = Inputs(files, fmt, reading)
    error_log = ErrorLog(delivery.errors, inputs)
    scorer = backend.scorer(opts)
    if threshold_from is not None:  # --threshold from the file
        pairs = replace(pairs, threshold=fitted_threshold(threshold_from, scorer))
    columns = inputs.columns() if output in (Output.CSV, Output.TSV) else None
    names = delivery.prefix, columns, delivery.output_fields
    sink = ResultSink(output, scorer.labels(), pairs, *names)
    score = partial(scorer.results, options=pairs, on_error=delivery.on_error)
    try:
        with RowRun("scored", inputs, error_log, quiet=opts.quiet, skip=delivery.skip) as run:
            for outcome in run.outcomes(score):
                with run.writing(outcome):
                    sink.write(outcome.pair, outcome.output, outcome.record)
    finally:
        sink.close()
    return run.failed


def _batch_on_ray(
    files: list[str],
    fmt: str | None,
    pairs: PairOptions,
    output: Output,
    output_path: Path | None,
    delivery: Delivery,
    backend: Backend,
    opts: ModelOptions,
) -> int:
    """batch's rows scored by Ray actors (ray_engine.score_dataset); the rows that failed."""
    from squeezenli.cli.ray_batch import PredictionRows, RayJob, run_on_ray
    from squeezenli.ray_engine import result_fields
    from squeezenli.tasks.results import PairFields

    shape = result_fields(pairs, delivery.prefix, delivery.output_fields)

    def make_sink(labels):
        local = ResultSink(output, labels, pairs, delivery.prefix, None, delivery.output_fields)
        fields = PairFields(pairs.premise_field, pairs.hypothesis_field)
        return PredictionRows(local, shape, labels, fields)

    job = RayJob(pairs, shape, make_sink)
    return run_on_ray(files, fmt, job, backend, delivery, opts, output, output_path)


class ResultSink:
    """Result rows to stdout as JSON lines, CSV/TSV (a column per class) or a table, each
    input row with the result's fields after it (tasks/rows.py names them and refuses a row
    whose input holds one). `columns`: every input field, when known before the first row
    (CSV/TSV header)."""

    def __init__(
        self,
        output: Output,
        labels,
        options: PairOptions,
        prefix: str = "",
        columns: list[str] | None = None,
        names: str | None = None,
    ) -> None:
        from squeezenli.tasks.rows import ResultFields, prediction_names

        self.output = output
        self.labels = labels
        self._rows: list = []
        self._delimited = None
        self._flat = output in (Output.CSV, Output.TSV)
        own = prediction_names(
            labels,
            flat=self._flat,
            chunked=options.long_input is LongInput.CHUNK,
            entailed=options.threshold is not None,
            logits=options.logits,
        )
        self.shape = ResultFields(own, prefix, names)
        self.fields = self.shape.fields
        if self._flat:
            from squeezenli.records.writers import DelimitedWriter

            header = None if columns is None else [*columns, *self.fields]
            if columns is not None:
                self.shape.refuse(columns, "the input")
            self._delimited = DelimitedWriter(sys.stdout.buffer, output, header)

    def write(self, pair: tuple[str, str] | None, prediction, record: Record) -> None:
        """One result row; a row this output cannot take (a field that collides with the
        result's, or, in CSV/TSV, one the header lacks) is that row's RowFailure."""
        from squeezenli.tasks.rows import prediction_fields

        row = self.shape.row(record, prediction_fields(prediction, self._flat))
        if self.output is Output.JSONL:
            from squeezenli.cli.streams import write_json_line

            write_json_line(row)
        elif self._delimited is not None:
            from squeezenli.cli.signals import whole_line

            try:
                with whole_line():
                    self._delimited.write(row)
            except InputError as err:  # a field the header written lacks
                raise RowFailure(RowError.of(record, str(err))) from None
        else:
            self._rows.append((pair, prediction))
            if len(self._rows) == TABLE_ROWS:
                self._print_table()

    def _print_table(self) -> None:
        from squeezenli.cli.render import batch_table

        batch_table(self._rows, self.labels)
        sys.stdout.flush()
        self._rows = []

    def close(self) -> None:
        if self._delimited is not None:
            self._delimited.close()
        if self._rows:
            self._print_table()
