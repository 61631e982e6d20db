"""`squeezenli eval FILE`: accuracy, per-class precision/recall/F1 and confusion on labelled
pairs."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..io import FORMATS
from .options import (
    FilesArg,
    FormatOpt,
    HypothesisFieldOpt,
    JsonOpt,
    ModelOptions,
    OnErrorOpt,
    PremiseFieldOpt,
    check_choice,
    model_options,
)


@model_options()
def evaluate(
    files: FilesArg = None,
    fmt: FormatOpt = None,
    label_field: Annotated[
        str, typer.Option("--label-field", help="The field holding the gold label.")
    ] = "label",
    premise_field: PremiseFieldOpt = None,
    hypothesis_field: HypothesisFieldOpt = None,
    json_out: JsonOpt = False,
    on_error: OnErrorOpt = "fail",
    errors: Annotated[
        Optional[Path],
        typer.Option("--errors", help="Write misclassified rows here as JSON lines."),
    ] = None,
    *,
    opts: ModelOptions,
) -> None:
    """Evaluate the model on labelled pairs. Gold labels: entailment, neutral, contradiction
    (any case); data labelled entailment/not_entailment is scored with neutral and
    contradiction merged. Bad rows under --on-error skip are reported on stderr.

    Example: squeezenli eval mnli_dev.jsonl --label-field gold_label --json
    """
    from ..evaluation import Report, judge_records
    from .rows import RowRun
    from .streams import ErrorLog, Inputs

    check_choice("--format", fmt, FORMATS)
    check_choice("--on-error", on_error, ("fail", "skip"))
    nli = opts.load()
    report = Report()
    misclassified = _Misclassified(errors)

    judge = partial(
        judge_records,
        nli,
        label_field=label_field,
        premise_field=premise_field,
        hypothesis_field=hypothesis_field,
        on_error=on_error,
    )

    try:
        with RowRun("evaluated", Inputs(files, fmt), ErrorLog(None), quiet=opts.quiet) as run:
            for judged in run.outcomes(judge):
                report.add(judged.gold, judged.prediction.label)
                if not judged.correct:
                    misclassified.write(judged)
    finally:
        misclassified.close()
    report.failed = run.failed
    result = report.as_dict()
    if json_out:
        import orjson

        sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        from ..render import evaluation_tables

        evaluation_tables(result)
    if report.failed:
        raise typer.Exit(1)


class _Misclassified:
    """Rows the model got wrong, with its prediction and scores, as JSON lines in a file."""

    def __init__(self, path: Path | None) -> None:
        from .streams import open_output

        self._file = open_output(path, "--errors")

    def write(self, judged) -> None:
        if self._file is None:
            return
        from ..io import write_jsonl

        row = {
            **judged.record.data,
            "gold": judged.gold,
            **judged.prediction.fields(),
            "source": judged.record.source,
            "line": judged.record.line,
        }
        write_jsonl(self._file, row)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
