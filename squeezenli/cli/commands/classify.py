"""`squeezenli classify [TEXT ...] --labels L1,L2`: zero-shot classification by NLI."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from squeezenli.cli.options import (
    ErrorsOpt,
    FormatOpt,
    JsonOpt,
    ModelOptions,
    OnErrorOpt,
    check_choice,
    model_options,
    on_error_mode,
    reading_options,
)
from squeezenli.errors import InputError
from squeezenli.models.labels import DEFAULT_TEMPLATE
from squeezenli.records.readers import FORMATS, ReadOptions


@model_options()
@reading_options()
def classify(
    texts: Annotated[
        Optional[list[str]],
        typer.Argument(help="Texts to classify; none: read --input files or stdin."),
    ] = None,
    *,
    labels: Annotated[
        Optional[list[str]],
        typer.Option(
            "--labels", "-l", help="Candidate labels, comma-separated; repeatable (-l a -l b)."
        ),
    ] = None,
    hypotheses_file: Annotated[
        Optional[Path],
        typer.Option(
            "--hypotheses",
            help="Each label's own hypothesis: a JSON object label -> hypothesis, or a CSV/TSV "
            "with label,hypothesis columns (labels may hold commas there); its labels are the "
            "candidates unless --labels names them.",
        ),
    ] = None,
    labels_field: Annotated[
        str,
        typer.Option(
            "--labels-field", help="A row's own candidate labels (a list), used instead of -l."
        ),
    ] = "candidate_labels",
    template: Annotated[
        str, typer.Option("--template", "-t", help="Hypothesis for each label; {} is the label.")
    ] = DEFAULT_TEMPLATE,
    multi_label: Annotated[
        bool,
        typer.Option(
            "--multi-label", help="Score each label on its own (entailment vs contradiction)."
        ),
    ] = False,
    inputs: Annotated[
        Optional[list[str]],
        typer.Option("--input", "-i", help="JSONL/CSV/TSV file of texts ('-': stdin); repeatable."),
    ] = None,
    fmt: FormatOpt = None,
    text_field: Annotated[
        str, typer.Option("--text-field", help="The field holding the text.")
    ] = "text",
    json_out: JsonOpt = False,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            "--threshold",
            help="Select labels scoring at least this (multi-label: every one; else the top "
            "one, or none: abstain); adds `selected`.",
        ),
    ] = None,
    top_k: Annotated[
        Optional[int], typer.Option("--top-k", help="Keep only the K best labels and scores.")
    ] = None,
    none_label: Annotated[
        Optional[str],
        typer.Option("--none-label", help="What an abstention selects (with --threshold)."),
    ] = None,
    on_error: OnErrorOpt = None,
    errors: ErrorsOpt = None,
    opts: ModelOptions,
    reading: ReadOptions,
) -> None:
    """Zero-shot classification: which labels does each text entail? Output per text, highest
    score first: {"text", "labels", "scores"} plus the input's fields, as transformers'
    zero-shot pipeline gives them.

    Example: squeezenli classify "The match went to extra time." --labels sports,politics,music
    """
    from squeezenli.cli.rows import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs, Source, write_json_line
    from squeezenli.records.readers import Record, RowError, RowFailure
    from squeezenli.runtime.model import SCORE_DIGITS
    from squeezenli.tasks.zeroshot import (
        Decision,
        classify_records,
        hypotheses,
        load_hypotheses,
        parse_labels,
    )

    fmt = check_choice("--format", fmt, FORMATS)
    on_error = on_error_mode(on_error, errors)
    if texts and inputs:
        raise typer.BadParameter("give texts as arguments or --input files, not both")
    per_label = load_hypotheses(hypotheses_file) if hypotheses_file is not None else None
    given = [name for item in labels or [] for name in item.split(",")]
    candidates = parse_labels(given) if given else None
    if candidates is None and per_label is None and texts:
        raise InputError("give the candidate labels: --labels, or --hypotheses FILE")
    hypotheses(candidates or [], template, per_label)  # usage errors before the model loads
    decision = Decision(threshold, top_k, none_label)
    files_named = [text for text in texts or [] if os.path.isfile(text)]
    if files_named:
        raise InputError(
            f"'{files_named[0]}' is a file: to classify the texts in it, pass --input "
            f"{files_named[0]} (arguments are classified as they are)"
        )
    files = Inputs(inputs, fmt, reading)
    error_log = ErrorLog(errors, files)
    nli = opts.load()
    table = bool(texts) and not json_out and sys.stdout.isatty()
    sources = None
    if texts:
        text_field = "text"
        records = (Record("<arguments>", n, {"text": t}) for n, t in enumerate(texts, 1))
        sources = [Source(records, live=False)]

    def score(records, timely: bool):
        return classify_records(
            nli,
            records,
            candidates,
            text_field_name=text_field,
            template=template,
            multi_label=multi_label,
            decision=decision,
            per_label=per_label,
            labels_field=labels_field,
            on_error=on_error,
            timely=timely,
        )

    # The fields each result adds; `text` is the input's own when that is the text field.
    added = ["labels", "scores", "truncated"] + (["text"] if text_field != "text" else [])
    added += ["selected"] if threshold is not None else []
    results = []
    run = RowRun(
        "classified", files, error_log, quiet=opts.quiet, sources=sources, skip=on_error == "skip"
    )
    with run:
        for outcome in run.outcomes(score):
            if table:
                results.append(outcome.output)
                continue
            result = outcome.output
            taken = [name for name in added if name in outcome.record.data]
            with run.writing(outcome):
                if taken:
                    message = (
                        f"input field '{taken[0]}' would be overwritten by the result (text, "
                        "labels, scores, truncated): rename it in the input"
                    )
                    raise RowFailure(RowError.of(outcome.record, message, taken[0]))
                write_json_line(
                    {
                        **outcome.record.data,
                        "text": result.text,
                        "labels": result.labels,
                        "scores": [round(s, SCORE_DIGITS) for s in result.scores],
                        "truncated": result.truncated,
                        **({} if result.selected is None else {"selected": result.selected}),
                    }
                )
    if results:
        from squeezenli.cli.render import zero_shot_table

        zero_shot_table(results, multi_label)
    if run.failed:
        raise typer.Exit(1)
