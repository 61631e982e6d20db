"""`squeezenli eval FILE`: accuracy, per-class precision/recall/F1 and confusion on labelled
pairs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from squeezenli.choices import Aggregate, LongInput, OnError
from squeezenli.cli.options import (
    AggregateOpt,
    ErrorsOpt,
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
from squeezenli.errors import InputError
from squeezenli.models.labels import DEFAULT_TEMPLATE
from squeezenli.records.readers import FORMATS, ReadOptions

if TYPE_CHECKING:
    from squeezenli.cli.rows import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs, JsonLinesFile


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
    errors: ErrorsOpt = None,
    misclassified_path: Annotated[
        Optional[Path],
        typer.Option(
            "--misclassified",
            help="Write the rows the model got wrong here as JSON lines (input fields, gold "
            "and prediction).",
        ),
    ] = None,
    by: Annotated[
        Optional[str],
        typer.Option(
            "--by", help="Every figure per value of this field too (genre, heuristic, dataset)."
        ),
    ] = None,
    labels: Annotated[
        Optional[list[str]],
        typer.Option(
            "--labels",
            "-l",
            help="Zero-shot: classify --text-field against these labels (as classify does) "
            "and score the chosen labels against the gold ones.",
        ),
    ] = None,
    hypotheses_file: Annotated[
        Optional[Path],
        typer.Option("--hypotheses", help="Zero-shot: each label's own hypothesis (as classify)."),
    ] = None,
    template: Annotated[
        str, typer.Option("--template", "-t", help="Zero-shot: hypothesis for each label.")
    ] = DEFAULT_TEMPLATE,
    multi_label: Annotated[
        bool,
        typer.Option(
            "--multi-label",
            help="Zero-shot, multi-label: gold is a list of labels; a label is chosen at 0.5 "
            "(or --threshold).",
        ),
    ] = False,
    threshold: Annotated[
        Optional[float],
        typer.Option("--threshold", help="Zero-shot: choose labels as classify --threshold."),
    ] = None,
    text_field: Annotated[
        str, typer.Option("--text-field", help="Zero-shot: the field holding the text.")
    ] = "text",
    labels_field: Annotated[
        str, typer.Option("--labels-field", help="Zero-shot: a row's own candidate labels.")
    ] = "candidate_labels",
    classified: Annotated[
        bool,
        typer.Option(
            "--classified",
            help="The rows are classify's output: evaluate their labels and scores as they are "
            "(no model is loaded).",
        ),
    ] = False,
    *,
    opts: ModelOptions,
    reading: ReadOptions,
) -> None:
    """Evaluate the model on labelled pairs. Gold labels: entailment, neutral, contradiction
    (any case); data labelled entailment/not_entailment is scored with neutral and
    contradiction merged. Bad rows under --on-error skip are reported on stderr. With
    --labels or --hypotheses, evaluate zero-shot classification of texts instead (per-label
    precision, recall and F1); with --classified, classify's output as it is.

    Example: squeezenli eval mnli_dev.jsonl --label-field gold_label --json
    """
    from squeezenli.cli.streams import ErrorLog, Inputs, JsonLinesFile, print_json
    from squeezenli.tasks.evaluation import Report, judge_records

    fmt = check_choice("--format", fmt, FORMATS)
    on_error = on_error_mode(on_error, errors)
    inputs = Inputs(files, fmt, reading)
    outputs = EvalOutputs(
        ErrorLog(errors, inputs),
        JsonLinesFile(misclassified_path, "--misclassified", inputs),
        on_error,
    )
    if labels or hypotheses_file is not None or classified:
        zero_shot = ZeroShotEval(
            labels, hypotheses_file, template, multi_label, threshold, text_field, labels_field
        )
        _evaluate_zero_shot(zero_shot, inputs, classified, label_field, by, outputs, json_out, opts)
        return
    misclassified = outputs.misclassified
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
        with outputs.run(inputs, opts.quiet) as run:
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
    result = {**report.as_dict(), **_metadata(nli), "long_input": long_input.value}
    _scored_any(result["counts"])
    if json_out:
        print_json(result)
    else:
        from squeezenli.cli.render import evaluation_tables

        evaluation_tables(result)
    if report.failed:
        raise typer.Exit(1)


def _scored_any(counts: dict) -> None:
    """A report of no rows would read as accuracy 0: refused, saying what the rows were."""
    if not counts["scored"]:
        raise InputError(
            f"nothing to evaluate: no labelled row was scored ({counts['unlabelled']} "
            f"unlabelled, {counts['failed']} failed)"
        )


def _misclassified_row(judged) -> dict:
    """A row the model got wrong: where it was, the gold label and the prediction, and the
    input row whole under `row` (as --errors writes it: no input field can be overwritten)."""
    return {
        "source": judged.record.source,
        "line": judged.record.line,
        "gold": judged.output.gold,
        **judged.output.prediction.fields(),
        "row": judged.record.data,
    }


def _metadata(nli) -> dict:
    """What a figure needs beside it: which model, revision, precision and label mapping."""
    from squeezenli import __version__

    return {
        "model": nli.files.source,
        "revision": nli.files.revision,
        "labels": list(nli.labels.names),
        "label_source": nli.labels.kind.value,
        "label_source_detail": nli.labels.source,
        "precision": nli.precision,
        "squeezenli": __version__,
    }


@dataclass(frozen=True)
class EvalOutputs:
    """Where eval's rows go besides its report: rows it could not read (--errors, as in
    batch, under --on-error) and rows the model got wrong (--misclassified)."""

    errors: ErrorLog
    misclassified: JsonLinesFile
    on_error: OnError

    def run(self, inputs: Inputs, quiet: bool) -> RowRun:
        from squeezenli.cli.rows import RowRun

        return RowRun(
            "evaluated", inputs, self.errors, quiet=quiet, skip=self.on_error is OnError.SKIP
        )


@dataclass(frozen=True)
class ZeroShotEval:
    """eval's zero-shot options, as classify takes them."""

    labels: list[str] | None
    hypotheses_file: Path | None
    template: str
    multi_label: bool
    threshold: float | None
    text_field: str
    labels_field: str


def _evaluate_zero_shot(
    options: ZeroShotEval,
    inputs,
    classified: bool,
    label_field: str,
    by: str | None,
    outputs: EvalOutputs,
    json_out: bool,
    opts: ModelOptions,
) -> None:
    """eval --labels/--hypotheses (classify, then judge) or --classified (judge classify's
    rows as they are)."""
    from squeezenli.cli.streams import print_json
    from squeezenli.tasks.evaluation import (
        LabelReport,
        classified_rows,
        judge_zero_shot,
    )
    from squeezenli.tasks.options import ZeroShotOptions
    from squeezenli.tasks.zeroshot import classify_records, load_hypotheses

    per_label = None
    if options.hypotheses_file is not None:
        per_label = load_hypotheses(options.hypotheses_file)
    given = [name for item in options.labels or [] for name in item.split(",")]
    zero_shot = ZeroShotOptions(  # usage errors before loading
        labels=tuple(given) or None,
        hypotheses=per_label,
        template=options.template,
        multi_label=options.multi_label,
        threshold=options.threshold,
        text_field=options.text_field,
        labels_field=options.labels_field,
    )
    on_error, misclassified = outputs.on_error, outputs.misclassified
    nli = None if classified else opts.load()

    def judge(records, timely: bool):
        if classified:
            results = classified_rows(records)
        else:
            assert nli is not None
            results = classify_records(
                nli, records, options=zero_shot, on_error=on_error, timely=timely
            )
        return judge_zero_shot(
            results,
            label_field=label_field,
            multi_label=options.multi_label,
            threshold=options.threshold,
            on_error=on_error,
        )

    report = LabelReport(options.multi_label, by=by)
    try:
        with outputs.run(inputs, opts.quiet) as run:
            for judged in run.outcomes(judge):
                report.add_judged(judged)
                verdict = judged.output
                if verdict.gold is not None and set(verdict.gold) != set(verdict.chosen):
                    misclassified.write(
                        {
                            "source": judged.record.source,
                            "line": judged.record.line,
                            "gold": list(verdict.gold),
                            "chosen": list(verdict.chosen),
                            "row": judged.record.data,
                        }
                    )
    finally:
        misclassified.close()
    report.failed = run.failed
    result = report.as_dict()
    _scored_any(result["counts"])
    if nli is not None:
        result.update(_metadata(nli))
        result["template"] = options.template
    result["threshold"] = options.threshold
    if json_out:
        print_json(result)
    else:
        from squeezenli.cli.render import zero_shot_evaluation_tables

        zero_shot_evaluation_tables(result)
    if report.failed:
        raise typer.Exit(1)
