"""`squeezenli classify [TEXT ...] --labels L1,L2`: zero-shot classification by NLI."""

from __future__ import annotations

import os
import sys
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
    prefix: PrefixOpt = "",
    output_fields: OutputFieldsOpt = None,
    engine: EngineOpt = Engine.LOCAL,
    address: AddressOpt = None,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
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
    from squeezenli.records.readers import Record
    from squeezenli.tasks.rows import ResultFields, zero_shot_names
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
    if texts:
        text_field = "text"
    shape = ResultFields(
        zero_shot_names(text=text_field != "text", selected=threshold is not None),
        prefix,
        output_fields,
    )
    files_named = [text for text in texts or [] if os.path.isfile(text)]
    if files_named:
        raise InputError(
            f"'{files_named[0]}' is a file: to classify the texts in it, pass --input "
            f"{files_named[0]} (arguments are classified as they are)"
        )
    if server is not None and engine is Engine.RAY:
        raise InputError("--server classifies on a server, --engine ray on Ray: give one")
    if engine is Engine.RAY:
        if texts:
            raise InputError("--engine ray classifies --input files, not arguments")
        _classify_on_ray(
            inputs or [],
            fmt,
            shape,
            {
                "labels": candidates,
                "text_field": text_field,
                "template": template,
                "multi_label": multi_label,
                "hypotheses": per_label,
                "labels_field": labels_field,
                "threshold": threshold,
                "top_k": top_k,
                "none_label": none_label,
                "prefix": prefix,
                "output_fields": output_fields,
            },
            address=address,
            on_error=on_error,
            errors=errors,
            opts=opts,
        )
        return
    files = Inputs(inputs, fmt, reading)
    error_log = ErrorLog(errors, files)
    remote = None
    if server is not None:
        from squeezenli.serve.client import Remote

        remote = Remote(server, api_key)
    else:
        nli = opts.load()
    table = bool(texts) and not json_out and sys.stdout.isatty()
    sources = None
    if texts:
        records = (Record("<arguments>", n, {"text": t}) for n, t in enumerate(texts, 1))
        sources = [Source(records, live=False)]

    def score(records, timely: bool):
        if remote is not None:
            return remote.classify_records(
                records,
                candidates,
                text_field_name=text_field,
                template=template,
                multi_label=multi_label,
                threshold=threshold,
                top_k=top_k,
                none_label=none_label,
                per_label=per_label,
                labels_field=labels_field,
                on_error=on_error,
                timely=timely,
            )
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

    results = []
    run = RowRun(
        "classified",
        files,
        error_log,
        quiet=opts.quiet,
        sources=sources,
        skip=on_error is OnError.SKIP,
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

        zero_shot_table(results, multi_label)
    if run.failed:
        raise typer.Exit(1)


def _classify_on_ray(
    files: list[str],
    fmt: str | None,
    shape,
    arguments: dict,
    *,
    address: str | None,
    on_error: OnError,
    errors: Path | None,
    opts: ModelOptions,
) -> None:
    """classify's rows computed by Ray actors (ray_engine.classify_dataset), written to
    stdout as JSON lines in input order."""
    from squeezenli.cli.ray_batch import RayJob, run_on_ray
    from squeezenli.cli.streams import write_json_line
    from squeezenli.ray_engine import classify_dataset

    def dataset(ds, lines: bool):
        return classify_dataset(
            ds, spec=opts.spec, cpus_per_actor=opts.spec.threads, json_lines=lines, **arguments
        )

    class Lines:
        def write(self, row: dict, record) -> None:
            write_json_line(row)

        def close(self) -> None:
            pass

    job = RayJob(dataset, shape, lambda labels: Lines(), "classified")
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
