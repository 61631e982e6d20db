"""`squeezenli PREMISE HYPOTHESIS` and `squeezenli score`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from squeezenli.cli.app import app
from squeezenli.runtime.model import load_model

runner = CliRunner()
PAIR = ["A man plays a guitar on stage.", "A person is making music."]


def test_default_command_prints_one_json_line(tiny_nli_model):
    result = runner.invoke(app, [*PAIR, "--json", "-m", str(tiny_nli_model)])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert list(row) == ["premise", "hypothesis", "prediction", "scores", "truncated"]
    assert row["truncated"] is False
    assert list(row["scores"]) == ["entailment", "neutral", "contradiction"]
    expected = load_model(str(tiny_nli_model)).probabilities([tuple(PAIR)])[0]
    names = ["contradiction", "entailment", "neutral"]
    assert row["prediction"] == names[int(expected.argmax())]
    for i, name in enumerate(names):
        assert row["scores"][name] == pytest.approx(float(expected[i]), abs=1e-6)


def test_explicit_score_command_accepts_a_command_name_as_premise(tiny_nli_model):
    result = runner.invoke(app, ["score", "batch", "model", "--json", "-m", str(tiny_nli_model)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["premise"] == "batch"


def test_table_output_names_the_prediction(tiny_nli_model):
    result = runner.invoke(app, [*PAIR, "-m", str(tiny_nli_model)])
    assert result.exit_code == 0, result.output
    assert "prediction:" in result.stdout
    for name in ("entailment", "neutral", "contradiction"):
        assert name in result.stdout


def test_label_order_override_relabels_outputs(tiny_model):
    plain = json.loads(runner.invoke(app, [*PAIR, "--json", "-m", str(tiny_model)]).stdout)
    named = runner.invoke(
        app,
        [
            *PAIR,
            "--json",
            "-m",
            str(tiny_model),
            "--label-order",
            "neutral,contradiction,entailment",
        ],
    )
    assert named.exit_code == 0, named.output
    scores = json.loads(named.stdout)["scores"]
    assert scores["neutral"] == plain["scores"]["LABEL_0"]
    assert scores["contradiction"] == plain["scores"]["LABEL_1"]
    assert scores["entailment"] == plain["scores"]["LABEL_2"]


def test_env_var_selects_the_model(tiny_nli_model):
    result = runner.invoke(app, [*PAIR, "--json"], env={"SQUEEZENLI_MODEL": str(tiny_nli_model)})
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--label-order", "a,b"], 2, "names 2 labels but the model has 3 outputs"),
        (["--label-order", "a,a,b"], 2, "distinct names"),
        (["--max-length", "4"], 2, "at least 8"),
        (["--max-length", "4096"], 2, "exceeds the model's 48 positions"),
        (["--precision", "fp8"], 2, "'fp8' is not one of 'auto', 'fp32', 'int8'"),
    ],
)
def test_bad_options_are_one_line_errors(tiny_model, args, code, message):
    result = runner.invoke(app, [*PAIR, "-m", str(tiny_model), *args])
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tiny_model):
    result = runner.invoke(app, ["--debug", *PAIR, "-m", str(tiny_model), "--label-order", "a,b"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_long_input_is_truncated_not_an_error(tiny_nli_model):
    long = " ".join(["the dog runs in the park"] * 400)
    result = runner.invoke(app, [long, long, "--json", "-m", str(tiny_nli_model)])
    assert result.exit_code == 0, result.output
    assert np.isclose(sum(json.loads(result.stdout)["scores"].values()), 1.0, atol=1e-5)
    refused = runner.invoke(app, [long, long, "--long-input", "fail", "-m", str(tiny_nli_model)])
    assert refused.exit_code == 2 and refused.exception is not None
    assert isinstance(refused.exception, SystemExit)  # one line, not an AssertionError
    assert "<arguments>:1:" in refused.stderr and "longer than the model" in refused.stderr


def test_version():
    from squeezenli import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def _commands(group, prefix=()):
    import typer.main

    command = typer.main.get_command(group) if not prefix else group
    for name, sub in getattr(command, "commands", {}).items():
        if hasattr(sub, "commands"):
            yield from _commands(sub, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_command_help_has_an_example():
    names = list(_commands(app))
    assert {("score",), ("batch",), ("classify",), ("eval",), ("model", "remove")} <= set(names)
    for name in names:
        result = runner.invoke(app, [*name, "--help"])
        assert result.exit_code == 0, name
        example = result.stdout.split("Example:", 1)
        assert len(example) == 2 and "squeezenli" in example[1], name


def test_quiet_leaves_errors_only(tiny_nli_model, capsys):
    """-q: no notes and no warnings (docs/input-output.md: nothing on stderr but errors)."""
    import logging

    from conftest import squeezenli

    from squeezenli.cli.options import announce_builds

    args = ["A man.", "A person.", "-m", str(tiny_nli_model), "--precision", "int8"]
    loud = squeezenli(*args, "--threads", "999")
    assert loud.returncode == 0 and "--threads 999 is more than" in loud.stderr
    quiet = squeezenli(*args, "--threads", "999", "-q")
    assert quiet.returncode == 0 and quiet.stdout and quiet.stderr == ""
    announce_builds(False)
    logging.getLogger("squeezenli.runtime.precision").warning("int8 may change answers")
    logging.getLogger("squeezenli").error("an error still shows")
    assert capsys.readouterr().err == "squeezenli: an error still shows\n"


def test_max_length_below_the_minimum_is_refused_before_any_download():
    from conftest import squeezenli

    done = squeezenli("A man.", "A person.", "-m", "acme/not-fetched", "--max-length", "5")
    assert done.returncode == 2
    assert done.stderr.strip() == "squeezenli: error: --max-length must be at least 8, got 5"
    shown = " ".join(squeezenli("batch", "--help").stdout.split())
    assert "at least 8" in shown and "x>=3" not in shown
