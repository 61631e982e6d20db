"""`squeezenli classify`: zero-shot scores equal transformers' zero-shot pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from squeezenli.cli.app import app
from squeezenli.runtime.model import load_model
from squeezenli.tasks.zeroshot import classify

runner = CliRunner()
TOLERANCE = 1e-4


def _check(results, expected) -> None:
    assert len(results) == len(expected)
    for ours, theirs in zip(results, expected):
        assert ours["text"] == theirs["text"]
        assert ours["labels"] == theirs["labels"]
        np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=TOLERANCE, rtol=0)


def _cli_args(case: dict) -> list[str]:
    args = ["classify", *case["texts"], "--labels", ",".join(case["labels"])]
    args += ["--template", case["template"]]
    return args + (["--multi-label"] if case["multi_label"] else [])


@pytest.mark.parametrize("case", [0, 1, 2], ids=["single-label", "multi-label", "one-label"])
def test_cli_matches_the_pipeline_golden_values(tiny_nli_model, golden, case):
    expected = golden["zero_shot"][case]
    args = [*_cli_args(expected), "-m", str(tiny_nli_model), "--json", "--precision", "fp32"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    _check([json.loads(line) for line in result.stdout.splitlines()], expected["expected"])


def test_python_api_matches_the_pipeline_golden_values(tiny_nli_model, golden):
    nli = load_model(str(tiny_nli_model), precision="fp32")
    for case in golden["zero_shot"]:
        results = classify(
            nli,
            case["texts"],
            case["labels"],
            template=case["template"],
            multi_label=case["multi_label"],
        )
        _check([r.__dict__ for r in results], case["expected"])


def test_live_against_the_transformers_pipeline(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from make_golden import zero_shot_reference
    from tinymodel import name_labels, write_tiny_model

    folder = name_labels(write_tiny_model(tmp_path / "nli", seed=11))
    nli = load_model(str(folder), precision="fp32")
    for multi_label in (False, True):
        case = {
            "texts": ["A team won the final.", "The band played all night long."],
            "labels": ["sports", "music", "the weather"],
            "template": "This text is about {}.",
            "multi_label": multi_label,
        }
        expected = zero_shot_reference(folder, case)
        results = classify(
            nli, case["texts"], case["labels"], template=case["template"], multi_label=multi_label
        )
        _check([r.__dict__ for r in results], expected)


def test_file_input_keeps_fields_and_streams_in_order(tiny_nli_model, tmp_path):
    source = tmp_path / "texts.csv"
    source.write_text("id,body\n1,The match went to extra time.\n2,Stocks fell.\n3,A song.\n")
    result = runner.invoke(
        app,
        ["classify", "-i", str(source), "--text-field", "body", "-l", "sports,money"]
        + ["-m", str(tiny_nli_model), "--batch-size", "3"],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["text"] == "Stocks fell." and rows[1]["body"] == "Stocks fell."
    direct = list(classify(load_model(str(tiny_nli_model)), ["Stocks fell."], "sports,money"))
    assert rows[1]["labels"] == direct[0].labels
    assert "3 rows classified, 0 failed" in result.stderr


def test_stdin_bad_rows_skipped_and_accounted_for(tiny_nli_model):
    lines = '{"text": "fine", "n": 1}\n{"n": 2}\n{"text": 5, "n": 3}\nnot json\n{"text": "ok"}\n'
    result = runner.invoke(
        app,
        ["classify", "-l", "a,b", "-m", str(tiny_nli_model), "--on-error", "skip"],
        input=lines,
    )
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 2
    assert "<stdin>:2: missing field 'text'" in result.stderr
    assert "<stdin>:3: field 'text' must be text, got a number" in result.stderr
    assert "<stdin>:4: invalid JSON" in result.stderr
    assert "2 rows classified, 3 failed" in result.stderr


def test_a_source_without_the_text_column_fails_whole(tiny_nli_model):
    result = runner.invoke(
        app,
        ["classify", "-l", "a,b", "-m", str(tiny_nli_model), "--on-error", "skip"],
        input='{"body": "x", "id": 1}\n',
    )
    assert result.exit_code == 2
    assert "<stdin>:1: no 'text' field; columns present: body, id; use --text-field" in (
        result.stderr
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["-l", " , "], "--labels needs at least one label"),
        (["-l", "a,b,a"], "--labels lists a more than once"),
        (["-l", "a,b", "--template", "About it."], "--template must contain {}"),
    ],
)
def test_usage_errors(tiny_nli_model, args, message):
    result = runner.invoke(app, ["classify", "text", *args, "-m", str(tiny_nli_model)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_model_without_an_entailment_label_says_how_to_fix_it(tiny_model):
    result = runner.invoke(app, ["classify", "text", "-l", "a,b", "-m", str(tiny_model)])
    assert result.exit_code == 3
    assert "which output is entailment" in result.stderr
    assert result.stderr.count("--label-order") == 1  # the way out, said once
    fixed = runner.invoke(
        app,
        ["classify", "text", "-l", "a,b", "-m", str(tiny_model)]
        + ["--label-order", "contradiction,entailment,neutral"],
    )
    assert fixed.exit_code == 0, fixed.output


def test_classify_never_overwrites_an_input_field(tiny_nli_model):
    data = json.dumps({"text": "The match.", "labels": "gold"}) + "\n"
    result = runner.invoke(
        app, ["classify", "-l", "sports,music", "-m", str(tiny_nli_model)], input=data
    )
    assert result.exit_code == 2
    assert "<stdin>:1: input field 'labels' would be overwritten" in result.stderr
    assert result.stdout == ""


TEXTS = ["The match went to extra time.", "Stocks fell today.", "A band plays a song.", "Rain."]
LABELS = "sports,politics,music,food"


def _classified(model, *extra: str) -> list[dict]:
    args = ["classify", *TEXTS, "-l", LABELS, "-m", str(model), "--json", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("multi", [False, True])
def test_thresholds_top_k_and_abstaining_decide_from_the_scores(tiny_nli_model, multi):
    flags = ["--multi-label"] if multi else []
    plain = _classified(tiny_nli_model, *flags)
    # A threshold between the scores, so that some rows select and some abstain.
    cut = float(np.median([row["scores"][0] for row in plain]))
    decided = _classified(
        tiny_nli_model, *flags, "--threshold", str(cut), "--top-k", "2", "--none-label", "other"
    )
    for before, after in zip(plain, decided):
        shown = zip(before["labels"][:2], before["scores"][:2])  # selected among those shown
        chosen = [n for n, v in shown if v >= cut]
        chosen = chosen if multi else chosen[:1]
        assert after["selected"] == (chosen or ["other"])
        assert after["labels"] == before["labels"][:2]
        assert after["scores"] == before["scores"][:2]
    assert any(row["selected"] == ["other"] for row in decided)
    assert any(row["selected"] != ["other"] for row in decided)
    assert "selected" not in plain[0]


def test_top_k_bounds_what_a_threshold_selects():
    """Every label passes a threshold of 0 in multi-label; with --top-k 2 the two shown are
    selected, never a label the row does not show (it selected all four)."""
    from squeezenli.tasks.results import ZeroShot
    from squeezenli.tasks.zeroshot import Decision

    four = ZeroShot("text", ["a", "b", "c", "d"], [0.9, 0.8, 0.7, 0.6])
    decided = Decision(threshold=0.0, top_k=2).apply(four, multi_label=True)
    assert decided.labels == ["a", "b"] and decided.selected == ["a", "b"]


def test_a_none_label_without_a_threshold_is_refused_before_loading(tmp_path):
    args = ["classify", "x", "-l", "a,b", "-m", str(tmp_path / "none"), "--none-label", "other"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--none-label is what a threshold abstains with: give --threshold" in result.stderr


def _softmax(values) -> np.ndarray:
    e = np.exp(np.asarray(values, np.float64) - np.max(values))
    return e / e.sum()


@pytest.mark.parametrize("form", ["json", "csv"])
def test_each_label_may_have_its_own_hypothesis(tiny_nli_model, tmp_path, form):
    own = {"sports, games": "This text is about a match.", "music": "Someone plays a song."}
    if form == "json":
        path = tmp_path / "hypotheses.json"
        path.write_text(json.dumps(own))
    else:
        path = tmp_path / "hypotheses.csv"
        path.write_text(
            'label,hypothesis\n"sports, games",This text is about a match.\n'
            "music,Someone plays a song.\n"
        )
    text = "The match went to extra time."
    args = ["classify", text, "--hypotheses", str(path), "-l", "sports, games", "-l", "music"]
    # -l splits on commas; with --hypotheses the file's labels are the candidates.
    result = runner.invoke(
        app, ["classify", text, "--hypotheses", str(path), "-m", str(tiny_nli_model), "--json"]
    )
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    nli = load_model(str(tiny_nli_model))
    entail = nli.labels.names.index("entailment")
    logits = nli.logits([(text, own[label]) for label in own])[:, entail]
    expected = dict(zip(own, _softmax(logits)))
    assert set(row["labels"]) == set(own)
    for label, score in zip(row["labels"], row["scores"]):
        assert score == pytest.approx(expected[label], abs=TOLERANCE)
    assert runner.invoke(app, [*args, "-m", str(tiny_nli_model)]).exit_code == 0


def test_a_row_may_carry_its_own_labels(tiny_nli_model, tmp_path):
    rows = [
        {"text": "The match went to extra time."},
        {"text": "A band plays.", "candidate_labels": ["music", "food"]},
        {"text": "Rain.", "candidate_labels": []},
        {"text": "Rain.", "candidate_labels": "weather"},
    ]
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["classify", "--input", str(path), "-l", "sports,politics", "-m", str(tiny_nli_model)]
    result = runner.invoke(app, [*args, "--on-error", "skip"])
    assert result.exit_code == 1
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [sorted(r["labels"]) for r in out] == [["politics", "sports"], ["food", "music"]]
    assert out[1]["candidate_labels"] == ["music", "food"]  # the input's field, kept
    assert f"{path}:3: 'candidate_labels': --labels needs at least one label" in result.stderr
    assert f"{path}:4: 'candidate_labels' must be a list of labels" in result.stderr
