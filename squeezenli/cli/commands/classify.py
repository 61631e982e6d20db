"""`squeezenli classify [TEXT ...] --labels L1,L2`: zero-shot classification by NLI."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from squeezenli.cli.options import (
    Backend,
    Delivery,
    FormatOpt,
    JsonOpt,
    ModelOptions,
    backend_options,
    check_choice,
    delivery_options,
    model_options,
    reading_options,
    task_options,
    with_candidates,
)
from squeezenli.errors import InputError
from squeezenli.records.readers import FORMATS, ReadOptions
from squeezenli.tasks.options import ZeroShotOptions
from squeezenli.tasks.rows import ResultFields


@model_options()
@reading_options()
@task_options(ZeroShotOptions, "zero_shot", skip=("labels", "hypotheses"))
@delivery_options()
@backend_options()
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
    hypotheses: Annotated[
        Optional[Path],
        typer.Option(
            "--hypotheses",
            help="Each label's own hypothesis: a JSON object label -> hypothesis, or a CSV/TSV "
            "with label,hypothesis columns (labels may hold commas there); its labels are the "
            "candidates unless --labels names them.",
        ),
    ] = None,
    inputs: Annotated[
        Optional[list[str]],
        typer.Option("--input", "-i", help="JSONL/CSV/TSV file of texts ('-': stdin); repeatable."),
    ] = None,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
    opts: ModelOptions,
    reading: ReadOptions,
    zero_shot: ZeroShotOptions,
    delivery: Delivery,
    backend: Backend,
) -> None:
    """Zero-shot classification: which labels does each text entail? Output per text, highest
    score first: {"text", "labels", "scores"} plus the input's fields, as transformers'
    zero-shot pipeline gives them.

    Example: squeezenli classify "The match went to extra time." --labels sports,politics,music
    """
    fmt = check_choice("--format", fmt, FORMATS)
    if texts and inputs:
        raise typer.BadParameter("give texts as arguments or --input files, not both")
    zero_shot = _candidates(zero_shot, labels, hypotheses, bool(texts))
    shape = ResultFields(zero_shot.result_names(), delivery.prefix, delivery.output_fields)
    _refuse_files_as_texts(texts or [])
    if backend.ray and texts:
        raise InputError("--engine ray classifies --input files, not arguments")
    if backend.ray:
        failed = _classify_on_ray(inputs or [], fmt, shape, zero_shot, delivery, backend, opts)
    else:
        table = bool(texts) and not json_out and sys.stdout.isatty()
        failed = _classify_here(
            texts, inputs, fmt, reading, zero_shot, shape, delivery, backend, opts, table
        )
    if failed:
        raise typer.Exit(1)


def _candidates(
    zero_shot: ZeroShotOptions, labels: list[str] | None, hypotheses: Path | None, texts: bool
) -> ZeroShotOptions:
    """The options with the candidates --labels and --hypotheses give (texts given as
    arguments are read from `text`); texts as arguments need candidates."""
    zero_shot = with_candidates(zero_shot, labels, hypotheses)
    if texts:
        zero_shot = replace(zero_shot, text_field="text")
        if zero_shot.candidates() is None:
            raise InputError("give the candidate labels: --labels, or --hypotheses FILE")
    return zero_shot


def _classify_here(
    texts: list[str] | None,
    inputs: list[str] | None,
    fmt: str | None,
    reading: ReadOptions,
    zero_shot: ZeroShotOptions,
    shape: ResultFields,
    delivery: Delivery,
    backend: Backend,
    opts: ModelOptions,
    table: bool,
) -> int:
    """classify's rows computed here or on the server: JSON lines to stdout, or one table
    once every text is classified; the rows that failed."""
    from squeezenli.cli.rowrun import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs, Source, write_json_line
    from squeezenli.records.readers import Record

    files = Inputs(inputs, fmt, reading)
    error_log = ErrorLog(delivery.errors, files)
    scorer = backend.scorer(opts)
    sources = None
    if texts:
        records = (Record("<arguments>", n, {"text": t}) for n, t in enumerate(texts, 1))
        sources = [Source(records, live=False)]
    score = partial(scorer.results, options=zero_shot, on_error=delivery.on_error)
    results = []
    run = RowRun(
        "classified", files, error_log, quiet=opts.quiet, sources=sources, skip=delivery.skip
    )
    with run:
        for outcome in run.outcomes(score):
            if table:
                results.append(outcome.output)
                continue
            with run.writing(outcome):
                write_json_line(shape.row(outcome.record, outcome.output.fields()))
    if results:
        from squeezenli.cli.render import zero_shot_table

        zero_shot_table(results, zero_shot.multi_label)
    return run.failed


def _refuse_files_as_texts(texts: list[str]) -> None:
    files_named = [text for text in texts if os.path.isfile(text)]
    if files_named:
        raise InputError(
            f"'{files_named[0]}' is a file: to classify the texts in it, pass --input "
            f"{files_named[0]} (arguments are classified as they are)"
        )


def _classify_on_ray(
    files: list[str],
    fmt: str | None,
    shape: ResultFields,
    zero_shot: ZeroShotOptions,
    delivery: Delivery,
    backend: Backend,
    opts: ModelOptions,
) -> int:
    """classify's rows computed by Ray actors (ray_engine.classify_dataset), written to
    stdout as JSON lines in input order; the rows that failed."""
    from squeezenli.cli.ray_batch import RayJob, run_on_ray
    from squeezenli.cli.streams import write_json_line

    class Lines:
        def write(self, row: dict, record) -> None:
            write_json_line(row)

        def close(self) -> None:
            pass

    job = RayJob(zero_shot, shape, lambda labels: Lines(), "classified")
    return run_on_ray(files, fmt, job, backend, delivery, opts)
