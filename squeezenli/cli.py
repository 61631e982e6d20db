"""The squeezenli command line: parse arguments, call the library, format results.

Exit codes: 0 success; 1 rows failed or runtime error; 2 usage or input error; 3 model or
download problem; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import EXIT_INTERRUPTED, InputError, SqueezenliError

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 rows failed or runtime error; 2 usage or input error; "
    "3 model or download problem; 130 interrupted."
)


class DefaultGroup(TyperGroup):
    """Routes a first argument that is not a command name to `score`, and turns
    SqueezenliError into a one-line message and its exit code."""

    default_command = "score"

    def resolve_command(self, ctx, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SqueezenliError as err:
            if ctx.params.get("debug"):
                traceback.print_exc()
            typer.echo(f"squeezenli: error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("squeezenli: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # The reader went away (`| head -1`): stop quietly, as other filters do. Point
            # stdout at /dev/null so the interpreter's final flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None


app = typer.Typer(
    cls=DefaultGroup,
    help="Natural language inference with SqueezeBERT-MNLI on onnxruntime.\n\n"
    'Example: squeezenli "A man plays a guitar." "A person makes music."\n\n' + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Download, inspect and check models.", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"squeezenli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    """Natural language inference with SqueezeBERT-MNLI."""


# Options shared by every command that loads a model.
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        envvar="SQUEEZENLI_MODEL",
        help="Hub repo id or local folder [default: squeezebert/squeezebert-mnli].",
    ),
]
RevisionOpt = Annotated[
    Optional[str],
    typer.Option(
        "--revision",
        help="Hub branch, tag or commit [default: pinned for the default model, else main].",
    ),
]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="fp32 or int8.")]
LabelOrderOpt = Annotated[
    Optional[str],
    typer.Option(
        "--label-order",
        envvar="SQUEEZENLI_LABEL_ORDER",
        help="Label names in the model's output order, e.g. contradiction,entailment,neutral.",
    ),
]
MaxLengthOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-length", help="Truncate pairs to this many tokens [default: the model's maximum]."
    ),
]
ThreadsOpt = Annotated[
    Optional[int], typer.Option("--threads", help="CPU threads [default: physical cores].")
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Pairs per batch.")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or summaries on stderr.")
]


def _load(model, revision, precision, label_order, max_length, threads, batch_size, quiet):
    from .model import load_model

    return load_model(
        model,
        revision,
        precision=precision,
        label_order=label_order,
        max_length=max_length,
        threads=threads,
        batch_size=batch_size,
        progress=not quiet,
    )


def _result(premise: str, hypothesis: str, prediction) -> dict:
    return {
        "premise": premise,
        "hypothesis": hypothesis,
        "prediction": prediction.label,
        "scores": _rounded(prediction.scores),
    }


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 6) for name, value in scores.items()}


@app.command()
def score(
    premise: Annotated[str, typer.Argument(help="The premise text.")],
    hypothesis: Annotated[str, typer.Argument(help="The hypothesis to test against it.")],
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON line instead of a table.")
    ] = False,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    precision: PrecisionOpt = "fp32",
    label_order: LabelOrderOpt = None,
    max_length: MaxLengthOpt = None,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score one premise/hypothesis pair.

    Example: squeezenli score "A man plays a guitar." "A person makes music." --json
    """
    nli = _load(model, revision, precision, label_order, max_length, threads, 1, quiet)
    prediction = next(nli.predict([(premise, hypothesis)]))
    if json_out:
        from .io import write_jsonl

        write_jsonl(sys.stdout.buffer, _result(premise, hypothesis, prediction))
        return
    from .render import prediction_table

    prediction_table(premise, hypothesis, prediction, nli.labels)


FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format",
        "-f",
        help="Input format: jsonl, csv or tsv [default: from the extension; stdin: jsonl].",
    ),
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="jsonl, csv, tsv or table.")]
OnErrorOpt = Annotated[
    str,
    typer.Option("--on-error", help="fail: stop at the first bad row; skip: report it and go on."),
]
ErrorsOpt = Annotated[
    Optional[Path],
    typer.Option("--errors", help="Write skipped rows here as JSON lines (with --on-error skip)."),
]


@app.command()
def batch(
    files: Annotated[
        Optional[list[str]], typer.Argument(help="Input files; '-' or none for stdin.")
    ] = None,
    fmt: FormatOpt = None,
    premise_field: Annotated[
        Optional[str],
        typer.Option("--premise-field", help="[default: premise, or sentence1, text]"),
    ] = None,
    hypothesis_field: Annotated[
        Optional[str],
        typer.Option("--hypothesis-field", help="[default: hypothesis, or sentence2, text_pair]"),
    ] = None,
    output: OutputOpt = "jsonl",
    on_error: OnErrorOpt = "fail",
    errors: ErrorsOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    precision: PrecisionOpt = "fp32",
    label_order: LabelOrderOpt = None,
    max_length: MaxLengthOpt = None,
    threads: ThreadsOpt = None,
    batch_size: BatchSizeOpt = 32,
    quiet: QuietOpt = False,
) -> None:
    """Score pairs from JSONL, CSV or TSV: one output row per input row, in order, every
    input field kept, `prediction` and `scores` added.

    Example: cat pairs.jsonl | squeezenli batch > scored.jsonl
    """
    import time

    from .io import FORMATS, detect_format, read_records
    from .scoring import score_records

    _check_choice("--format", fmt, FORMATS)
    _check_choice("--output", output, ("jsonl", "csv", "tsv", "table"))
    _check_choice("--on-error", on_error, ("fail", "skip"))
    nli = _load(model, revision, precision, label_order, max_length, threads, batch_size, quiet)
    started = time.perf_counter()
    scored = failed = 0
    sink = _Sink(output, nli.labels)
    error_log = _ErrorLog(errors)
    try:
        for name in files or ["-"]:
            with _open_input(name) as (stream, source):
                records = read_records(stream, source, detect_format(source, fmt))
                outcomes = score_records(
                    nli,
                    records,
                    premise_field=premise_field,
                    hypothesis_field=hypothesis_field,
                    on_error=on_error,
                )
                for outcome in outcomes:
                    if outcome.error:
                        failed += 1
                        error_log.write(outcome)
                        continue
                    scored += 1
                    sink.write(outcome.record.data, outcome.pair, outcome.prediction)
    finally:
        sink.close()
        error_log.close()
        if not quiet:
            elapsed = time.perf_counter() - started
            typer.echo(
                f"squeezenli: {scored} rows scored, {failed} failed, {elapsed:.1f} s", err=True
            )
    if failed:
        raise typer.Exit(1)


def _check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise InputError(f"{option} must be one of {', '.join(choices)}, got {value!r}")


class _Sink:
    """Result rows to stdout as JSON lines, CSV/TSV (a column per class) or a table."""

    def __init__(self, output: str, labels) -> None:
        self.output = output
        self.labels = labels
        self._out = sys.stdout.buffer
        self._rows: list = []
        self._delimited = None
        if output in ("csv", "tsv"):
            from .io import DelimitedWriter

            self._delimited = DelimitedWriter(self._out, "," if output == "csv" else "\t")

    def write(self, data: dict, pair: tuple[str, str], prediction) -> None:
        scores = _rounded(prediction.scores)
        if self.output == "jsonl":
            from .io import write_jsonl

            write_jsonl(self._out, {**data, "prediction": prediction.label, "scores": scores})
            self._out.flush()
        elif self._delimited is not None:
            self._delimited.write({**data, "prediction": prediction.label, **scores})
        else:
            self._rows.append((pair, prediction))

    def close(self) -> None:
        if self._delimited is not None:
            self._delimited.close()
        if self._rows:
            from .render import batch_table

            batch_table(self._rows, self.labels)


class _ErrorLog:
    """Skipped rows: one line each on stderr, or JSON lines in a file."""

    def __init__(self, path: Path | None) -> None:
        self._file = open(path, "wb") if path else None

    def write(self, outcome) -> None:
        if self._file is None:
            typer.echo(f"squeezenli: skipped {outcome.error}", err=True)
            return
        from .io import write_jsonl

        record = outcome.record
        write_jsonl(
            self._file,
            {
                "source": record.source,
                "line": record.line,
                "error": outcome.error,
                "row": record.data,
            },
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class _open_input:
    """A binary stream for a file argument, '-' meaning stdin, with the name to report."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._handle = None

    def __enter__(self):
        if self.file == "-":
            return sys.stdin.buffer, "<stdin>"
        try:
            self._handle = open(self.file, "rb")
        except OSError as err:
            raise InputError(f"cannot open {self.file}: {err.strerror}") from None
        return self._handle, self.file

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.close()


@model_app.command("download")
def model_download(
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    precision: Annotated[
        Optional[list[str]], typer.Option("--precision", help="Variants to build (repeatable).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Fetch a model into the cache and build its ONNX model ahead of time.

    Example: squeezenli model download --precision fp32 --precision int8
    """
    from .build import ensure_onnx
    from .hub import resolve

    files = resolve(model, revision, progress=not quiet)
    for variant in precision or ["fp32"]:
        path = ensure_onnx(files, variant)
        if not quiet:
            typer.echo(f"{variant}: {path}", err=True)
    typer.echo(str(files.folder))


@model_app.command("path")
def model_path(model: ModelOpt = None, revision: RevisionOpt = None) -> None:
    """Print the folder holding a model's files (downloading them if needed).

    Example: ls "$(squeezenli model path)"
    """
    from .hub import resolve

    typer.echo(str(resolve(model, revision).folder))


@model_app.command("info")
def model_info(
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    label_order: LabelOrderOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Show where a model comes from, its files and its label mapping.

    Example: squeezenli model info --json
    """
    from .info import model_info as gather

    info = gather(model, revision, label_order)
    if json_out:
        import orjson

        sys.stdout.buffer.write(orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
        return
    from .render import info_tables

    info_tables(info)


@model_app.command("check-labels")
def model_check_labels(
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    precision: PrecisionOpt = "fp32",
    label_order: LabelOrderOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Run unambiguous NLI pairs and report which output index behaves as which class.

    Exits 0 when the mapping in use agrees, 1 when it does not or the result is unclear.

    Example: squeezenli model check-labels
    """
    from .labelcheck import check_labels
    from .render import label_check_table

    nli = _load(model, revision, precision, label_order, None, None, 32, quiet)
    result = check_labels(nli)
    if json_out:
        import orjson

        sys.stdout.buffer.write(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        label_check_table(result)
    if not result.agrees:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="squeezenli")


if __name__ == "__main__":
    main()
