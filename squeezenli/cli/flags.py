"""How the library's parameter names read on the command line: the library names them in
`backticks` (and in InputError.param); here each is the flag that sets it, read from the
commands themselves, so no table is kept by hand."""

from __future__ import annotations

import re
from typing import Any

import typer


def in_flags(message: str, ctx: Any = None) -> str:
    """A library message with its `parameter` names written as the flags that set them
    (those of the commands under `ctx`, else under the running command)."""
    flags = flag_names(ctx)
    return re.sub(r"`(\w+)`", lambda m: flags.get(m[1], m[0]), message)


def flag_names(ctx: Any = None) -> dict[str, str]:
    """Each parameter of the CLI's commands -> its long flag (the command's own first, then
    the others')."""
    ctx = ctx or _current_context()
    if ctx is None:
        return {}
    found: dict[str, str] = {}
    for command in [ctx.command, ctx.find_root().command]:
        _walk(command, found)
    return found


def _current_context() -> Any:
    """The running command's context, from the copy of click Typer carries (its package is
    that of typer.Context's base class)."""
    import importlib

    package = typer.Context.__mro__[1].__module__.rpartition(".")[0]
    try:
        return importlib.import_module(f"{package}.globals").get_current_context(silent=True)
    except (ImportError, AttributeError):
        return None


def _walk(command: Any, found: dict[str, str]) -> None:
    for param in command.params:
        longs = [name for name in param.opts if name.startswith("--")]
        if param.param_type_name == "option" and longs and param.name:
            found.setdefault(param.name, longs[0])
    for sub in getattr(command, "commands", {}).values():
        _walk(sub, found)
