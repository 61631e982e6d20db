"""`squeezenli eval FILE`: accuracy, per-class precision/recall/F1 and confusion on labelled
pairs."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from squeezenli.cli.options import (
    AggregateOpt,
    FilesArg,
    FormatOpt,
    HypothesisFieldOpt,
    JsonOpt,
    LongInputOpt,
    ModelOptions,
    OnErrorOpt,
    PremiseFieldOpt,
    check_choice,
    model_options,
    on_error_mode,
    reading_options,
)
from squeezenli.records.readers import FORMATS, ReadOptions
from squeezenli.tasks.choices import Aggregate, LongInput


@model_options()
@reading_options()
def evaluate(
    files: FilesArg = None,
    fmt: FormatOpt = None,
    label_field: Annotated[
        str, typer.Option("--label-field", help="The field holding the gold label.")
    ] = "label",
    premise_field: PremiseFieldOpt = None,
    hypothesis_field: HypothesisFieldOpt = None,
    json_out: JsonOpt = False,
    on_error: OnErrorOpt = None,
    long_input: LongInputOpt = LongInput.TRUNCATE,
    aggregate: AggregateOpt = Aggregate.ENTAILMENT,
    errors: Annotated[
        Optional[Path],
        typer.Option("--errors", help="Write misclassified rows here as JSON lines."),
    ] = None,
    by: Annotated[
        Optional[str],
        typer.Option(
            "--by", help="Every figure per value of this field too (genre, heuristic, dataset)."
        ),
    ] = None,
    *,
    opts: ModelOptions,
    reading: ReadOptions,
) -> None:
    """Evaluate the model on labelled pairs. Gold labels: entailment, neutral, contradiction
    (any case); data labelled entailment/not_entailment is scored with neutral and
    contradiction merged. Bad rows under --on-error skip are reported on stderr.

    Example: squeezenli eval mnli_dev.jsonl --label-field gold_label --json
    """
    from squeezenli.cli.rows import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs, JsonLinesFile, print_json
    from squeezenli.tasks.evaluation import Report, judge_records

    fmt = check_choice("--format", fmt, FORMATS)
    on_error = on_error_mode(on_error, None)
    inputs = Inputs(files, fmt, reading)
    misclassified = JsonLinesFile(errors, "--errors", inputs)
    nli = opts.load()
    report = Report.for_model(nli.labels, by)

    judge = partial(
        judge_records,
        nli,
        label_field=label_field,
        premise_field=premise_field,
        hypothesis_field=hypothesis_field,
        on_error=on_error,
        long_input=long_input,
        aggregate=aggregate,
    )

    try:
        with RowRun("evaluated", inputs, ErrorLog(None), quiet=opts.quiet) as run:
            for judged in run.outcomes(judge):
                report.add_judged(judged)
                if not judged.output.unlabelled and not judged.output.correct:
                    misclassified.write(_misclassified_row(judged))
    finally:
        misclassified.close()
    report.failed = run.failed
    if report.merged_gold:
        typer.echo(
            "squeezenli: note: the model has two outputs (entailment, not_entailment): "
            "gold neutral and contradiction were counted as not_entailment",
            err=True,
        )
    from squeezenli import __version__

    result = {
        **report.as_dict(),
        "model": nli.files.source,
        "revision": nli.files.revision,
        "labels": list(nli.labels.names),
        "label_source": nli.labels.source,
        "precision": nli.precision,
        "long_input": long_input.value,
        "squeezenli": __version__,
    }
    if json_out:
        print_json(result)
    else:
        from squeezenli.cli.render import evaluation_tables

        evaluation_tables(result)
    if report.failed:
        raise typer.Exit(1)


def _misclassified_row(judged) -> dict:
    """A row the model got wrong, with the gold label, its prediction and where it was."""
    return {
        **judged.record.data,
        "gold": judged.output.gold,
        **judged.output.prediction.fields(),
        "source": judged.record.source,
        "line": judged.record.line,
    }
