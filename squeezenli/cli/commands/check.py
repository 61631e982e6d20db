"""`squeezenli check [FILE ...]`: claims against sources, one output row per input row."""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from squeezenli.choices import Output
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
    delivery_options,
    fitted_threshold,
    model_options,
    reading_options,
    task_options,
)
from squeezenli.errors import EXIT_FAILED, EXIT_UNDER, InputError
from squeezenli.records.readers import FORMATS, ReadOptions, RowError, RowFailure
from squeezenli.tasks.options import CheckOptions

OUTPUTS = (Output.JSONL, Output.CSV, Output.TSV)


@model_options()
@reading_options()
@task_options(CheckOptions, "check")
@delivery_options()
@backend_options(ray=False)
def check(
    files: FilesArg = None,
    fmt: FormatOpt = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", case_sensitive=False, help="jsonl, csv or tsv.")
    ] = Output.JSONL,
    fail_under: Annotated[
        Optional[float],
        typer.Option(
            "--fail-under",
            min=0.0,
            max=1.0,
            help="A gate for CI: exit 4 when any row's score is under this, after writing "
            "every row.",
        ),
    ] = None,
    threshold_from: ThresholdFromOpt = None,
    *,
    opts: ModelOptions,
    reading: ReadOptions,
    check: CheckOptions,
    delivery: Delivery,
    backend: Backend,
) -> None:
    """Check texts against their sources: each sentence of `text` (an answer, a summary) is
    scored against the windows of `source`, and gets a verdict (supported, contradicted,
    not_supported), its probabilities and its evidence in the source; the row gets `claims`,
    a `score`, `supported_text` (only the supported sentences) and `windows`.

    Example: squeezenli check answers.jsonl --source-field document --text-field answer
    """
    from squeezenli.cli.rowrun import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs, rows, write_json_line
    from squeezenli.tasks.rows import ResultFields

    fmt = check_choice("--format", fmt, FORMATS)
    allowed("--output", output, OUTPUTS, "is not written by check")
    shape = ResultFields(check.result_names(), delivery.prefix, delivery.output_fields)
    inputs = Inputs(files, fmt, reading)
    error_log = ErrorLog(delivery.errors, inputs)
    scorer = backend.scorer(opts)
    check = _support_from(check, threshold_from, scorer)
    writer = None if output is Output.JSONL else _delimited(output, inputs, shape)
    run_check = partial(scorer.results, options=check, on_error=delivery.on_error)
    under = 0
    try:
        with RowRun("checked", inputs, error_log, quiet=opts.quiet, skip=delivery.skip) as run:
            for outcome in run.outcomes(run_check):
                under += fail_under is not None and outcome.output.score < fail_under
                with run.writing(outcome):
                    row = shape.row(outcome.record, outcome.output.fields())
                    if writer is None:
                        write_json_line(row)
                    else:
                        _write_delimited(writer, row, outcome.record)
    finally:
        if writer is not None:
            writer.close()
    if fail_under is not None and not opts.quiet:
        typer.echo(
            f"squeezenli: {under} of {rows(run.done)} under --fail-under {fail_under}", err=True
        )
    if run.failed or under:
        raise typer.Exit(EXIT_FAILED if run.failed else EXIT_UNDER)


def _support_from(check: CheckOptions, threshold_from: Path | None, scorer) -> CheckOptions:
    """The options with --support from a file of eval --save-threshold, when given (it
    must hold for the scorer's model; --support is not given then)."""
    if threshold_from is None:
        return check
    if check.support != CheckOptions().support:
        raise InputError("give --support or --threshold-from, not both")
    return replace(check, support=fitted_threshold(threshold_from, scorer))


def _delimited(output: Output, inputs, shape):
    """A CSV/TSV writer to stdout, under a header of the input's fields and the result's
    (when the input's fields are known before the first row)."""
    from squeezenli.records.writers import DelimitedWriter

    columns = inputs.columns()
    if columns is not None:
        shape.refuse(columns, "the input")
    header = None if columns is None else [*columns, *shape.fields]
    return DelimitedWriter(sys.stdout.buffer, output, header)


def _write_delimited(writer, row: dict, record) -> None:
    from squeezenli.cli.signals import whole_line

    try:
        with whole_line():
            writer.write(row)
    except InputError as err:  # a field the header written lacks
        raise RowFailure(RowError.of(record, str(err))) from None
