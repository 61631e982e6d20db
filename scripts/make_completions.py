"""Regenerate completions/ from the app (tests/test_completions.py keeps them current).

python scripts/make_completions.py
"""

from __future__ import annotations

from pathlib import Path

from typer._completion_shared import get_completion_script

OUT = Path(__file__).resolve().parents[1] / "completions"
SHELLS = {"bash": "squeezenli.bash", "zsh": "_squeezenli", "fish": "squeezenli.fish"}


def scripts() -> dict[str, str]:
    return {
        name: get_completion_script(
            prog_name="squeezenli", complete_var="_SQUEEZENLI_COMPLETE", shell=shell
        )
        for shell, name in SHELLS.items()
    }


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in scripts().items():
        (OUT / name).write_text(text.rstrip("\n") + "\n")
        print(OUT / name)
