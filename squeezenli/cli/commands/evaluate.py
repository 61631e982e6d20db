"""`squeezenli eval FILE`: accuracy, per-class precision/recall/F1 and confusion on labelled
pairs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from squeezenli.choices import OnError
from squeezenli.cli.options import (
    Delivery,
    FilesArg,
    FormatOpt,
    JsonOpt,
    ModelOptions,
    check_choice,
    delivery_options,
    model_options,
    reading_options,
    task_options,
    with_candidates,
)
from squeezenli.errors import InputError
from squeezenli.records.readers import FORMATS, ReadOptions
from squeezenli.tasks.options import EvalOptions, PairOptions, ZeroShotOptions

if TYPE_CHECKING:
    from squeezenli.cli.rowrun import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs, JsonLinesFile


@model_options()
@reading_options()
@task_options(EvalOptions, "gold")
@task_options(PairOptions, "pairs", skip=("threshold", "logits"))
@task_options(ZeroShotOptions, "zero_shot", skip=("labels", "hypotheses", "top_k", "none_label"))
@delivery_options(naming=False)
def evaluate(
    files: FilesArg = None,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
    misclassified_path: Annotated[
        Optional[Path],
        typer.Option(
            "--misclassified",
            help="Write the rows the model got wrong here as JSON lines (input fields, gold "
            "and prediction).",
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
    save_threshold: Annotated[
        Optional[Path],
        typer.Option(
            "--save-threshold",
            help="Write the best threshold found on two-class data, with the model, revision "
            "and precision it holds for, to this file (for check and batch --threshold-from).",
        ),
    ] = None,
    report_path: Annotated[
        Optional[Path],
        typer.Option(
            "--report",
            help="Also write a self-contained HTML page here: the figures, the confusion "
            "matrix as a heatmap, the ROC curve with the best threshold marked, a reliability "
            "diagram, and each --by group.",
        ),
    ] = None,
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
    gold: EvalOptions,
    pairs: PairOptions,
    zero_shot: ZeroShotOptions,
    delivery: Delivery,
) -> None:
    """Evaluate the model on labelled pairs. Gold labels: entailment, neutral, contradiction
    (any case); data labelled entailment/not_entailment is scored with neutral and
    contradiction merged. Bad rows under --on-error skip are reported on stderr. With
    --labels or --hypotheses, evaluate zero-shot classification of texts instead (per-label
    precision, recall and F1); with --classified, classify's output as it is.

    Example: squeezenli eval mnli_dev.jsonl --label-field gold_label --json
    """
    from squeezenli.cli.streams import ErrorLog, Inputs, JsonLinesFile, print_json

    fmt = check_choice("--format", fmt, FORMATS)
    inputs = Inputs(files, fmt, reading)
    outputs = EvalOutputs(
        ErrorLog(delivery.errors, inputs),
        JsonLinesFile(misclassified_path, "--misclassified", inputs),
        delivery.on_error,
    )
    zero_shot_run = bool(labels) or hypotheses_file is not None or classified
    if zero_shot_run and save_threshold is not None:
        raise InputError("--save-threshold fits a threshold on labelled pairs, not zero-shot")
    if report_path is not None and inputs.includes(report_path):
        raise InputError(
            f"--report {report_path} is one of the input files: it would be overwritten"
        )
    charts = None
    if zero_shot_run:
        zero_shot = with_candidates(zero_shot, labels, hypotheses_file)
        result = _evaluate_zero_shot(zero_shot, inputs, classified, gold, outputs, opts)
    else:
        result, charts = _evaluate_pairs(pairs, inputs, gold, outputs, opts)
    _scored_any(result["counts"])
    if report_path is not None:
        _write_report(report_path, result, charts)
    if save_threshold is not None:  # refused before anything is printed when none was found
        _save(result, save_threshold, files)
    if json_out:
        print_json(result)
    elif zero_shot_run:
        from squeezenli.cli.render import zero_shot_evaluation_tables

        zero_shot_evaluation_tables(result)
    else:
        from squeezenli.cli.render import evaluation_tables

        evaluation_tables(result)
    if result["counts"]["failed"]:
        raise typer.Exit(1)


def _write_report(path: Path, result: dict, charts: dict | None) -> None:
    """The HTML page, written whole or not at all."""
    from squeezenli.models.atomic import atomic_path
    from squeezenli.reports.evaluation import eval_report

    try:
        with atomic_path(path) as tmp:
            tmp.write_text(eval_report(result, charts, "squeezenli eval"), encoding="utf-8")
            mask = os.umask(0)
            os.umask(mask)
            tmp.chmod(0o666 & ~mask)  # a page to open and share, as any file the user writes
    except OSError as err:
        raise InputError(f"cannot write --report {path}: {err.strerror or err}") from None


def _save(result: dict, path: Path, files: list[str] | None) -> None:
    from squeezenli.tasks.thresholds import FittedThreshold, ModelIdentity

    identity = ModelIdentity(result["model"], result["revision"], result["precision"])
    FittedThreshold.from_report(result, identity, files or ["<stdin>"]).save(path)


def _evaluate_pairs(
    pairs: PairOptions, inputs: Inputs, gold: EvalOptions, outputs: EvalOutputs, opts
) -> tuple[dict, dict]:
    """eval on labelled pairs: the report, with what was run, and its curves."""
    from squeezenli.tasks.evaluation import Report, curves, judge_records

    nli = opts.load()
    report = Report.for_model(nli.labels, gold.by)
    judge = partial(
        judge_records, nli, options=pairs, label_field=gold.label_field, on_error=outputs.on_error
    )
    misclassified = outputs.misclassified
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
    result = {**report.as_dict(), **_metadata(nli), "long_input": pairs.long_input.value}
    return result, curves(report)


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
        from squeezenli.cli.rowrun import RowRun

        return RowRun(
            "evaluated", inputs, self.errors, quiet=quiet, skip=self.on_error is OnError.SKIP
        )


def _evaluate_zero_shot(
    zero_shot: ZeroShotOptions,
    inputs: Inputs,
    classified: bool,
    gold: EvalOptions,
    outputs: EvalOutputs,
    opts: ModelOptions,
) -> dict:
    """eval --labels/--hypotheses (classify, then judge) or --classified (judge classify's
    rows as they are): the report, with what was run."""
    from squeezenli.tasks.evaluation import LabelReport, classified_rows, judge_zero_shot
    from squeezenli.tasks.zeroshot import classify_records

    nli = None if classified else opts.load()

    def judge(records, timely: bool):
        if nli is None:
            results = classified_rows(records)
        else:
            results = classify_records(
                nli, records, options=zero_shot, on_error=outputs.on_error, timely=timely
            )
        return judge_zero_shot(
            results,
            label_field=gold.label_field,
            multi_label=zero_shot.multi_label,
            threshold=zero_shot.threshold,
            on_error=outputs.on_error,
        )

    report = LabelReport(zero_shot.multi_label, by=gold.by)
    try:
        with outputs.run(inputs, opts.quiet) as run:
            for judged in run.outcomes(judge):
                report.add_judged(judged)
                verdict = judged.output
                if verdict.gold is not None and set(verdict.gold) != set(verdict.chosen):
                    outputs.misclassified.write(_wrong_labels(judged))
    finally:
        outputs.misclassified.close()
    report.failed = run.failed
    result = report.as_dict()
    if nli is not None:
        result.update(_metadata(nli))
        result["template"] = zero_shot.template
    result["threshold"] = zero_shot.threshold
    return result


def _wrong_labels(judged) -> dict:
    """A row whose chosen labels are not its gold ones, as --misclassified writes it."""
    return {
        "source": judged.record.source,
        "line": judged.record.line,
        "gold": list(judged.output.gold),
        "chosen": list(judged.output.chosen),
        "row": judged.record.data,
    }
