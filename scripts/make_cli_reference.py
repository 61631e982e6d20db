"""Regenerate docs/cli.md from the CLI's own help (tests/test_docs.py keeps it current).

Each command's usage, help text and options are the records `--help` prints, read from the
command tree Typer builds, so the reference says what `squeezenli COMMAND -h` says, as
Markdown (no terminal width, no colours).

python scripts/make_cli_reference.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer.main

from squeezenli.cli.app import app

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

HEAD = """# CLI reference

Every command and option, as `squeezenli COMMAND --help` prints them. This page is generated
by `python scripts/make_cli_reference.py`; a test fails when it is stale. What the options do
together is in the other pages of the manual ([docs/](README.md)).
"""


def reference() -> str:
    """The Markdown of every visible command, the root first, subcommands after their group."""
    root = typer.main.get_command(app)
    context = root.context_class(root, info_name="squeezenli")
    return HEAD + "".join(_sections(root, context))


def _sections(command: Any, context: Any) -> list[str]:
    sections = [_section(command, context)]
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            sections += _sections(sub, sub.context_class(sub, info_name=name, parent=context))
    return sections


def _section(command: Any, context: Any) -> str:
    usage = " ".join([context.command_path, *command.collect_usage_pieces(context)])
    text = f"\n## {context.command_path}\n\n```text\n{usage}\n```\n"
    if command.help:
        text += "\n" + command.help.strip() + "\n"
    records = [r for p in command.get_params(context) if (r := p.get_help_record(context))]
    if records:
        text += "\n" + "".join(f"- `{opts}`: {help_ or '(no help)'}\n" for opts, help_ in records)
    subcommands = [
        (name, sub) for name, sub in getattr(command, "commands", {}).items() if not sub.hidden
    ]
    if subcommands:
        text += "\nCommands:\n\n" + "".join(
            f"- [`{name}`](#{_anchor(context.command_path + ' ' + name)}): "
            f"{sub.get_short_help_str(limit=200)}\n"
            for name, sub in subcommands
        )
    return text


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, spaces as dashes."""
    return heading.lower().replace(" ", "-")


if __name__ == "__main__":
    OUT.write_text(reference())
    print(OUT)
