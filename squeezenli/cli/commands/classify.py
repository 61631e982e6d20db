"""`squeezenli classify [TEXT ...] --labels L1,L2`: zero-shot classification by NLI."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from squeezenli.choices import Engine, OnError, Output
from squeezenli.cli.options import (
    AddressOpt,
    ApiKeyOpt,
    EngineOpt,
    ErrorsOpt,
    FormatOpt,
    JsonOpt,
    ModelOptions,
    OnErrorOpt,
    OutputFieldsOpt,
    PrefixOpt,
    ServerOpt,
    check_choice,
    model_options,
    on_error_mode,
    reading_options,
    scorer_for,
    task_options,
)
from squeezenli.errors import InputError
from squeezenli.records.readers import FORMATS, ReadOptions
from squeezenli.tasks.options import ZeroShotOptions


@model_options()
@reading_options()
@task_options(ZeroShotOptions, "zero_shot", skip=("labels", "hypotheses"))
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
    on_error: OnErrorOpt = None,
    errors: ErrorsOpt = None,
    prefix: PrefixOpt = "",
    output_fields: OutputFieldsOpt = None,
    engine: EngineOpt = Engine.LOCAL,
    address: AddressOpt = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    opts: ModelOptions,
    reading: ReadOptions,
    zero_shot: ZeroShotOptions,
) -> None:
    """Zero-shot classification: which labels does each text entail? Output per text, highest
    score first: {"text", "labels", "scores"} plus the input's fields, as transformers'
    zero-shot pipeline gives them.

    Example: squeezenli classify "The match went to extra time." --labels sports,politics,music
    """
    from squeezenli.cli.rows import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs, Source, write_json_line
    from squeezenli.records.readers import Record
    from squeezenli.tasks.rows import ResultFields
    from squeezenli.tasks.zeroshot import load_hypotheses

    fmt = check_choice("--format", fmt, FORMATS)
    on_error = on_error_mode(on_error, errors)
    if texts and inputs:
        raise typer.BadParameter("give texts as arguments or --input files, not both")
    given = [name for item in labels or [] for name in item.split(",")]
    zero_shot = replace(
        zero_shot,
        labels=tuple(given) or None,
        hypotheses=load_hypotheses(hypotheses) if hypotheses is not None else None,
        text_field="text" if texts else zero_shot.text_field,
    )
    if zero_shot.candidates() is None and texts:
        raise InputError("give the candidate labels: --labels, or --hypotheses FILE")
    shape = ResultFields(zero_shot.result_names(), prefix, output_fields)
    _refuse_files_as_texts(texts or [])
    if server is not None and engine is Engine.RAY:
        raise InputError("--server classifies on a server, --engine ray on Ray: give one")
    if engine is Engine.RAY:
        if texts:
            raise InputError("--engine ray classifies --input files, not arguments")
        _classify_on_ray(
            inputs or [],
            fmt,
            shape,
            zero_shot,
            prefix,
            output_fields,
            address,
            on_error,
            errors,
            opts,
        )
        return
    files = Inputs(inputs, fmt, reading)
    error_log = ErrorLog(errors, files)
    scorer = scorer_for(server, api_key, opts)
    table = bool(texts) and not json_out and sys.stdout.isatty()
    sources = None
    if texts:
        records = (Record("<arguments>", n, {"text": t}) for n, t in enumerate(texts, 1))
        sources = [Source(records, live=False)]
    score = partial(scorer.results, options=zero_shot, on_error=on_error)
    results = []
    skip = on_error is OnError.SKIP
    run = RowRun("classified", files, error_log, quiet=opts.quiet, sources=sources, skip=skip)
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
    if run.failed:
        raise typer.Exit(1)


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
    shape,
    zero_shot: ZeroShotOptions,
    prefix: str,
    output_fields: str | None,
    address: str | None,
    on_error: OnError,
    errors: Path | None,
    opts: ModelOptions,
) -> None:
    """classify's rows computed by Ray actors (ray_engine.classify_dataset), written to
    stdout as JSON lines in input order."""
    from squeezenli.cli.ray_batch import RayJob, run_on_ray
    from squeezenli.cli.streams import write_json_line

    class Lines:
        def write(self, row: dict, record) -> None:
            write_json_line(row)

        def close(self) -> None:
            pass

    job = RayJob(zero_shot, shape, lambda labels: Lines(), prefix, output_fields, "classified")
    failed = run_on_ray(
        files,
        fmt,
        job,
        address=address,
        output=Output.JSONL,
        output_path=None,
        on_error=on_error,
        errors=errors,
        opts=opts,
    )
    if failed:
        raise typer.Exit(1)
