"""`squeezenli batch [FILE ...]`: score pairs from JSONL/CSV/TSV, one output row per input."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from squeezenli.choices import Engine, LongInput, OnError, Output
from squeezenli.cli.options import (
    AddressOpt,
    ApiKeyOpt,
    EngineOpt,
    ErrorsOpt,
    FilesArg,
    FormatOpt,
    ModelOptions,
    OnErrorOpt,
    OutputFieldsOpt,
    PrefixOpt,
    ServerOpt,
    allowed,
    check_choice,
    model_options,
    on_error_mode,
    reading_options,
    scorer_for,
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
def batch(
    files: FilesArg = None,
    fmt: FormatOpt = None,
    output: Annotated[
        Output,
        typer.Option(
            "--output",
            "-o",
            case_sensitive=False,
            help="jsonl, csv, tsv or table (parquet: files, with --engine ray --output-path).",
        ),
    ] = Output.JSONL,
    on_error: OnErrorOpt = None,
    errors: ErrorsOpt = None,
    engine: EngineOpt = Engine.LOCAL,
    address: AddressOpt = None,
    prefix: PrefixOpt = "",
    output_fields: OutputFieldsOpt = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
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
    pairs: PairOptions,
) -> None:
    """Score pairs from JSONL, CSV or TSV: one output row per input row, in order, every
    input field kept, `prediction`, `scores` and `truncated` added (with --long-input
    chunk, also `evidence` and `windows`).

    Example: cat pairs.jsonl | squeezenli batch > scored.jsonl
    """
    from squeezenli.cli.rows import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs

    fmt = check_choice("--format", fmt, (*FORMATS, "parquet") if engine is Engine.RAY else FORMATS)
    if output_path is None:
        allowed("--output", output, OUTPUTS, "writes files: give --engine ray --output-path DIR")
    on_error = on_error_mode(on_error, errors)
    if server is not None and engine is Engine.RAY:
        raise InputError("--server scores on a server, --engine ray on Ray: give one")
    if engine is Engine.RAY:
        _batch_on_ray(
            files or [],
            fmt,
            pairs,
            output,
            output_path,
            prefix,
            output_fields,
            address,
            on_error,
            errors,
            opts,
        )
        return
    if output_path is not None:
        raise InputError("--output-path goes with --engine ray")
    inputs = Inputs(files, fmt, reading)
    error_log = ErrorLog(errors, inputs)
    scorer = scorer_for(server, api_key, opts)
    labels = scorer.labels()
    columns = inputs.columns() if output in (Output.CSV, Output.TSV) else None
    sink = ResultSink(output, labels, pairs, prefix, columns, output_fields)
    score = partial(scorer.results, options=pairs, on_error=on_error)
    try:
        with RowRun(
            "scored", inputs, error_log, quiet=opts.quiet, skip=on_error is OnError.SKIP
        ) as run:
            for outcome in run.outcomes(score):
                with run.writing(outcome):
                    sink.write(outcome.pair, outcome.output, outcome.record)
    finally:
        sink.close()
    if run.failed:
        raise typer.Exit(1)


def _batch_on_ray(
    files: list[str],
    fmt: str | None,
    pairs: PairOptions,
    output: Output,
    output_path: Path | None,
    prefix: str,
    output_fields: str | None,
    address: str | None,
    on_error: OnError,
    errors: Path | None,
    opts: ModelOptions,
) -> None:
    """batch's rows scored by Ray actors (ray_engine.score_dataset)."""
    from squeezenli.cli.ray_batch import PredictionRows, RayJob, run_on_ray
    from squeezenli.ray_engine import result_fields
    from squeezenli.tasks.scoring import PairFields

    shape = result_fields(pairs, prefix, output_fields)

    def make_sink(labels):
        local = ResultSink(output, labels, pairs, prefix, None, output_fields)
        fields = PairFields(pairs.premise_field, pairs.hypothesis_field)
        return PredictionRows(local, shape, labels, fields)

    failed = run_on_ray(
        files,
        fmt,
        RayJob(pairs, shape, make_sink, prefix, output_fields),
        address=address,
        output=output,
        output_path=output_path,
        on_error=on_error,
        errors=errors,
        opts=opts,
    )
    if failed:
        raise typer.Exit(1)


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
