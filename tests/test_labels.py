"""The label mapping: config names, known models, overrides, and check-labels."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from squeezenli.cli.app import app
from squeezenli.errors import InputError
from squeezenli.models.labels import LabelMap, resolve_labels
from squeezenli.runtime.labelcheck import LabelCheck, check_pairs

GENERIC = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


def test_the_default_model_gets_the_documented_order_with_its_source():
    labels = resolve_labels(GENERIC, "squeezebert/squeezebert-mnli")
    assert labels.names == ("contradiction", "entailment", "neutral")
    assert "inferred" in labels.source and "check-labels" in labels.source


def test_config_names_win_and_are_normalised():
    labels = resolve_labels({0: "ENTAILMENT", 1: "Neutral", 2: "contradiction"}, "any/model")
    assert labels.names == ("entailment", "neutral", "contradiction")
    assert "config" in labels.source


def test_unknown_generic_models_keep_generic_names_and_say_so():
    labels = resolve_labels(GENERIC, "someone/else")
    assert labels.names == ("LABEL_0", "LABEL_1", "LABEL_2")
    assert "--label-order" in labels.source


def test_override_beats_config_and_table():
    labels = resolve_labels(
        GENERIC, "squeezebert/squeezebert-mnli", "Entailment, neutral,CONTRADICTION"
    )
    assert labels.names == ("entailment", "neutral", "contradiction")
    assert labels.source == "--label-order"
    with pytest.raises(InputError, match="names 2 labels"):
        resolve_labels(GENERIC, "x/y", "entailment,neutral")


def test_check_pairs_are_balanced_and_unambiguous_by_construction():
    pairs = check_pairs()
    assert [
        sum(p["label"] == c for p in pairs) for c in ("entailment", "neutral", "contradiction")
    ] == [10, 10, 10]


MAPPING = LabelMap(("contradiction", "entailment", "neutral"), "test")


def test_a_model_that_behaves_as_the_mapping_agrees():
    # rows: gold entailment, neutral, contradiction; columns: output index
    counts = np.array([[0, 9, 1], [1, 1, 8], [10, 0, 0]])
    check = LabelCheck.from_counts(MAPPING, counts)
    assert check.conclusive and check.agrees
    assert check.observed_order == MAPPING.names


def test_a_swapped_model_is_caught_and_its_order_reported():
    counts = np.array([[9, 0, 1], [0, 2, 8], [0, 10, 0]])  # entailment wins on index 0
    check = LabelCheck.from_counts(MAPPING, counts)
    assert check.conclusive and not check.agrees
    assert check.observed_order == ("entailment", "contradiction", "neutral")


def test_no_clear_winner_is_inconclusive():
    counts = np.array([[4, 3, 3], [0, 2, 8], [0, 10, 0]])
    assert not LabelCheck.from_counts(MAPPING, counts).conclusive
    same_index = np.array([[0, 9, 1], [0, 9, 1], [10, 0, 0]])
    assert not LabelCheck.from_counts(MAPPING, same_index).conclusive


def test_check_labels_command_runs_the_model(tiny_nli_model):
    import json

    args = ["model", "check-labels", "-m", str(tiny_nli_model)]
    result = CliRunner().invoke(app, [*args, "--json"])
    # Random weights: whatever the verdict, all 30 pairs are counted and the exit code says it.
    report = json.loads(result.stdout)
    assert sum(sum(row) for row in report["wins"].values()) == 30
    assert report["labels"] == ["contradiction", "entailment", "neutral"]
    assert result.exit_code == (0 if report["agrees"] else 1)
    table = CliRunner().invoke(app, args)
    assert "check-labels" in table.stdout and table.exit_code == result.exit_code


def test_a_two_class_model_is_checked_on_two_classes(tmp_path):
    import json

    from tinymodel import write_tiny_model

    two = {"0": "not_entailment", "1": "entailment"}
    model = write_tiny_model(tmp_path / "two", config_overrides={"num_labels": 2, "id2label": two})
    result = CliRunner().invoke(app, ["model", "check-labels", "-m", str(model), "--json"])
    report = json.loads(result.stdout)
    assert list(report["wins"]) == ["entailment", "not_entailment"]
    assert [sum(row) for row in report["wins"].values()] == [10, 20]
    assert result.exit_code == (0 if report["agrees"] else 1)
    # A model that puts entailment on output 1 and the rest on output 0 agrees with this map.
    behaves = LabelCheck.from_counts(
        LabelMap(("not_entailment", "entailment"), "test"),
        np.array([[1, 9], [18, 2]]),
        ("entailment", "not_entailment"),
    )
    assert behaves.agrees and behaves.observed_order == ("not_entailment", "entailment")


def test_model_info_shows_the_mapping_and_its_source(tiny_model):
    import json

    result = CliRunner().invoke(
        app,
        [
            "model",
            "info",
            "--json",
            "-m",
            str(tiny_model),
            "--label-order",
            "contradiction,entailment,neutral",
        ],
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["labels"] == {"0": "contradiction", "1": "entailment", "2": "neutral"}
    assert info["label_source"] == "label_order"
    assert info["weights"] == "model.safetensors" and info["revision"] is None


def test_a_single_answer_says_where_an_unconfigured_label_order_came_from(tiny_model):
    from typer.testing import CliRunner

    from squeezenli.cli.app import app

    done = CliRunner().invoke(
        app, ["A man plays.", "Music.", "-m", str(tiny_model), "--label-order", "c,e,n"]
    )
    assert done.exit_code == 0, done.output
    assert "label order: as --label-order gives it" in done.stdout
    assert "from inferred" not in done.stdout
