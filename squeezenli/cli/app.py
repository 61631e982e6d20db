"""The squeezenli command line: the app, its default command and how errors end a run.

The commands live in squeezenli/cli/commands/; this module wires them into one Typer app.

Exit codes: 0 success; 1 rows failed or runtime error; 2 usage or input error; 3 model or
download problem; 128 + the signal when stopped by one (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import sys
import traceback
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from squeezenli import __version__
from squeezenli.cli import signals
from squeezenli.cli.commands import batch, check, classify, evaluate, model, score, serve
from squeezenli.cli.flags import in_flags
from squeezenli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, SqueezenliError

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 rows failed or runtime error; 2 usage or input error; "
    "3 model or download problem; 4 check --fail-under: a row scored under it; 5 --server: "
    "unreachable, timed out, overloaded or a wrong answer; 128 + the signal when stopped by "
    "one (130 Ctrl-C, 143 SIGTERM)."
)


class DefaultGroup(TyperGroup):
    """Routes arguments that do not start with a command name to `score` (options included:
    `squeezenli --json P H`, and `squeezenli -- -P H`), refuses a close misspelling of a
    command instead of scoring it as a premise, and turns SqueezenliError into a one-line
    message and its exit code."""

    default_command = "score"
    # The group's own options, which come before a command and take no value.
    own_options = (
        "--debug",
        "--version",
        "--help",
        "-h",
        "--install-completion",
        "--show-completion",
    )

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        at = 0
        while at < len(args) and args[at] in self.own_options:
            at += 1
        if at < len(args) and args[at] not in self.commands and not _completing():
            first = args[at]
            if not first.startswith("-") and not any(c.isspace() for c in first):
                close = difflib.get_close_matches(first, list(self.commands), n=1, cutoff=0.75)
                if close:
                    typer.echo(
                        f"squeezenli: error: no command '{first}' (did you mean '{close[0]}'?); "
                        f"to score it as a premise, write: squeezenli score {first} ...",
                        err=True,
                    )
                    raise typer.Exit(EXIT_USAGE)
            args = [*args[:at], self.default_command, *args[at:]]
        return super().parse_args(ctx, args)

    def main(self, *args, **kwargs):
        """Usage errors (a bad flag, a value out of range) in the same one-line style as every
        other error, with where to find help, instead of click's three-line block."""
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except _CLICK_ERROR as err:
            if (
                type(err).__name__ == "NoArgsIsHelpError"
            ):  # no arguments: the help, as click shows it
                err.show()
                sys.exit(err.exit_code)
            command = err.ctx.command_path if getattr(err, "ctx", None) else "squeezenli"
            typer.echo(f"squeezenli: error: {err.format_message()} ({command} -h)", err=True)
            sys.exit(err.exit_code)
        except _ABORT:
            typer.echo("squeezenli: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SqueezenliError as err:
            if ctx.params.get("debug"):
                traceback.print_exc()
            typer.echo(f"squeezenli: error: {in_flags(str(err), ctx)}", err=True)
            _after(err)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("squeezenli: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except signals.Interrupted as stop:
            typer.echo(f"squeezenli: stopped by {stop}", err=True)
            raise typer.Exit(stop.exit_code) from None
        except BrokenPipeError:
            # The reader went away (`| head -1`): stop quietly, as other filters do. Point
            # stdout at /dev/null so the interpreter's final flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except OSError as err:  # a full disk or a dead device under stdout
            if ctx.params.get("debug"):
                traceback.print_exc()
            where = err.filename or "stdout"
            typer.echo(f"squeezenli: error: cannot write to {where}: {err.strerror}", err=True)
            _after(err)
            if err.filename is None:  # what stdout still holds goes nowhere: said once
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_FAILED) from None


def _after(err: BaseException) -> None:
    """What the run said of itself once the error stopped it (streams.summary), after it;
    the note may be on an error the one reported was raised while handling (a close)."""
    seen: BaseException | None = err
    while seen is not None:
        notes = [n for n in getattr(seen, "__notes__", ()) if n.startswith("squeezenli: ")]
        if notes:
            typer.echo("\n".join(notes), err=True)
            return
        seen = seen.__context__


# Typer carries its own copy of click; its error types are reached through Typer's own.
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_ABORT = typer.Abort


def _completing() -> bool:
    """Shell completion is running (it passes partial words that must not be routed)."""
    return any(name.endswith("_COMPLETE") for name in os.environ)


app = typer.Typer(
    cls=DefaultGroup,
    help="Natural language inference with SqueezeBERT-MNLI on onnxruntime.\n\n"
    'Example: squeezenli "A man plays a guitar." "A person makes music."\n\n' + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


app.command()(score.score)
app.command()(batch.batch)
app.command()(classify.classify)
app.command("eval")(evaluate.evaluate)
app.command()(check.check)
app.command()(serve.serve)
app.command()(serve.mcp)
app.add_typer(model.app, name="model")


def main() -> None:
    """Run the app with the stop signals handled and stdout checked; the console script
    (entry.py) calls this once its own signal handlers are in place."""
    signals.install()
    if sys.stdout is None:  # started with stdout closed (>&-)
        os.write(2, b"squeezenli: error: stdout is closed: send it somewhere (> FILE)\n")
        os._exit(EXIT_USAGE)
    _buffer_stdout()
    try:
        app(prog_name="squeezenli")
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    # Leave without the interpreter's shutdown: the input reader thread may be blocked
    # reading stdin (a run stopped early), and finalizing that stream would abort.
    _release_stderr()
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
        except OSError as err:  # a full disk: what was asked for was not all delivered
            with contextlib.suppress(OSError):  # stderr itself may be what is full
                os.write(2, f"squeezenli: error: cannot write to {name}: {err.strerror}\n".encode())
            code = code or EXIT_FAILED
    os._exit(code)


def _release_stderr() -> None:
    """fd 2 back from the tokenizer's panic filter, if a thread is tokenizing as the process
    ends (a forced stop of the server): what was written meanwhile is kept. Looked up only
    where tokenizing began (the thin client never imports the tokenizer)."""
    release = getattr(sys.modules.get("squeezenli.runtime.tokenizer"), "release_stderr", None)
    if release is not None:  # None too while the module is still being imported
        release()


def _buffer_stdout() -> None:
    """With PYTHONUNBUFFERED=1 (common in containers) stdout's bytes go straight to the file,
    and a write cut short by a signal is not completed: a torn last line. A buffered writer
    finishes every write; lines are still flushed one by one (streams.py)."""
    if not isinstance(sys.stdout.buffer, io.BufferedWriter):
        sys.stdout = io.TextIOWrapper(
            io.BufferedWriter(sys.stdout.buffer),
            encoding=sys.stdout.encoding,
            errors=sys.stdout.errors,
            line_buffering=True,
        )


if __name__ == "__main__":
    main()
