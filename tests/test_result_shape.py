"""One shape for every result (tasks/rows.py): the fields each task adds, their names under
--prefix and --output-fields for every command, and choices taken as enums in any case."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from squeezenli.cli.app import app
from squeezenli.errors import InputError
from squeezenli.models.labels import LabelMap
from squeezenli.records.readers import Record, RowFailure
from squeezenli.runtime.prediction import Evidence, Prediction
from squeezenli.tasks.results import ZeroShot
from squeezenli.tasks.rows import (
    CHECK_NAMES,
    ResultFields,
    every_result_name,
    prediction_fields,
    prediction_names,
    zero_shot_names,
)

runner = CliRunner()
LABELS = LabelMap(("contradiction", "entailment", "neutral"), "test")


def _prediction(**extra) -> Prediction:
    scores = {"entailment": 0.5, "neutral": 0.3, "contradiction": 0.2}
    return Prediction("entailment", scores, False, **extra)


@pytest.mark.parametrize("flat", [False, True], ids=["nested", "flat"])
@pytest.mark.parametrize("full", [False, True], ids=["plain", "every-option"])
def test_the_names_listed_up_front_are_the_fields_a_prediction_adds(flat, full):
    extra = {"evidence": Evidence(3, 9, 2), "entailed": True} if full else {}
    if full:
        extra["logits"] = {"entailment": 1.0, "neutral": 0.0, "contradiction": -1.0}
    fields = prediction_fields(_prediction(**extra), flat)
    names = prediction_names(LABELS, flat=flat, chunked=full, entailed=full, logits=full)
    assert list(fields) == names if flat else sorted(fields) == sorted(names)


def test_zero_shot_and_check_names_are_their_fields():
    result = ZeroShot("t", ["a", "b"], [0.6, 0.4], selected=["a"])
    assert list(result.fields()) == zero_shot_names(text=True, selected=True)
    assert set(CHECK_NAMES) <= set(every_result_name())


def test_a_row_gets_prefixed_and_renamed_fields_and_refuses_a_collision():
    shape = ResultFields(["prediction", "scores"], "p_", {"scores": "probs"})
    assert shape.fields == ["p_prediction", "p_probs"]
    record = Record("in.jsonl", 3, {"id": 1})
    row = shape.row(record, {"prediction": "x", "scores": {}, "other": 1})
    assert row == {"id": 1, "p_prediction": "x", "p_probs": {}}
    clash = Record("in.jsonl", 4, {"p_probs": 1})
    with pytest.raises(RowFailure) as failed:
        shape.row(clash, {"prediction": "x"})
    assert failed.value.error.field == "p_probs"
    assert str(failed.value.error).startswith("in.jsonl:4: input field 'p_probs'")


@pytest.mark.parametrize(
    "renames, message",
    [
        ("prediction", "takes NAME=NEW pairs"),
        ("label=x", "renames the result's fields"),
        ("prediction=a,prediction=b", "renames 'prediction' twice"),
        ("prediction=scores", "two result fields one name"),
    ],
)
def test_bad_renames_are_refused_naming_the_parameter(renames, message):
    with pytest.raises(InputError, match=message) as refused:
        ResultFields(["prediction", "scores"], "", renames)
    assert "`output_fields`" in str(refused.value)


def _rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_classify_takes_prefix_and_output_fields(tiny_nli_model):
    data = '{"text": "The match went to extra time.", "labels": "mine"}\n'
    base = ["classify", "-l", "sports,music", "-m", str(tiny_nli_model), "--precision", "fp32"]
    plain = runner.invoke(app, [*base, "--prefix", "zs_"], input=data)
    assert plain.exit_code == 0, plain.output
    renamed = runner.invoke(
        app, [*base, "--output-fields", "labels=ranked,scores=probs"], input=data
    )
    assert renamed.exit_code == 0, renamed.output
    (one,), (two,) = _rows(plain.stdout), _rows(renamed.stdout)
    assert one["labels"] == two["labels"] == "mine"  # the input's own field, kept
    assert one["zs_labels"] == two["ranked"] and one["zs_scores"] == two["probs"]
    clash = runner.invoke(app, base, input=data)
    assert clash.exit_code == 2
    assert (
        "input field 'labels' would be overwritten" in clash.stderr and "--prefix" in clash.stderr
    )


def test_check_takes_output_fields(tiny_nli_model):
    data = json.dumps({"source": "A man plays a guitar. It is late.", "text": "Music."}) + "\n"
    args = ["check", "-m", str(tiny_nli_model), "--precision", "fp32"]
    done = runner.invoke(app, [*args, "--output-fields", "score=support"], input=data)
    assert done.exit_code == 0, done.output
    (row,) = _rows(done.stdout)
    assert "support" in row and "score" not in row and "claims" in row


def test_choices_are_taken_in_any_case_and_subsets_refused(tiny_nli_model):
    data = '{"premise": "A man plays.", "hypothesis": "Music."}\n'
    args = ["batch", "-m", str(tiny_nli_model), "--precision", "FP32", "--on-error", "Skip"]
    done = runner.invoke(app, [*args, "--output", "JSONL", "--engine", "Local"], input=data)
    assert done.exit_code == 0, done.output
    assert _rows(done.stdout)[0]["prediction"]
    parquet = runner.invoke(app, [*args, "--output", "parquet"], input=data)
    assert parquet.exit_code == 2 and "--output parquet writes files" in parquet.stderr
    wrong = runner.invoke(app, [*args, "--engine", "spark"], input=data)
    assert wrong.exit_code == 2 and "--engine" in wrong.stderr


def test_a_model_spec_takes_precision_in_any_case_and_names_a_bad_one():
    from squeezenli.choices import Precision
    from squeezenli.runtime.spec import ModelSpec

    assert ModelSpec(precision="INT8").precision is Precision.INT8
    with pytest.raises(InputError, match="`precision` must be one of auto, fp32, int8"):
        ModelSpec(precision="int4")
