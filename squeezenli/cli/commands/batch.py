"""`squeezenli batch [FILE ...]`: score pairs from JSONL/CSV/TSV, one output row per input."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from squeezenli.cli.options import (
    AggregateOpt,
    ErrorsOpt,
    FilesArg,
    FormatOpt,
    HypothesisFieldOpt,
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
from squeezenli.records.readers import FORMATS, ReadOptions, Record, RowError, RowFailure
from squeezenli.tasks.choices import Aggregate, LongInput

OUTPUTS = ("jsonl", "csv", "tsv", "table")


@model_options()
@reading_options()
def batch(
    files: FilesArg = None,
    fmt: FormatOpt = None,
    premise_field: PremiseFieldOpt = None,
    hypothesis_field: HypothesisFieldOpt = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="jsonl, csv, tsv or table.",
            autocompletion=lambda: [*OUTPUTS, "parquet"],
        ),
    ] = "jsonl",
    on_error: OnErrorOpt = None,
    errors: ErrorsOpt = None,
    long_input: LongInputOpt = LongInput.TRUNCATE,
    aggregate: AggregateOpt = Aggregate.ENTAILMENT,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            "--threshold",
            help="Add `entailed`: whether the entailment probability is at least this.",
        ),
    ] = None,
    logits: Annotated[
        bool,
        typer.Option("--logits", help="Add the raw logits, named by the model's labels."),
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="local, or ray (pip install 'squeezenli[ray]').")
    ] = "local",
    address: Annotated[
        Optional[str],
        typer.Option("--address", help="Ray cluster to join [default: start a local one]."),
    ] = None,
    prefix: Annotated[
        str,
        typer.Option(
            "--prefix", help="Put this before the result's field names (prediction, scores)."
        ),
    ] = "",
    output_fields: Annotated[
        Optional[str],
        typer.Option(
            "--output-fields",
            help="Rename the result's fields: prediction=label,scores=probs (CSV/TSV: a "
            "class column too, entailment=p_entail).",
        ),
    ] = None,
    output_path: Annotated[
        Optional[Path],
        typer.Option(
            "--output-path",
            help="With --engine ray: write files here (--output parquet, jsonl or csv).",
        ),
    ] = None,
    *,
    opts: ModelOptions,
    reading: ReadOptions,
) -> None:
    """Score pairs from JSONL, CSV or TSV: one output row per input row, in order, every
    input field kept, `prediction`, `scores` and `truncated` added (with --long-input
    chunk, also `evidence` and `windows`).

    Example: cat pairs.jsonl | squeezenli batch > scored.jsonl
    """
    from squeezenli.cli.rows import RowRun
    from squeezenli.cli.streams import ErrorLog, Inputs
    from squeezenli.tasks.scoring import score_records

    engine = check_choice("--engine", engine, ("local", "ray"))  # --format depends on it
    fmt = check_choice("--format", fmt, (*FORMATS, "parquet") if engine == "ray" else FORMATS)
    output = check_choice("--output", output, (*OUTPUTS, "parquet") if output_path else OUTPUTS)
    on_error = on_error_mode(on_error, errors)
    chunked = long_input is LongInput.CHUNK
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold must be from 0 to 1, got {threshold}")
    if engine == "ray":
        from squeezenli.cli.ray_batch import run_on_ray

        failed = run_on_ray(
            files or [],
            fmt,
            address=address,
            output=output,
            output_path=output_path,
            premise_field=premise_field,
            hypothesis_field=hypothesis_field,
            on_error=on_error,
            errors=errors,
            opts=opts,
            make_sink=lambda labels: ResultSink(
                output, labels, prefix, None, output_fields, chunked, threshold is not None, logits
            ),
            reading={
                "long_input": long_input,
                "aggregate": aggregate,
                "threshold": threshold,
                "logits": logits,
            },
        )
        if failed:
            raise typer.Exit(1)
        return
    if output_path is not None:
        raise InputError("--output-path goes with --engine ray")
    inputs = Inputs(files, fmt, reading)
    error_log = ErrorLog(errors, inputs)
    nli = opts.load()
    columns = inputs.columns() if output in ("csv", "tsv") else None
    sink = ResultSink(
        output, nli.labels, prefix, columns, output_fields, chunked, threshold is not None, logits
    )

    score = partial(
        score_records,
        nli,
        premise_field=premise_field,
        hypothesis_field=hypothesis_field,
        on_error=on_error,
        long_input=long_input,
        aggregate=aggregate,
        threshold=threshold,
        logits=logits,
    )

    try:
        with RowRun("scored", inputs, error_log, quiet=opts.quiet, skip=on_error == "skip") as run:
            for outcome in run.outcomes(score):
                with run.writing(outcome):
                    sink.write(outcome.record.data, outcome.pair, outcome.output, outcome.record)
    finally:
        sink.close()
    if run.failed:
        raise typer.Exit(1)


def _renames(text: str | None, own: list[str]) -> dict[str, str]:
    """--output-fields "prediction=label,scores=probs": the result's field names, renamed."""
    renamed: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        old, sep, new = (part.strip() for part in item.partition("="))
        if not sep or not new or old not in own:
            raise InputError(
                f"--output-fields takes NAME=NEW pairs over the result's fields "
                f"({', '.join(own)}), got {item.strip()!r}"
            )
        if old in renamed:
            raise InputError(f"--output-fields renames {old!r} twice ({renamed[old]!r}, {new!r})")
        renamed[old] = new
    return renamed


class ResultSink:
    """Result rows to stdout as JSON lines, CSV/TSV (a column per class) or a table. The
    result's fields (prediction, scores, or a column per class in CSV/TSV; renamed by
    `names`, each after `prefix`) never overwrite an input field: a row that has one is
    refused, naming it.
    `columns`: every input field, when known before the first row (CSV/TSV header)."""

    def __init__(
        self,
        output: str,
        labels,
        prefix: str = "",
        columns: list[str] | None = None,
        names: str | None = None,
        chunked: bool = False,
        entailed: bool = False,
        logits: bool = False,
    ) -> None:
        self.output = output
        self.labels = labels
        self._rows: list = []
        self._delimited = None
        self._classes = [labels.names[i] for i in labels.ordered()]
        delimited = output in ("csv", "tsv")
        own = ["prediction", *self._classes] if delimited else ["prediction", "scores"]
        own.append("truncated")
        if chunked:
            own += (
                ["evidence_start", "evidence_end", "windows"]
                if delimited
                else ["evidence", "windows"]
            )
        own += ["entailed"] if entailed else []
        if logits:
            own += [f"logit_{name}" for name in self._classes] if delimited else ["logits"]
        renamed = _renames(names, own)
        self._names = {name: prefix + renamed.get(name, name) for name in own}
        self.fields = list(self._names.values())
        if len(set(self.fields)) != len(self.fields):
            raise InputError(f"--output-fields gives two result fields one name: {self.fields}")
        if output in ("csv", "tsv"):
            from squeezenli.records.writers import DelimitedWriter

            header = None if columns is None else [*columns, *self.fields]
            if columns is not None:
                self._refuse_collisions(columns, "the input")
            self._delimited = DelimitedWriter(sys.stdout.buffer, output, header)

    def _collision(self, names) -> str | None:
        taken = [name for name in self.fields if name in names]
        if not taken:
            return None
        return (
            f"input field '{taken[0]}' would be overwritten by the result; pass --prefix "
            "(e.g. --prefix new_) to name the result's fields apart"
        )

    def _refuse_collisions(self, names, where: str) -> None:
        problem = self._collision(names)
        if problem:
            raise InputError(f"{where}: {problem}")

    def write(self, data: dict, pair: tuple[str, str] | None, prediction, record: Record) -> None:
        """One result row; a row this output cannot take (a field that collides with the
        result's, or, in CSV/TSV, one the header lacks) is that row's RowFailure."""
        problem = self._collision(data)
        if problem:
            raise RowFailure(RowError.of(record, problem, problem.split("'")[1]))
        if self.output == "jsonl":
            from squeezenli.cli.streams import write_json_line

            found = prediction.fields()
            result = {self._names[k]: v for k, v in found.items() if k in self._names}
            write_json_line({**data, **result})
        elif self._delimited is not None:
            from squeezenli.cli.signals import whole_line

            row = {**data, **self._cells(prediction)}
            try:
                with whole_line():
                    self._delimited.write(row)
            except InputError as err:  # a field the header written lacks
                raise RowFailure(RowError.of(record, str(err))) from None
        else:
            self._rows.append((pair, prediction))

    def _cells(self, prediction) -> dict:
        """A prediction's CSV/TSV cells, under the result's column names."""
        found = prediction.fields()
        cells = {"prediction": prediction.label, **found["scores"]}
        cells["truncated"] = str(prediction.truncated).lower()
        if "evidence" in found:
            cells["evidence_start"] = found["evidence"]["start"]
            cells["evidence_end"] = found["evidence"]["end"]
            cells["windows"] = found["windows"]
        if "entailed" in found:
            cells["entailed"] = str(found["entailed"]).lower()
        for name, value in (found.get("logits") or {}).items():
            cells[f"logit_{name}"] = value
        return {new: cells[own] for own, new in self._names.items() if own in cells}

    def close(self) -> None:
        if self._delimited is not None:
            self._delimited.close()
        if self._rows:
            from squeezenli.cli.render import batch_table

            batch_table(self._rows, self.labels)
