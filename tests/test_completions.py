"""completions/ holds what the app generates, and completion really answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import run_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from make_completions import scripts  # noqa: E402


def test_completion_scripts_are_current():
    for name, text in scripts().items():
        assert (ROOT / "completions" / name).read_text() == text.rstrip("\n") + "\n", (
            f"completions/{name} is stale: run python scripts/make_completions.py"
        )


def test_bash_completion_answers_command_names():
    env = run_env(
        _SQUEEZENLI_COMPLETE="complete_bash", COMP_WORDS="squeezenli model ch", COMP_CWORD="2"
    )
    result = subprocess.run(
        [sys.executable, "-m", "squeezenli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["check-labels"]


def test_bash_completion_offers_the_choices_of_an_option():
    for words, expected in (
        ("squeezenli batch --output ", ["jsonl", "csv", "tsv", "table", "parquet"]),
        ("squeezenli batch --precision ", ["auto", "fp32", "int8"]),
        ("squeezenli batch --on-error ", ["fail", "skip"]),
    ):
        env = run_env(_SQUEEZENLI_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD="3")
        result = subprocess.run(
            [sys.executable, "-m", "squeezenli"], env=env, capture_output=True, text=True
        )
        assert result.stdout.split() == expected, (words, result.stdout, result.stderr)


def test_the_completion_options_in_the_help_are_the_apps_own(tmp_path):
    """`squeezenli --show-completion` and `--install-completion` (listed in --help) reach
    Typer's completion, not `score` as a premise's options. Typer finds the shell among the
    process's parents: bash is made the parent here."""

    def in_bash(option: str, **env: str) -> subprocess.CompletedProcess:
        command = f"'{sys.executable}' -m squeezenli {option}; exit $?"
        return subprocess.run(
            ["bash", "-c", command], env=run_env(**env), capture_output=True, text=True, timeout=60
        )

    shown = in_bash("--show-completion")
    assert shown.returncode == 0, shown.stderr
    assert "_SQUEEZENLI_COMPLETE=complete_bash" in shown.stdout
    installed = in_bash("--install-completion", HOME=str(tmp_path))
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "squeezenli.sh"
    assert "_SQUEEZENLI_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()
