"""One place for each option: a field added to a task's options class reaches the CLI's
flags, the server's decoder and status, the MCP tool's schema, the OpenAPI document and the
client's request, with nothing else written; and the house has no import circles."""

from __future__ import annotations

import ast
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import typer
from typer.testing import CliRunner

from squeezenli.errors import InputError
from squeezenli.tasks.options import OPTIONS, CheckOptions, params, probability

ROOT = Path(__file__).parent.parent


@dataclass(frozen=True)
class WithExtra(CheckOptions):
    """CheckOptions and one throwaway option."""

    task: ClassVar[str] = "check"
    extra_margin: float = probability(0.25, "A throwaway option, for this test.")


def test_an_added_option_reaches_the_cli_flags_and_its_checks():
    from squeezenli.cli.options import task_options

    seen = []
    command = typer.Typer()

    @command.command()
    @task_options(WithExtra, "check")
    def run(*, check: WithExtra) -> None:
        seen.append(check)

    runner = CliRunner()
    assert "--extra-margin" in runner.invoke(command, ["--help"]).stdout
    assert runner.invoke(command, ["--extra-margin", "0.75"]).exit_code == 0
    assert seen[-1].extra_margin == 0.75 and seen[-1].support == CheckOptions().support
    refused = runner.invoke(command, ["--extra-margin", "2"])
    assert refused.exit_code != 0
    assert "`extra_margin` must be a probability from 0 to 1, got 2.0" in str(refused.exception)


def test_an_added_option_reaches_the_decoder_and_its_status():
    from squeezenli.serve.requests import refused

    assert WithExtra.from_wire({"extra_margin": 0.5, "score": "min"}).extra_margin == 0.5
    assert WithExtra.from_wire({"extra_margin": None}).extra_margin == 0.25  # null: default
    with pytest.raises(InputError) as caught:
        WithExtra.from_wire({"extra_margin": "much"})
    answer = refused(caught.value, WithExtra)
    assert (answer.status, answer.field) == (422, "extra_margin")
    assert "must be a number, got a string" in answer.message
    assert WithExtra(extra_margin=0.5).to_wire()["extra_margin"] == 0.5  # what Remote sends


def test_an_added_option_reaches_the_mcp_schema_and_openapi():
    pytest.importorskip("mcp")
    from mcp.server.mcpserver.tools.base import Tool

    from squeezenli.serve import mcp, openapi

    made = []

    async def run(task: str, body: dict) -> list[dict]:
        made.append((task, body))
        return [{"result": {"score": 1.0, "claims": [], "supported_text": "", "windows": 1}}]

    inputs = [mcp._input("source", str, "s"), mcp._input("text", str, "t")]
    tool = mcp._tool(inputs, WithExtra, lambda given: {"rows": [given]}, mcp._checked, run)
    schema = Tool.from_function(tool, name="check_claims").parameters["properties"]
    assert schema["extra_margin"]["default"] == 0.25
    assert "throwaway" in schema["extra_margin"]["description"]
    assert "source_field" not in schema  # options that name input fields are not arguments
    assert openapi._options(WithExtra)["extra_margin"]["maximum"] == 1.0


def test_every_option_has_help_and_a_default_that_passes_its_own_checks():
    for options in OPTIONS:
        assert options() == options()  # the defaults are valid
        for param in params(options):
            assert param.spec.help.strip(), f"{options.__name__}.{param.name}"


def test_an_mcp_call_past_the_timeout_ends_at_it(tiny_nli_model):
    """The MCP path runs as a job (serve/jobs.py): an over-time call is answered at the
    timeout, as HTTP's 503 is, not when its work ends."""
    pytest.importorskip("mcp")
    import time

    import anyio
    from mcp.server.mcpserver.exceptions import ToolError

    from squeezenli.runtime.model import load_model
    from squeezenli.serve.jobs import Jobs
    from squeezenli.serve.limits import Limits
    from squeezenli.serve.mcp import mcp_server
    from squeezenli.serve.service import Service

    gate = threading.Event()

    class Held(Service):
        def check(self, request, cancel):
            gate.wait(30)
            return super().check(request, cancel)

    jobs = Jobs(Limits(timeout_s=0.5))
    server = mcp_server(Held(load_model(str(tiny_nli_model), precision="fp32")), jobs)

    async def call() -> tuple[float, str]:
        started = time.perf_counter()
        try:
            await server.call_tool("check_claims", {"source": "A man plays.", "text": "A man."})
        except ToolError as err:
            return time.perf_counter() - started, str(err)
        return time.perf_counter() - started, "answered"

    try:
        took, said = anyio.run(call)
    finally:
        gate.set()
    assert "took over 0.5 s" in said
    assert took < 10  # the held work would have run 30 s
    deadline = time.monotonic() + 30
    while jobs.in_flight and time.monotonic() < deadline:  # the slot comes back
        time.sleep(0.01)
    assert jobs.in_flight == 0


def _imports(path: Path, package: str, local: set[str]) -> set[str]:
    """The project modules a file imports, anywhere in it (functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in local}
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import loop, as the modules along it."""
    loops, state = [], dict.fromkeys(graph, 0)

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                loops.append(path[path.index(nxt) :] + [nxt])
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [node])
    return loops


@pytest.mark.parametrize("folder", ["squeezenli", "bench"])
def test_no_two_modules_import_each_other(folder):
    base = ROOT / folder
    files = {
        (
            ".".join(p.relative_to(ROOT).with_suffix("").parts)
            if folder == "squeezenli"
            else ".".join(p.relative_to(base).with_suffix("").parts)
        ): p
        for p in base.rglob("*.py")
    }
    files = {name.removesuffix(".__init__"): path for name, path in files.items()}
    graph = {name: _imports(path, folder, set(files)) - {name} for name, path in files.items()}
    # A package's __init__ is imported with each of its modules: not an edge back.
    for name in graph:
        graph[name] = {other for other in graph[name] if not name.startswith(other + ".")}
    assert _cycles(graph) == [], sys.version
