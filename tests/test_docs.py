"""The manual (README.md and docs/) holds true: its command lines name commands and options that
exist, so a reader who copies one meets no `No such option` (options are read from the CLI
itself, not from its help text); its links lead to pages and headings that exist; the CLI
reference is the CLI's own help; the README stays an overview."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import manual
import typer.main

from squeezenli.cli.app import app

sys.path.insert(0, str(manual.ROOT / "scripts"))
from make_cli_reference import reference  # noqa: E402

ENDS = {"|", ">", "<", "&", "&&", "\\", ";", "2>", ">>"}


def _command_lines() -> list[str]:
    """Each line of a bash block of the manual that runs squeezenli, from `squeezenli` on."""
    lines, in_bash = [], False
    for line in manual.text().splitlines():
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


def test_the_manual_runs_squeezenli_in_many_lines():
    assert len(_command_lines()) >= 40


def test_every_command_line_of_the_manual_names_options_the_command_has():
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


def test_the_cli_reference_is_current():
    assert (manual.DOCS / "cli.md").read_text() == reference(), (
        "docs/cli.md is stale: run python scripts/make_cli_reference.py"
    )


def test_the_cli_reference_names_every_command_and_option():
    """Checked against the command tree, so a reference that lost a section fails too."""
    text = (manual.DOCS / "cli.md").read_text()
    group = _group()
    commands = [("squeezenli", group)]
    commands += [(f"squeezenli {n}", c) for n, c in group.commands.items() if not c.hidden]
    commands += [(f"squeezenli model {n}", c) for n, c in group.commands["model"].commands.items()]
    for path, command in commands:
        section = text.split(f"\n## {path}\n", 1)[1].split("\n## ", 1)[0]
        missing = [o for o in _options(command) if o.startswith("--") and f"{o}" not in section]
        assert not missing, (path, missing)


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, spaces as dashes, punctuation
    other than dashes and underscores dropped."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def _broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    return broken


def test_every_link_of_the_manual_leads_somewhere():
    broken = {p.name: b for p in manual.pages() if (b := _broken_links(p))}
    assert not broken, broken


def test_the_link_check_finds_a_broken_link(tmp_path):
    (tmp_path / "a.md").write_text("# A page\n\n[b](b.md) [up](#a-page) [gone](#nowhere)\n")
    assert _broken_links(tmp_path / "a.md") == ["b.md", "#nowhere"]


def test_the_readme_is_an_overview_over_the_pages_of_docs():
    readme = manual.README.read_text()
    pages = sorted(p.name for p in manual.DOCS.glob("*.md") if p.name != "README.md")
    assert len(readme.splitlines()) <= 150 and len(pages) >= 8
    unlinked = [p for p in pages if f"(docs/{p}" not in readme]
    assert not unlinked, unlinked
