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
    assert report["label_source"] == "config"
    assert report["label_source_detail"] == "the model's config (id2label)"
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
        app, ["eval", str(path), "-m", str(model), "--json", "--misclassified", str(errors)]
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


def test_misclassified_file_holds_exactly_the_misclassified_rows(tiny_nli_model, tmp_path):
    """Each wrong row once, its input whole under `row`: input fields named like ours
    (`line`, `source`, `prediction`) are kept, not overwritten."""
    given = [{**row, "line": "input's", "source": 7, "prediction": None} for row in _rows()]
    path = _write(tmp_path, given)
    wrong = tmp_path / "wrong.jsonl"
    result = runner.invoke(
        app, ["eval", str(path), "-m", str(tiny_nli_model), "--misclassified", str(wrong), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "confusion" in result.stdout
    rows = [json.loads(line) for line in wrong.read_text().splitlines()]
    predicted = _predicted(tiny_nli_model)
    expected = [i + 1 for i, (p, (_, _, g)) in enumerate(zip(predicted, PAIRS)) if p != g.lower()]
    assert [r["line"] for r in rows] == expected
    assert all(r["gold"] != r["prediction"] and r["source"] == str(path) for r in rows)
    assert rows and [r["row"] for r in rows] == [given[line - 1] for line in expected]


def test_errors_holds_bad_rows_as_in_batch_and_misclassified_the_wrong_ones(
    tiny_nli_model, tmp_path
):
    """--errors means what it means in batch (rows that cannot be read, skipped by default
    once it is given); the model's mistakes go to --misclassified."""
    rows = _rows()
    rows.insert(2, {"premise": "no label here", "hypothesis": 7, "label": "neutral"})
    path = _write(tmp_path, rows)
    bad, wrong = tmp_path / "bad.jsonl", tmp_path / "wrong.jsonl"
    args = ["eval", str(path), "-m", str(tiny_nli_model), "--json", "--errors", str(bad)]
    result = runner.invoke(app, [*args, "--misclassified", str(wrong)])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["counts"]["failed"] == 1
    [skipped] = [json.loads(line) for line in bad.read_text().splitlines()]
    assert skipped["line"] == 3 and skipped["field"] == "hypothesis"
    predicted = _predicted(tiny_nli_model)
    expected = sum(p != g.lower() for p, (_, _, g) in zip(predicted, PAIRS))
    assert len(wrong.read_text().splitlines()) == expected
    assert (
        "--errors collects skipped rows" in runner.invoke(app, [*args, "--on-error", "fail"]).stderr
    )


def test_misclassified_may_not_be_an_input(tiny_nli_model, tmp_path):
    path = _write(tmp_path, _rows())
    before = path.read_bytes()
    args = ["eval", str(path), "-m", str(tiny_nli_model), "--misclassified", str(path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--misclassified" in result.stderr
    assert path.read_bytes() == before


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


ZERO_SHOT = [
    ("The match went to extra time.", "sports", ["sports"]),
    ("Parliament passed the bill after a long debate.", "politics", ["politics"]),
    ("The band played a new song at the stadium.", "music", ["music", "sports"]),
    ("The striker scored twice in the final.", "sports", ["sports"]),
    ("The senator sang the anthem.", "politics", ["politics", "music"]),
    ("Nobody could agree on this one.", "-", []),
    ("The orchestra tuned up before the vote.", "music", ["music", "politics"]),
]
CANDIDATES = ["sports", "politics", "music"]


def _expected(rows: list[dict], gold: list[list[str]], multi: bool, threshold) -> dict:
    """Per-label precision/recall/F1 computed here from classify's own output."""
    chosen = []
    for row in rows:
        if "selected" in row:
            chosen.append(set(row["selected"]))
        elif multi:
            chosen.append({n for n, s in zip(row["labels"], row["scores"]) if s >= 0.5})
        else:
            chosen.append({row["labels"][0]})
    figures = {}
    for label in CANDIDATES:
        tp = sum(label in g and label in c for g, c in zip(gold, chosen))
        predicted = sum(label in c for c in chosen)
        support = sum(label in g for g in gold)
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        figures[label] = (p, r, 2 * p * r / (p + r) if p + r else 0.0, support, predicted)
    exact = sum(set(g) == c for g, c in zip(gold, chosen)) / len(gold)
    return {"per_label": figures, "exact": exact}


@pytest.mark.parametrize(
    "multi, threshold", [(False, None), (False, 0.34), (True, None), (True, 0.3)]
)
def test_zero_shot_eval_equals_figures_computed_from_classify_output(
    tiny_nli_model, tmp_path, multi, threshold
):
    rows = [
        {"text": t, "label": (many if multi else one) if one != "-" else "-"}
        for t, one, many in ZERO_SHOT
    ]
    path = _write(tmp_path, rows)
    options = ["-l", ",".join(CANDIDATES), "-m", str(tiny_nli_model), "--precision", "fp32"]
    options += ["--multi-label"] if multi else []
    options += ["--threshold", str(threshold)] if threshold is not None else []
    classified = runner.invoke(app, ["classify", "-i", str(path), *options])
    assert classified.exit_code == 0, classified.output
    out = [json.loads(line) for line in classified.stdout.splitlines()]
    labelled = [(row, row["label"]) for row in out if row["label"] != "-"]
    gold = [g if isinstance(g, list) else [g] for _, g in labelled]
    expected = _expected([r for r, _ in labelled], gold, multi, threshold)

    done = runner.invoke(app, ["eval", str(path), *options, "--json"])
    assert done.exit_code == 0, done.output
    again_path = _write(tmp_path, out, "classified.jsonl")
    again = ["eval", str(again_path), "--classified", "--json"] + (["--multi-label"] * multi)
    replayed = runner.invoke(app, again)
    assert replayed.exit_code == 0, replayed.output
    for report in (json.loads(done.stdout), json.loads(replayed.stdout)):
        assert report["counts"]["unlabelled"] == 1 and report["counts"]["scored"] == len(gold)
        for label, (p, r, f1, support, predicted) in expected["per_label"].items():
            got = report["per_label"][label]
            assert (got["support"], got["predicted"]) == (support, predicted)
            assert got["precision"] == pytest.approx(p) and got["recall"] == pytest.approx(r)
            assert got["f1"] == pytest.approx(f1)
        macro = sum(v[2] for v in expected["per_label"].values()) / len(CANDIDATES)
        assert report["macro_f1"] == pytest.approx(macro)
        key = "exact_match" if multi else "accuracy"
        assert report[key] == pytest.approx(expected["exact"])
    assert json.loads(done.stdout)["precision"] == "fp32"


def test_zero_shot_eval_names_a_gold_label_that_is_no_candidate(tiny_nli_model, tmp_path):
    path = _write(tmp_path, [{"text": "A goal.", "label": "sports"}, {"text": "x", "label": "art"}])
    args = ["eval", str(path), "-l", "sports,music", "-m", str(tiny_nli_model)]
    done = runner.invoke(app, args)
    assert done.exit_code == 2
    assert "gold.jsonl:2" in done.stderr and "'art' is not a candidate" in done.stderr
    skipped = runner.invoke(app, [*args, "--on-error", "skip", "--json"])
    assert skipped.exit_code == 1
    assert json.loads(skipped.stdout)["counts"]["failed"] == 1


def test_classified_rows_that_are_no_classify_output_are_refused(tmp_path):
    path = _write(tmp_path, [{"text": "x", "label": "a", "labels": "a"}])
    done = runner.invoke(app, ["eval", str(path), "--classified"])
    assert done.exit_code == 2 and "not a classify result" in done.stderr


@pytest.mark.parametrize("zero_shot", [[], ["--labels", "a,b"]])
@pytest.mark.parametrize("text", ["", '{"premise": "a", "hypothesis": "b", "label": "-"}\n'])
def test_nothing_to_evaluate_is_refused_not_reported_as_accuracy_0(
    tiny_nli_model, tmp_path, zero_shot, text
):
    path = tmp_path / "gold.jsonl"
    path.write_text(text.replace('"premise"', '"text"') if zero_shot else text)
    result = runner.invoke(app, ["eval", str(path), "-m", str(tiny_nli_model), *zero_shot])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    unlabelled = 1 if text else 0
    assert f"nothing to evaluate: no labelled row was scored ({unlabelled} unlabelled" in (
        result.stderr
    )
