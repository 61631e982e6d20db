"""Options shared by several commands, and the bundle of model options every scoring
command takes (Typer has no option groups: a decorator adds the parameters to a command's
signature and hands them over as one ModelOptions)."""

from __future__ import annotations

import functools
import inspect
import logging
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar, overload

import typer

from squeezenli.choices import Choice, Engine, OnError, Output, Precision
from squeezenli.defaults import (
    MAX_BATCH_SIZE,
    MAX_BATCH_TOKENS,
    MIN_LENGTH,
    cpus_available,
)
from squeezenli.errors import InputError
from squeezenli.runtime.spec import ModelSpec
from squeezenli.serve.limits import CLIENT_TIMEOUT_S
from squeezenli.tasks.options import TaskOptions, ZeroShotOptions


def task_flag(options: type[TaskOptions], name: str) -> Any:
    """The Typer annotation of one task option: its flag, help and type from its class."""
    from squeezenli.tasks.options import params

    found = {p.name: p for p in params(options)}
    item = found[name]
    names = [item.flag, *([item.spec.short] if item.spec.short else [])]
    helped = re.sub(
        r"`(\w+)`", lambda m: found[m[1]].flag if m[1] in found else m[0], item.spec.help
    )
    kind: Any = Optional[item.kind] if item.optional else item.kind
    if issubclass(item.kind, Choice):
        return Annotated[kind, typer.Option(*names, help=helped, case_sensitive=False)]
    return Annotated[kind, typer.Option(*names, help=helped)]


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
OnnxFileOpt = Annotated[
    Optional[str],
    typer.Option(
        "--onnx-file",
        help="Run this ONNX file of the model (e.g. onnx/model_quantized.onnx; 'model info' "
        "lists them) [default: converted weights, else onnx/model.onnx or model.onnx].",
    ),
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        "--precision",
        case_sensitive=False,
        help="auto (int8 where measured to agree with fp32 on these weights, else fp32), "
        "int8 or fp32 (exact).",
    ),
]
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
        "--max-length",
        help=f"Truncate pairs to this many tokens, at least {MIN_LENGTH} [default: the "
        "model's maximum].",
    ),
]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--threads", min=1, help="Batches run at once, one per CPU [default: the CPUs available]."
    ),
]
BatchSizeOpt = Annotated[
    int, typer.Option("--batch-size", min=1, max=MAX_BATCH_SIZE, help="Most pairs in one batch.")
]
BatchTokensOpt = Annotated[
    int,
    typer.Option(
        "--batch-tokens",
        min=1,
        max=MAX_BATCH_TOKENS,
        help="Most tokens in one batch (pairs x padded length).",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="Errors only on stderr: no progress, notes, warnings or summaries."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON instead of tables.")]

FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format",
        "-f",
        help="Input format: jsonl, csv or tsv [default: from the extension; stdin: jsonl].",
        autocompletion=lambda: ["jsonl", "csv", "tsv", "parquet"],
    ),
]
EncodingOpt = Annotated[
    str, typer.Option("--encoding", help="Text encoding of the input files (e.g. latin-1).")
]
DelimiterOpt = Annotated[
    Optional[str], typer.Option("--delimiter", help="CSV field separator [default: ,].")
]
NoHeaderOpt = Annotated[
    bool,
    typer.Option("--no-header", help="CSV/TSV without a header row: columns are col1, col2, ..."),
]
FilesArg = Annotated[
    Optional[list[str]], typer.Argument(help="Input files; '-' or none for stdin.")
]
OnErrorOpt = Annotated[
    Optional[OnError],
    typer.Option(
        "--on-error",
        case_sensitive=False,
        help="fail: stop at the first bad row; skip: report it and go on "
        "[default: skip with --errors, else fail].",
    ),
]

PrefixOpt = Annotated[
    str, typer.Option("--prefix", help="Put this before the names of the fields the result adds.")
]
OutputFieldsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--output-fields",
        help="Rename the fields the result adds: prediction=label,scores=probs (batch, CSV/TSV: "
        "a class column too, entailment=p_entail; classify: labels=..., scores=...).",
    ),
]
EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine", case_sensitive=False, help="local, or ray (pip install 'squeezenli[ray]')."
    ),
]
AddressOpt = Annotated[
    Optional[str],
    typer.Option("--address", help="Ray cluster to join [default: start a local one]."),
]

ServerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--server",
        envvar="SQUEEZENLI_SERVER",
        help="Score on a running 'squeezenli serve' at this URL (http://host:port) instead.",
    ),
]
ApiKeyOpt = Annotated[
    Optional[str],
    typer.Option(
        "--api-key", envvar="SQUEEZENLI_API_KEY", help="The server's bearer token (--server)."
    ),
]

ClientTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        envvar="SQUEEZENLI_TIMEOUT",
        min=0.001,
        help="Seconds to wait for the server (--server) to connect and to send each answer.",
    ),
]

ErrorsOpt = Annotated[
    Optional[Path],
    typer.Option("--errors", help="Write skipped rows here as JSON lines (with --on-error skip)."),
]


@dataclass(frozen=True)
class ModelOptions:
    """What a command needs to load its model, as the user gave it: the ModelSpec the
    library takes, and whether to be quiet."""

    spec: ModelSpec = ModelSpec()
    quiet: bool = False

    @classmethod
    def from_flags(cls, quiet: bool = False, **flags) -> ModelOptions:
        """The flags a command was given, checked: threads capped at the CPUs available (with
        a note, unless quiet)."""
        threads, available = flags.get("threads"), cpus_available()
        if threads is not None and threads > available:
            if not quiet:
                typer.echo(
                    f"squeezenli: --threads {threads} is more than the {available} CPUs "
                    f"available; using {available}",
                    err=True,
                )
            flags["threads"] = available
        return cls(ModelSpec(**flags), quiet)

    def load(self):
        """The model, opened for scoring here."""
        from squeezenli.runtime.model import load_model

        announce_builds(not self.quiet)
        return load_model(self.spec, progress=not self.quiet)

    def prepare(self):
        """The model downloaded and built for workers that open it themselves; its labels."""
        from squeezenli.runtime.model import prepare_model

        announce_builds(not self.quiet)
        return prepare_model(self.spec, progress=not self.quiet)


@dataclass(frozen=True)
class Backend:
    """Where a command's rows are scored: here, on the server at --server (with --api-key),
    or on Ray (--engine ray, at --address)."""

    engine: Engine = Engine.LOCAL
    address: str | None = None
    server: str | None = None
    api_key: str | None = None
    timeout: float = CLIENT_TIMEOUT_S

    @property
    def ray(self) -> bool:
        return self.engine is Engine.RAY

    def scorer(self, opts: ModelOptions):
        """The scorer for rows scored here or on the server (tasks/scorer.py's Scorer)."""
        if self.server is not None:
            from squeezenli.serve.client import Remote

            return Remote(self.server, self.api_key, self.timeout)
        from squeezenli.tasks.scorer import LocalScorer

        return LocalScorer(opts.load())


@dataclass(frozen=True)
class Delivery:
    """What becomes of a command's rows beside their results: bad rows (--on-error, and
    --errors, where skipped rows go) and the names of the fields the result adds (--prefix,
    --output-fields)."""

    on_error: OnError = OnError.FAIL
    errors: Path | None = None
    prefix: str = ""
    output_fields: str | None = None

    @property
    def skip(self) -> bool:
        return self.on_error is OnError.SKIP


def announce_builds(enabled: bool) -> None:
    """Say on stderr when a model is being built (the first run pauses for it), and warn;
    quiet (enabled=False) leaves errors only."""
    log = logging.getLogger("squeezenli")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())
    log.setLevel(logging.INFO if enabled else logging.ERROR)


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (the test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"squeezenli: {record.getMessage()}", err=True)


_ANNOTATIONS = {
    "model": ModelOpt,
    "revision": RevisionOpt,
    "onnx_file": OnnxFileOpt,
    "precision": PrecisionOpt,
    "label_order": LabelOrderOpt,
    "max_length": MaxLengthOpt,
    "threads": ThreadsOpt,
    "batch_size": BatchSizeOpt,
    "batch_tokens": BatchTokensOpt,
    "quiet": QuietOpt,
}
ALL = tuple(_ANNOTATIONS)
_DEFAULTS = {**{f.name: f.default for f in fields(ModelSpec)}, "quiet": False}


def model_options(*names: str):
    """Give a command the named model options (all when none are named); the command
    receives them as `opts: ModelOptions`."""
    chosen = names or ALL
    options = {n: (_ANNOTATIONS[n], _DEFAULTS[n]) for n in chosen}
    return _bundle("opts", options, ModelOptions.from_flags)


_READING = {
    "encoding": (EncodingOpt, "utf-8"),
    "delimiter": (DelimiterOpt, None),
    "no_header": (NoHeaderOpt, False),
}


def reading_options():
    """Give a command the options that say how to read its input files; the command receives
    them as `reading: ReadOptions`."""
    from squeezenli.records.readers import ReadOptions

    def build(encoding: str, delimiter: str | None, no_header: bool) -> ReadOptions:
        return ReadOptions(encoding=encoding, delimiter=delimiter, header=not no_header)

    return _bundle("reading", _READING, build)


def backend_options(ray: bool = True):
    """Give a command --server and --api-key (and, with `ray`, --engine and --address); it
    receives them as `backend: Backend`, one backend asked for."""
    added: dict[str, tuple[Any, Any]] = {
        "server": (ServerOpt, None),
        "api_key": (ApiKeyOpt, None),
        "timeout": (ClientTimeoutOpt, CLIENT_TIMEOUT_S),
    }
    if ray:
        added |= {"engine": (EngineOpt, Engine.LOCAL), "address": (AddressOpt, None)}

    def build(**given: Any) -> Backend:
        backend = Backend(**given)
        if backend.server is not None and backend.ray:
            raise InputError("--server scores on a server, --engine ray on Ray: give one")
        if backend.server is not None:  # a bad URL, key or timeout refused before any input
            from squeezenli.serve.client import Remote

            Remote(backend.server, backend.api_key, backend.timeout)
        return backend

    return _bundle("backend", added, build)


MaxBodyOpt = Annotated[
    int, typer.Option("--max-body-bytes", min=1, help="Largest request body (413 past it).")
]
MaxBatchOpt = Annotated[
    int,
    typer.Option(
        "--max-batch", min=1, help="Most pairs in a request (zero-shot: texts x labels; 413)."
    ),
]
MaxConcurrentOpt = Annotated[
    int, typer.Option("--max-concurrent", min=1, help="Requests in flight (429 past it).")
]
RequestTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", min=0.001, help="Seconds a request may take (503; its work is cancelled)."
    ),
]


def limits_options(body: bool = True):
    """Give a serving command its limits (--max-batch, --max-concurrent, --timeout, and with
    `body` --max-body-bytes), their defaults Limits' own; it receives them as `limits`."""
    from squeezenli.serve.limits import Limits

    defaults = Limits()
    added: dict[str, tuple[Any, Any]] = {
        "max_batch": (MaxBatchOpt, defaults.max_batch),
        "max_concurrent": (MaxConcurrentOpt, defaults.max_concurrent),
        "timeout_s": (RequestTimeoutOpt, defaults.timeout_s),
    }
    if body:
        added["max_body_bytes"] = (MaxBodyOpt, defaults.max_body_bytes)
    return _bundle("limits", added, Limits)


def delivery_options(naming: bool = True):
    """Give a command --on-error and --errors (and, with `naming`, --prefix and
    --output-fields); it receives them as `delivery: Delivery`."""
    added: dict[str, tuple[Any, Any]] = {
        "on_error": (OnErrorOpt, None),
        "errors": (ErrorsOpt, None),
    }
    if naming:
        added |= {"prefix": (PrefixOpt, ""), "output_fields": (OutputFieldsOpt, None)}

    def build(on_error: OnError | None, errors: Path | None, **names: Any) -> Delivery:
        return Delivery(on_error_mode(on_error, errors), errors, **names)

    return _bundle("delivery", added, build)


def task_options(options: type[TaskOptions], param: str = "task", skip: tuple[str, ...] = ()):
    """Give a command the flags of a task's options (tasks/options.py: each option's flag,
    help and default; `skip`: those the command declares itself); the command receives them
    as `param=options(...)`, checked before anything loads."""
    from squeezenli.tasks.options import params

    chosen = [p for p in params(options) if p.spec.cli and p.name not in skip]
    added = {p.name: (task_flag(options, p.name), p.default) for p in chosen}
    return _bundle(param, added, options)


def _bundle(param: str, options: dict, build):
    """A decorator that adds options (name -> (annotation, default)) to a command's
    signature, as Typer reads it, and hands the command `param=build(**those options)`."""

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != param]
        added = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
            for name, (annotation, default) in options.items()
        ]

        @functools.wraps(command)
        def wrapper(**kwargs):
            bundle = build(**{name: kwargs.pop(name) for name in options})
            return command(**{param: bundle}, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
        return wrapper

    return decorate


ThresholdFromOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--threshold-from",
        help="Take the threshold from this file (eval --save-threshold on your labelled "
        "rows); refused when it was fitted on another model or precision.",
    ),
]


def fitted_threshold(path: Path, scorer: Any) -> float:
    """The threshold a file of eval --save-threshold holds, for the scorer's model only."""
    from squeezenli.tasks.thresholds import FittedThreshold

    fitted = FittedThreshold.load(path)
    fitted.refuse_other(scorer.identity(), path)
    return fitted.threshold


def with_candidates(
    zero_shot: ZeroShotOptions, labels: list[str] | None, hypotheses: Path | None
) -> ZeroShotOptions:
    """zero_shot with the candidates of --labels (comma-separated, repeatable) and
    --hypotheses FILE, checked before the model loads."""
    from squeezenli.tasks.zeroshot import load_hypotheses

    given = [name for item in labels or [] for name in item.split(",")]
    per_label = load_hypotheses(hypotheses) if hypotheses is not None else None
    return replace(zero_shot, labels=tuple(given) or None, hypotheses=per_label)


def on_error_mode(on_error: OnError | None, errors: Path | None) -> OnError:
    """fail or skip: as given, else skip when --errors names where skipped rows go (an
    --errors file with fail would stay empty: refused)."""
    if on_error is OnError.FAIL and errors is not None:
        raise InputError("--errors collects skipped rows: it goes with --on-error skip")
    return on_error or (OnError.SKIP if errors is not None else OnError.FAIL)


C = TypeVar("C", bound=Choice)


def output_option(choices: tuple[Output, ...], help: str) -> Any:
    """A command's --output/-o, its --help listing exactly the outputs that command writes
    (the Output enum holds every command's): an enum of those alone; the command reads its
    value with `chosen_output`."""
    from enum import Enum

    offered = Enum("Offered", {c.name: c.value for c in choices}, type=str)  # type: ignore[misc]
    return Annotated[
        offered,  # type: ignore[valid-type]
        typer.Option("--output", "-o", case_sensitive=False, help=help),
    ]


def chosen_output(value: Any) -> Output:
    """An output_option's value as the Output it names."""
    return Output(getattr(value, "value", value))


def allowed(option: str, value: C, choices: tuple[C, ...], why: str) -> C:
    """A choice the flag's type takes that this run cannot (parquet without Ray): a usage
    error naming the option and what would allow it."""
    if value not in choices:
        names = ", ".join(str(choice) for choice in choices)
        raise InputError(f"{option} {value} {why}; here it takes {names}")
    return value


@overload
def check_choice(option: str, value: str, choices: tuple[str, ...]) -> str: ...
@overload
def check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> str | None: ...
def check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    """The value in lower case if it is one of `choices` (any case), else a usage error
    naming the option."""
    if value is None:
        return None
    if value.lower() not in choices:
        raise InputError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value.lower()
