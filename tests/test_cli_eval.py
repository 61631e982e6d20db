"""`squeezenli eval`: figures computed from the model's own predictions, gold labels checked."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from squeezenli.cli.app import app
from squeezenli.runtime.model import load_model
from squeezenli.tasks.evaluation import Report

runner = CliRunner()

PAIRS = [
    ("A man plays a guitar.", "A person makes music.", "entailment"),
    ("The dog runs in the park.", "A cat sits on the car.", "Neutral"),
    ("Some people were eating food.", "Nobody ate.", "CONTRADICTION"),
    ("The team won the match.", "The team lost.", "contradiction"),
    ("A child reads a book.", "A child reads.", "entailment"),
    ("The woman is old.", "The woman sings.", "neutral"),
    ("It rained all day.", "The street was dry.", "contradiction"),
]


def _write(tmp_path, rows, name="gold.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(pairs=PAIRS):
    return [{"premise": p, "hypothesis": h, "label": g} for p, h, g in pairs]


def _predicted(folder, pairs=PAIRS) -> list[str]:
    return [p.label for p in load_model(str(folder)).predict([(p, h) for p, h, _ in pairs])]


def test_json_report_agrees_with_the_predictions(tiny_nli_model, tmp_path):
    path = _write(tmp_path, _rows())
    result = runner.invoke(app, ["eval", str(path), "-m", str(tiny_nli_model), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    predicted = _predicted(tiny_nli_model)
    gold = [g.lower() for _, _, g in PAIRS]
    correct = sum(p == g for p, g in zip(predicted, gold))
    assert report["accuracy"] == pytest.approx(correct / len(PAIRS))
    assert report["counts"] == {
        "scored": len(PAIRS),
        "correct": correct,
        "failed": 0,
        "unlabelled": 0,
    }
    assert report["label_source"] == "the model's config (id2label)"
    assert report["labels"] == ["contradiction", "entailment", "neutral"]
    for g in report["classes"]:
        for p in report["classes"]:
            expected = sum(1 for a, b in zip(gold, predicted) if a == g and b == p)
            assert report["confusion"][g][p] == expected
    for c, row in report["per_class"].items():
        hits = sum(1 for a, b in zip(gold, predicted) if a == b == c)
        assert row["support"] == gold.count(c)
        assert row["predicted"] == predicted.count(c)
        assert row["recall"] == pytest.approx(hits / gold.count(c))


def test_report_figures_on_a_known_confusion():
    report = Report()
    for gold, predicted in [("entailment", "entailment")] * 3 + [
        ("entailment", "neutral"),
        ("neutral", "neutral"),
        ("contradiction", "entailment"),
    ]:
        report.add(gold, predicted)
    figures = report.as_dict()
    assert figures["accuracy"] == pytest.approx(4 / 6)
    assert figures["per_class"]["entailment"]["precision"] == pytest.approx(3 / 4)
    assert figures["per_class"]["entailment"]["recall"] == pytest.approx(3 / 4)
    assert figures["per_class"]["neutral"]["precision"] == pytest.approx(1 / 2)
    assert figures["per_class"]["contradiction"]["f1"] == 0.0


def test_two_class_data_merges_neutral_and_contradiction(tiny_nli_model, tmp_path):
    pairs = [
        (p, h, "entailment" if g.lower() == "entailment" else "non-entailment") for p, h, g in PAIRS
    ]
    path = _write(tmp_path, _rows(pairs))
    result = runner.invoke(app, ["eval", str(path), "-m", str(tiny_nli_model), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["classes"] == ["entailment", "not_entailment"]
    predicted = [
        "entailment" if p == "entailment" else "not_entailment" for p in _predicted(tiny_nli_model)
    ]
    gold = ["entailment" if g == "entailment" else "not_entailment" for _, _, g in pairs]
    assert report["counts"]["correct"] == sum(p == g for p, g in zip(predicted, gold))


def test_a_two_class_model_merges_three_class_gold_labels(tmp_path):
    from tinymodel import write_tiny_model

    two = {"0": "ENTAILMENT", "1": "Not_Entailment"}
    model = write_tiny_model(tmp_path / "two", config_overrides={"num_labels": 2, "id2label": two})
    path = _write(tmp_path, _rows())
    errors = tmp_path / "wrong.jsonl"
    result = runner.invoke(
        app, ["eval", str(path), "-m", str(model), "--json", "--errors", str(errors)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["classes"] == ["entailment", "not_entailment"]
    assert report["counts"]["scored"] == len(PAIRS)
    predicted = _predicted(model)
    assert set(predicted) <= {"entailment", "not_entailment"}
    gold = ["entailment" if g.lower() == "entailment" else "not_entailment" for _, _, g in PAIRS]
    correct = sum(p == g for p, g in zip(predicted, gold))
    assert report["counts"]["correct"] == correct
    assert len(errors.read_text().splitlines()) == len(PAIRS) - correct
    assert "counted as not_entailment" in result.stderr


def test_errors_file_holds_exactly_the_misclassified_rows(tiny_nli_model, tmp_path):
    path = _write(tmp_path, _rows())
    wrong = tmp_path / "wrong.jsonl"
    result = runner.invoke(
        app, ["eval", str(path), "-m", str(tiny_nli_model), "--errors", str(wrong), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "confusion" in result.stdout
    rows = [json.loads(line) for line in wrong.read_text().splitlines()]
    predicted = _predicted(tiny_nli_model)
    expected = [i + 1 for i, (p, (_, _, g)) in enumerate(zip(predicted, PAIRS)) if p != g.lower()]
    assert [r["line"] for r in rows] == expected
    assert all(r["gold"] != r["prediction"] and r["source"] == str(path) for r in rows)


@pytest.mark.parametrize(
    "label, message",
    [
        ("maybe", "gold.jsonl:2: field 'label': unknown label 'maybe'"),
        (1, "gold.jsonl:2: field 'label' must be a class name"),
        (None, "gold.jsonl:2: field 'label' must be a class name"),
    ],
)
def test_bad_gold_labels_name_file_line_and_field(tiny_nli_model, tmp_path, label, message):
    rows = _rows()
    rows[1]["label"] = label
    path = _write(tmp_path, rows)
    failed = runner.invoke(app, ["eval", str(path), "-m", str(tiny_nli_model)])
    assert failed.exit_code == 2
    assert message in failed.stderr and "Traceback" not in failed.output
    skipped = runner.invoke(
        app, ["eval", str(path), "-m", str(tiny_nli_model), "--on-error", "skip", "--json"]
    )
    assert skipped.exit_code == 1
    report = json.loads(skipped.stdout)
    assert report["counts"]["scored"] == len(PAIRS) - 1 and report["counts"]["failed"] == 1
    assert message in skipped.stderr


def test_other_label_field_and_missing_column(tiny_nli_model, tmp_path):
    rows = [{"sentence1": p, "sentence2": h, "gold_label": g} for p, h, g in PAIRS]
    path = _write(tmp_path, rows)
    missing = runner.invoke(app, ["eval", str(path), "-m", str(tiny_nli_model)])
    assert missing.exit_code == 2
    assert "no 'label' field; columns present: sentence1, sentence2, gold_label" in missing.stderr
    ok = runner.invoke(
        app, ["eval", str(path), "-m", str(tiny_nli_model), "--label-field", "gold_label", "--json"]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["counts"]["scored"] == len(PAIRS)


def test_a_model_with_unnamed_outputs_is_refused(tiny_model, tmp_path):
    path = _write(tmp_path, _rows())
    result = runner.invoke(app, ["eval", str(path), "-m", str(tiny_model)])
    assert result.exit_code == 3
    assert "eval needs named NLI outputs" in result.stderr


def test_unlabelled_rows_are_counted_and_figures_come_per_group(tiny_nli_model, tmp_path):
    rows = _rows()
    genres = ["fiction", "travel", "fiction", "travel", "slate", "fiction", "travel"]
    for row, genre in zip(rows, genres):
        row["genre"] = genre
    rows.insert(2, {"premise": "A man.", "hypothesis": "A man.", "label": "-", "genre": "slate"})
    rows.insert(5, {"premise": "A dog.", "hypothesis": "A cat.", "label": "", "genre": "fiction"})
    path = _write(tmp_path, rows)
    result = runner.invoke(
        app, ["eval", str(path), "-m", str(tiny_nli_model), "--by", "genre", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["unlabelled"] == 2 and report["counts"]["scored"] == len(PAIRS)
    assert report["model"] == str(tiny_nli_model.resolve()) and report["squeezenli"]
    assert {"revision", "precision", "labels", "label_source"} <= set(report)
    predicted = _predicted(tiny_nli_model)
    gold = [g.lower() for _, _, g in PAIRS]
    groups = report["by"]["groups"]
    assert sorted(groups) == ["fiction", "slate", "travel"]
    for genre, figures in groups.items():
        mine = [i for i, g in enumerate(genres) if g == genre]
        right = sum(predicted[i] == gold[i] for i in mine)
        assert figures["counts"]["scored"] == len(mine)
        assert figures["accuracy"] == pytest.approx(right / len(mine))
        classes = {gold[i] for i in mine}
        recalls = [
            sum(predicted[i] == c for i in mine if gold[i] == c) / sum(gold[i] == c for i in mine)
            for c in classes
        ]
        assert figures["balanced_accuracy"] == pytest.approx(sum(recalls) / len(recalls))
    assert groups["slate"]["counts"]["unlabelled"] == 1
    table = runner.invoke(app, ["eval", str(path), "-m", str(tiny_nli_model), "--by", "genre"])
    assert table.exit_code == 0 and "by genre" in table.stdout and "2 unlabelled" in table.stdout
