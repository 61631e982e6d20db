"""The README's command lines name commands and options that exist: a newcomer who copies one
meets no `No such option` (options are read from the CLI itself, not from its help text)."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer.main

from squeezenli.cli.app import app

README = Path(__file__).resolve().parents[1] / "README.md"
ENDS = {"|", ">", "<", "&", "&&", "\\", ";", "2>", ">>"}


def _command_lines() -> list[str]:
    """Each line of a bash block that runs squeezenli, from `squeezenli` on."""
    lines, in_bash = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_bash = line == "```bash"
            continue
        if in_bash and "squeezenli " in line and not line.lstrip().startswith(("pip", "cp ")):
            start = line.index("squeezenli ")
            if start == 0 or line[:start].rstrip().endswith(("|", "&&", "xargs")):
                lines.append(line[start:])
    return lines


def _words(line: str) -> list[str]:
    """The words of a command line up to its first redirection or pipe, brackets of optional
    parts (`[--json]`) dropped."""
    words = []
    for word in shlex.split(line.rstrip().removesuffix("\\"), comments=True)[1:]:
        if word in ENDS or word.startswith((">", "2>")):
            break
        words.append(word.strip("[]"))
    return words


def _group():
    """The CLI as Typer builds it (its click is Typer's own copy: groups are told by their
    commands)."""
    return typer.main.get_command(app)


def _options(command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _resolve(words: list[str]):
    """The command a line runs and the words after it: score when the first word that is no
    option names no command (the default command, which takes options before the pair too)."""
    group = _group()
    command, rest = group, words
    while hasattr(command, "commands"):
        names = [w for w in rest if not w.startswith("-")]
        if names and names[0] in command.commands:
            rest = rest[rest.index(names[0]) + 1 :]
            command = command.commands[names[0]]
        elif command is group:
            command = group.commands["score"]
        else:
            raise AssertionError(f"no such subcommand in {words}")
    return command, rest


def test_the_readme_runs_squeezenli_in_many_lines():
    assert len(_command_lines()) >= 40


def test_every_readme_command_line_names_options_the_command_has():
    group = _group()
    wrong = []
    for line in _command_lines():
        words = _words(line)
        if not words or words[0] == "COMMAND":
            continue
        command, rest = _resolve(words)
        known = _options(command) | _options(group) | {"--", "-h", "--help"}
        flags = [w.split("=", 1)[0] for w in rest if w.startswith("-") and w != "-"]
        wrong += [f"{line}: {flag}" for flag in flags if flag not in known]
        wrong += [f"{line}: {value}" for value in _bad_choices(command, rest)]
    assert not wrong, wrong


def _bad_choices(command, words: list[str]) -> list[str]:
    """The values given to choice options (`--output csv`) that are none of their choices."""
    choices = {
        opt: {str(c).lower() for c in param.type.choices}
        for param in command.params
        if hasattr(param.type, "choices")
        for opt in param.opts
    }
    return [
        value
        for flag, value in zip(words, words[1:])
        if flag in choices and value.lower() not in choices[flag]
    ]


def test_the_check_finds_a_misspelt_option():
    command, rest = _resolve(_words("squeezenli batch pairs.jsonl --premise-feild p"))
    assert command.name == "batch" and "--premise-feild" not in _options(command)
    score, _ = _resolve(_words('squeezenli "A man." "A person." --json'))
    assert score.name == "score" and "--json" in _options(score)
    assert _bad_choices(command, ["--output", "xml", "--long-input", "CHUNK"]) == ["xml"]
