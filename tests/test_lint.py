"""The code passes its linters: ruff (lint and format) and mypy, as part of the test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_linter_passes(command):
    done = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


# Each layer imports only from the layers below it (and from the package's leaf modules).
LAYERS = ["models", "runtime", "tasks", "interfaces"]
INTERFACES = ("cli", "ray_engine", "serve")


def _layer(module: str) -> int | None:
    """The layer of squeezenli.<module...> (None: a leaf like errors or defaults)."""
    head = module.split(".")[1] if module.count(".") else ""
    if head in INTERFACES:
        return LAYERS.index("interfaces")
    return LAYERS.index(head) if head in LAYERS else None


def test_layers_point_down():
    import ast

    wrong = []
    for path in sorted((ROOT / "squeezenli").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = _layer(module)
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                found = _layer(name) if name.startswith("squeezenli.") else None
                if found is not None and found > own:
                    wrong.append(f"{module} imports {name}")
    assert wrong == []
