"""A CLI that can't be misread (issue 14): misspelled commands, options before the pair, -h,
files passed as texts, repeated labels, threads, --errors, choices in any case, mixed gold
labels, and windows that let the first rows out at once."""

from __future__ import annotations

import json

import pytest
from conftest import squeezenli
from typer.testing import CliRunner

from squeezenli.cli.app import app

runner = CliRunner()
FP32 = ("--precision", "fp32")


def test_a_misspelled_command_is_not_scored_as_a_premise(tiny_nli_model):
    done = squeezenli("bach", "five.jsonl", "-m", str(tiny_nli_model), *FP32)
    assert done.returncode == 2
    assert "no command 'bach' (did you mean 'batch'?)" in done.stderr
    assert done.stdout == ""
    scored = squeezenli("score", "bach", "five.jsonl", "-m", str(tiny_nli_model), *FP32, "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["premise"] == "bach"


def test_options_may_come_before_the_pair_and_a_pair_may_start_with_a_dash(tiny_nli_model):
    first = squeezenli("--json", "A man plays.", "Music.", "-m", str(tiny_nli_model), *FP32)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["hypothesis"] == "Music."
    dashed = squeezenli(
        "--json", "-m", str(tiny_nli_model), *FP32, "--", "-5 degrees outside.", "It is cold."
    )
    assert dashed.returncode == 0, dashed.stderr
    assert json.loads(dashed.stdout)["premise"] == "-5 degrees outside."


def test_dash_h_is_help():
    for args in (["-h"], ["batch", "-h"], ["model", "info", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, args
        assert "Usage:" in result.stdout


def test_classify_refuses_a_file_given_as_a_text(tiny_nli_model, tmp_path):
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": "The match went to extra time."}) + "\n")
    result = runner.invoke(app, ["classify", str(texts), "-l", "a,b", "-m", str(tiny_nli_model)])
    assert result.exit_code == 2
    assert f"pass --input {texts}" in result.stderr


def test_repeated_labels_accumulate(tiny_nli_model):
    result = runner.invoke(
        app,
        ["classify", "The match.", "-l", "sports", "-l", "politics,music", "--json"]
        + ["-m", str(tiny_nli_model), *FP32],
    )
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["labels"]) == ["music", "politics", "sports"]


def test_threads_are_capped_at_the_cpus_available(tiny_nli_model):
    from squeezenli.defaults import cpus_available

    result = runner.invoke(
        app, ["A man.", "Music.", "--threads", "1000", "--json", "-m", str(tiny_nli_model), *FP32]
    )
    assert result.exit_code == 0, result.output
    assert f"more than the {cpus_available()} CPUs available" in result.stderr


def test_errors_means_skip_and_refuses_fail(tiny_nli_model, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    data = json.dumps({"premise": "A.", "hypothesis": "B."}) + "\nnot json\n"
    args = ["batch", "-m", str(tiny_nli_model), *FP32, "--errors", str(rejects)]
    skipped = runner.invoke(app, args, input=data)
    assert skipped.exit_code == 1
    assert len(skipped.stdout.splitlines()) == 1
    assert json.loads(rejects.read_text())["line"] == 2
    refused = runner.invoke(app, [*args, "--on-error", "fail"], input=data)
    assert refused.exit_code == 2
    assert "--errors collects skipped rows" in refused.stderr


def test_choices_are_case_insensitive(tiny_nli_model):
    data = json.dumps({"premise": "A.", "hypothesis": "B."}) + "\n"
    result = runner.invoke(
        app,
        ["batch", "-m", str(tiny_nli_model), "--precision", "FP32", "--output", "CSV"]
        + ["--on-error", "Skip"],
        input=data,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("premise,hypothesis,prediction")


def test_eval_refuses_mixed_two_and_three_class_gold_labels(tiny_nli_model):
    rows = [
        {"premise": "A.", "hypothesis": "B.", "label": "neutral"},
        {"premise": "C.", "hypothesis": "D.", "label": "entailment"},
        {"premise": "E.", "hypothesis": "F.", "label": "not_entailment"},
    ]
    data = "".join(json.dumps(r) + "\n" for r in rows)
    result = runner.invoke(app, ["eval", "-m", str(tiny_nli_model), *FP32], input=data)
    assert result.exit_code == 2
    assert "<stdin>:3: gold label 'not_entailment' is 2-class, but <stdin>:1 had a 3-class" in (
        result.stderr
    )


def test_windows_start_small_and_grow():
    from squeezenli.tasks.windows import growing_windows

    sizes = [len(w) for w in growing_windows([("a premise", "a hypothesis")] * 3000, 1024)]
    assert sizes[:7] == [16, 32, 64, 128, 256, 512, 1024]
    assert sum(sizes) == 3000 and max(sizes) == 1024


@pytest.mark.parametrize("timely", [False, True])
def test_a_window_of_long_pairs_is_cut_by_its_characters(timely):
    from squeezenli.tasks.windows import WINDOW_CHARS, growing_windows, timely_windows

    long = ("x" * (WINDOW_CHARS // 3), "h")
    pairs = [long] * 7 + [("a", "b")] * 40
    cut = timely_windows(pairs, 1024) if timely else growing_windows(pairs, 1024)
    windows = list(cut)
    assert sum(windows, []) == pairs
    assert [len(w) for w in windows[:2]] == [3, 3]  # the third pair takes it past the limit
    assert all(sum(len(p) + len(h) for p, h in w[:-1]) < WINDOW_CHARS for w in windows)


def test_usage_errors_are_one_line_like_every_other_error():
    for args, says in (
        (["batch", "--batch-tokens", "0"], "--batch-tokens"),
        (["batch", "--no-such-flag"], "No such option: --no-such-flag"),
    ):
        done = squeezenli(*args)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("squeezenli: error: "), done.stderr
        assert says in lines[0] and "(squeezenli batch -h)" in lines[0]
