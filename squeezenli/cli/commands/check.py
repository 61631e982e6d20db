"""`squeezenli check [FILE ...]`: claims against sources, one output row per input row."""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from squeezenli.choices import Output
from squeezenli.cli.commands.batch import TABLE_ROWS
from squeezenli.cli.options import (
    Backend,
    Delivery,
    FilesArg,
    FormatOpt,
    ModelOptions,
    ThresholdFromOpt,
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
from squeezenli.errors import EXIT_FAILED, EXIT_UNDER, InputError
from squeezenli.records.readers import FORMATS, ReadOptions, RowError, RowFailure
from squeezenli.tasks.options import CheckOptions

OUTPUTS = (Output.JSONL, Output.CSV, Output.TSV, Output.TABLE, Output.HTML)


@model_options()
@reading_options()
@task_options(CheckOptions, "check")
@delivery_options()
@backend_options(ray=False)
def check(
    files: FilesArg = None,
    fmt: FormatOpt = None,
    output: output_option(  # type: ignore[valid-type]
        OUTPUTS,
        "jsonl, csv or tsv; table (a terminal's); html (a page to open: each claim coloured by "
        "its verdict, its evidence highlighted in its passage; -o html > report.html).",
    ) = Output.JSONL,
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
    from squeezenli.cli.streams import ErrorLog, Inputs, rows
    from squeezenli.tasks.rows import ResultFields

    fmt = check_choice("--format", fmt, FORMATS)
    output = chosen_output(output)
    shape = ResultFields(check.result_names(), delivery.prefix, delivery.output_fields)
    inputs = Inputs(files, fmt, reading)
    error_log = ErrorLog(delivery.errors, inputs)
    scorer = backend.scorer(opts)
    check = _support_from(check, threshold_from, scorer)
    sink = _Sink(output, inputs, shape, check, fail_under, scorer)
    run_check = partial(scorer.results, options=check, on_error=delivery.on_error)
    under = 0
    complete = False
    try:
        with RowRun("checked", inputs, error_log, quiet=opts.quiet, skip=delivery.skip) as run:
            for outcome in run.outcomes(run_check):
                under += fail_under is not None and outcome.output.score < fail_under
                with run.writing(outcome):
                    sink.write(outcome.record, outcome.output.fields())
        complete = True
    finally:
        sink.close(complete)
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


class _Sink:
    """Where checked rows go: JSON lines, CSV/TSV under one header, a table every TABLE_ROWS
    rows (so `| head` answers at once), or the HTML report (reports/check.py), streamed."""

    def __init__(self, output: Output, inputs, shape, check: CheckOptions, fail_under, scorer):
        self.output, self.shape, self.check = output, shape, check
        self.writer = (
            _delimited(output, inputs, shape) if output in (Output.CSV, Output.TSV) else None
        )
        self.table: list[tuple[str, dict]] = []
        self.report = None
        self._page = (scorer, fail_under) if output is Output.HTML else None

    def write(self, record, fields: dict) -> None:
        from squeezenli.cli.signals import whole_line
        from squeezenli.cli.streams import write_json_line

        if self.output is Output.JSONL:
            write_json_line(self.shape.row(record, fields))
        elif self.writer is not None:
            _write_delimited(self.writer, self.shape.row(record, fields), record)
        elif self._page is not None:
            from squeezenli.tasks.passages import read_passages

            passages, _ = read_passages(record, self.check.source_field)
            given = self.check.claims_field is not None
            text = None if given else (record.data or {}).get(self.check.text_field)
            with whole_line():
                self._started().add(record.where, text, [(p.key, p.text) for p in passages], fields)
        else:
            self.table.append((record.where, fields))
            if len(self.table) == TABLE_ROWS:
                self._print_table()

    def _print_table(self) -> None:
        from squeezenli.cli.render import check_table

        check_table(self.table)
        self.table = []

    def _started(self):
        """The HTML page, begun at the first row (a run refused before any row writes none)."""
        from squeezenli.reports.check import CheckReport

        if self.report is None:
            assert self._page is not None
            scorer, fail_under = self._page
            self.report = CheckReport(sys.stdout, _subtitle(scorer, self.check), fail_under)
        return self.report

    def close(self, complete: bool) -> None:
        """The end of the output; a page the run did not finish says so on it."""
        if self.writer is not None:
            self.writer.close()
        if self.table:
            self._print_table()
        if self._page is not None and (complete or self.report is not None):
            self._started().close(complete)
            sys.stdout.flush()


def _subtitle(scorer, check: CheckOptions) -> str:
    """What the report says it was made with: the model, its precision, the options."""
    from squeezenli import __version__

    identity = scorer.identity()
    return (
        f"{identity.model} ({identity.precision}), support {check.support:g}, contradict "
        f"{check.contradict:g}, evidence {check.evidence}; squeezenli {__version__}"
    )


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
