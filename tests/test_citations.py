"""check's citations: evidence is the fewest whole sentences of a named passage that carry a
claim's verdict, inside the window behind it; sources may be lists of passages, claims may
be given; --evidence window keeps the window; --fail-under gates CI.

A controlled model (an ONNX export the test writes) says which sentence decides: its
entailment logit counts the token "guitar" in the pair, its contradiction logit the token
"rain", so a planted sentence is the only right citation wherever it stands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from tinymodel import name_labels, vocabulary, write_tiny_model

from squeezenli.records.readers import Record
from squeezenli.runtime.model import load_model
from squeezenli.tasks.claims import check_records
from squeezenli.tasks.passages import MAX_PASSAGES

EXPORT = Path(__file__).parent / "fixtures" / "exports" / "distilbert"
SUPPORTING, CONTRADICTING = "guitar", "rain"
FILLER = [
    "The old man walks in the park.",
    "A small dog sits on the street.",
    "Some people eat food at night.",
    "The team wins the match today.",
    "A child reads a book in the house.",
    "The boat is on the river.",
    "A woman writes a letter in the morning.",
    "The red car was big.",
]
CLAIM = "A person makes music."


def _counting_model(folder: Path) -> Path:
    """The distilbert export's config and tokenizer with a graph of our own: logits
    (entailment, neutral, contradiction) = (3 x "guitar" tokens, 1, 3 x "rain" tokens)."""
    shutil.copytree(EXPORT, folder)
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    nodes, outputs = [], []
    for word, name in ((SUPPORTING, "entail"), (CONTRADICTING, "contra")):
        token = helper.make_tensor(f"{name}_id", TensorProto.INT64, [], [vocab[word]])
        nodes += [
            helper.make_node("Equal", ["input_ids", f"{name}_id"], [f"{name}_eq"]),
            helper.make_node("Cast", [f"{name}_eq"], [f"{name}_f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", [f"{name}_f", "axis"], [f"{name}_n"], keepdims=1),
            helper.make_node("Mul", [f"{name}_n", "three"], [name]),
        ]
        outputs.append((name, token))
    nodes += [
        helper.make_node("Mul", ["entail", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "one"], ["neutral"]),
        helper.make_node("Concat", ["entail", "neutral", "contra"], ["logits"], axis=1),
    ]
    constants = [token for _, token in outputs] + [
        helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("three", TensorProto.FLOAT, [], [3.0]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "counting",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "onnx" / "model.onnx")
    return folder


@pytest.fixture(scope="module")
def counting_folder(tmp_path_factory):
    return _counting_model(tmp_path_factory.mktemp("m") / "counting")


@pytest.fixture(scope="module")
def counting(counting_folder):
    return load_model(str(counting_folder), precision="fp32")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-128"
    overrides = {"max_position_embeddings": 128}
    return name_labels(write_tiny_model(folder, config_overrides=overrides))


def _check(nli, rows: list[dict], **options):
    records = [Record("<test>", n, row) for n, row in enumerate(rows, 1)]
    return list(check_records(nli, records, **options))


@pytest.mark.parametrize("at", [0, 4, 8])
def test_a_planted_sentence_is_the_citation_wherever_it_stands(counting, at):
    planted = "The man plays a guitar on the stage."
    passage = " ".join(FILLER[:at] + [planted] + FILLER[at:])
    (result,) = _check(counting, [{"source": passage, "text": CLAIM}])
    (claim,) = result.output.claims
    assert claim.verdict.value == "supported"
    assert claim.evidence.text == planted
    assert passage[claim.evidence.start : claim.evidence.end] == planted
    assert claim.window.start <= claim.evidence.start < claim.evidence.end <= claim.window.end
    assert result.output.windows > 1  # the planted sentence had to be found among windows


def test_a_contradicted_claim_cites_the_contradicting_sentence(counting):
    """Even when another window entails it less weakly: the verdict's window is the most
    contradicting one, and its contradicting sentence is cited."""
    contradicting = "The rain falls on the rain and the rain."
    passage = " ".join([*FILLER, contradicting, *FILLER])
    (result,) = _check(counting, [{"source": passage, "text": CLAIM}])
    (claim,) = result.output.claims
    assert claim.verdict.value == "contradicted"
    assert claim.evidence.text == contradicting
    assert claim.evidence.scores["contradiction"] > 0.9


def test_two_sentences_are_cited_when_one_does_not_carry_the_verdict(counting):
    """Each sentence alone falls short of --support 0.9 (one "guitar"); the two together
    carry it, and nothing more is cited; with a bar no run reaches, the window is."""
    first, second = "A guitar is old.", "The guitar sits."
    passage = " ".join([*FILLER[:3], first, second, *FILLER[3:]])
    alone = _check(counting, [{"source": first, "text": CLAIM}], support=0.9)[0].output
    assert alone.claims[0].scores["entailment"] < 0.9  # the test's premise
    (result,) = _check(counting, [{"source": passage, "text": CLAIM}], support=0.9)
    (claim,) = result.output.claims
    assert claim.verdict.value == "supported"
    assert claim.evidence.text == f"{first} {second}"
    assert claim.evidence.scores["entailment"] >= 0.9
    three = " ".join([*FILLER[:3], first, FILLER[3], second, FILLER[4], first, *FILLER[5:]])
    (result,) = _check(counting, [{"source": three, "text": CLAIM}], support=0.999)
    (claim,) = result.output.claims
    assert claim.verdict.value == "supported"  # three in the window: 0.9995
    assert (claim.evidence.start, claim.evidence.end) == (claim.window.start, claim.window.end)


def test_window_evidence_is_the_deciding_window_as_before(counting):
    passage = " ".join([*FILLER, "The man plays a guitar.", *FILLER])
    (result,) = _check(counting, [{"source": passage, "text": CLAIM}], evidence="window")
    (claim,) = result.output.claims
    fields = claim.fields()
    assert set(fields) == {"text", "start", "end", "verdict", "scores", "evidence"}
    assert set(fields["evidence"]) == {"start", "end", "text"}
    assert "guitar" in fields["evidence"]["text"] and len(fields["evidence"]["text"]) > 40
    sentence = _check(counting, [{"source": passage, "text": CLAIM}])[0].output.claims[0]
    assert sentence.scores == claim.scores and sentence.verdict == claim.verdict


def test_windows_never_cross_passages(counting):
    passages = [" ".join(FILLER), " ".join(reversed(FILLER)), "The man plays a guitar."]
    (listed,) = _check(counting, [{"source": passages, "text": CLAIM}])
    alone = [_check(counting, [{"source": p, "text": CLAIM}])[0].output for p in passages]
    assert listed.output.windows == sum(check.windows for check in alone)
    (claim,) = listed.output.claims
    assert claim.evidence.source == claim.window.source == 2
    assert claim.fields()["evidence"]["text"] == "The man plays a guitar."
    assert claim.scores == alone[2].claims[0].scores


def test_passages_as_strings_and_as_objects_give_the_same_answers(tiny):
    nli = load_model(str(tiny), precision="fp32")
    texts = [" ".join(FILLER[:4]), " ".join(FILLER[4:]), "A man plays a guitar on stage."]
    objects = [{"id": f"p{i}", "text": t, "url": f"https://x/{i}"} for i, t in enumerate(texts)]
    text = "A man plays a guitar. The dog runs in the park."
    (strings,) = _check(nli, [{"source": texts, "text": text}])
    (keyed,) = _check(nli, [{"source": objects, "text": text}])
    for a, b in zip(strings.output.claims, keyed.output.claims, strict=True):
        assert (a.scores, a.verdict, a.evidence.scores) == (b.scores, b.verdict, b.evidence.scores)
        assert (a.evidence.start, a.evidence.end) == (b.evidence.start, b.evidence.end)
        assert b.evidence.source == f"p{a.evidence.source}"


def test_given_claims_map_back_in_order(tiny):
    nli = load_model(str(tiny), precision="fp32")
    source = " ".join(FILLER)
    text = "A man plays a guitar. The dog runs in the park."
    (split,) = _check(nli, [{"source": source, "text": text}])
    claims = ["A man plays a guitar.", {"id": "c2", "text": "The dog runs in the park."}]
    (given,) = _check(nli, [{"source": source, "claims": claims}], claims_field="claims")
    got = [c.fields() for c in given.output.claims]
    assert [c["text"] for c in got] == ["A man plays a guitar.", "The dog runs in the park."]
    assert "id" not in got[0] and got[1]["id"] == "c2"
    assert all(c["start"] is None and c["end"] is None for c in got)
    for a, b in zip(split.output.claims, given.output.claims, strict=True):
        assert (a.scores, a.evidence) == (b.scores, b.evidence)
    assert given.output.score == split.output.score


WORDS = [w for w in vocabulary() if w.isalpha() and len(w) > 2][:40]
sentence = st.lists(
    st.sampled_from([*WORDS, "é", "日本", "Ωmega", "naïve"]), min_size=1, max_size=9
)


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.lists(sentence, min_size=1, max_size=12), min_size=1, max_size=4),
    st.sampled_from(["  ", " ", "\n", " \u3000 "]),
)
def test_evidence_spans_index_their_passage_exactly(tiny_loaded, passages, gap):
    texts = [gap.join(" ".join(words).capitalize() + "." for words in p) for p in passages]
    row = {"source": [{"id": f"p{i}", "text": t} for i, t in enumerate(texts)], "text": CLAIM}
    (result,) = _check(tiny_loaded, [row])
    by_id = {f"p{i}": t for i, t in enumerate(texts)}
    for claim in result.output.claims:
        fields = claim.fields()
        evidence, window = fields["evidence"], fields["window"]
        passage = by_id[evidence["source"]]
        assert window["source"] == evidence["source"]
        assert passage[evidence["start"] : evidence["end"]] == evidence["text"]
        assert evidence["text"] and evidence["text"] == evidence["text"].strip()
        assert window["start"] <= evidence["start"] < evidence["end"] <= window["end"]
        assert window["end"] <= len(passage)


@pytest.fixture(scope="module")
def tiny_loaded(tiny):
    return load_model(str(tiny), precision="fp32")


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"source": [{"id": "a", "text": "x y."}, {"id": "a", "text": "z."}]}, "source", "two"),
        ({"source": ["A man.", "  "]}, "source", "'source'[1] is empty"),
        ({"source": []}, "source", "empty list"),
        ({"source": [{"text": "A man.", "id": [1]}]}, "source", "'id' must be"),
        ({"source": [7]}, "source", "must be text or an object"),
        ({"source": {"text": "A man."}}, "source", "text or a list of passages"),
        ({"source": ["A man."] * (MAX_PASSAGES + 1)}, "source", f"more than {MAX_PASSAGES}"),
        ({"source": "A man.", "claims": "A man."}, "claims", "must be a list of claims"),
        ({"source": "A man.", "claims": ["A man.", ""]}, "claims", "'claims'[1] is empty"),
        ({"source": "A man.", "claims": []}, "claims", "empty list"),
    ],
)
def test_bad_passages_and_claims_are_the_rows_errors(tiny_loaded, row, field, message):
    options = {"claims_field": "claims"} if "claims" in row else {}
    row = {"text": "A man plays.", **row}
    good = {"source": "A man plays.", "text": "A man plays.", "claims": ["A man plays."]}
    results = _check(tiny_loaded, [good, row, good], **options | {"on_error": "skip"})
    assert [r.error is None for r in results] == [True, False, True]
    assert results[1].error.field == field and message in results[1].error.message


def test_check_reads_passage_lists_from_csv_cells(tiny, tmp_path):
    passages = ["The man plays a guitar.", "A dog runs."]
    jsonl, csv = tmp_path / "in.jsonl", tmp_path / "in.csv"
    jsonl.write_text(json.dumps({"source": passages, "text": CLAIM}) + "\n")
    cell = json.dumps(passages).replace('"', '""')
    csv.write_text(f'source,text\n"{cell}",{CLAIM}\n"[not json",{CLAIM}\n')
    args = ["check", "-m", str(tiny), "--precision", "fp32"]
    (from_jsonl,) = _rows(run_cli([*args, str(jsonl)]))
    from_csv = _rows(run_cli([*args, str(csv)]))
    assert from_csv[0]["claims"] == from_jsonl["claims"]
    assert from_csv[0]["claims"][0]["window"]["source"] in (0, 1)
    assert from_csv[1]["source"] == "[not json"  # not an array: one passage
    assert from_csv[1]["claims"][0]["evidence"]["text"] == "[not json"


def _rows(done) -> list[dict]:
    assert done.returncode in (0, 4), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_fail_under_exits_4_after_writing_every_row(counting_folder, tmp_path):
    folder = counting_folder
    rows = [
        {"source": "The man plays a guitar.", "text": CLAIM},
        {"source": "The old man walks in the park.", "text": CLAIM},
        {"source": "The man plays a guitar.", "text": CLAIM},
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["check", str(path), "-m", str(folder), "--precision", "fp32"]
    gated = run_cli([*args, "--fail-under", "0.5"])
    assert gated.returncode == 4
    assert len(gated.stdout.splitlines()) == 3
    assert "1 of 3 rows under --fail-under 0.5" in gated.stderr
    assert run_cli([*args, "--fail-under", "0.1"]).returncode == 0
    assert run_cli([*args, "--fail-under", "2"]).returncode == 2
    path.write_text(path.read_text() + '{"source": "x"}\n')
    failed = run_cli([*args, "--fail-under", "0.5", "--on-error", "skip"])
    assert failed.returncode == 1 and len(failed.stdout.splitlines()) == 3


def test_evidence_costs_few_pairs_beyond_the_windows(counting):
    passage = " ".join([*FILLER, "The man plays a guitar.", *FILLER])
    (sentence,) = _check(counting, [{"source": passage, "text": CLAIM}])
    (window,) = _check(counting, [{"source": passage, "text": CLAIM}], evidence="window")
    assert window.output.pairs == window.output.windows
    sentences = sentence.output.pairs - window.output.pairs
    assert 1 < sentences <= len(FILLER) + 1  # the sentences of one window, no runs
    assert np.isclose(sentence.output.score, window.output.score)


def test_a_threshold_fitted_by_eval_is_used_by_check_and_batch(tiny, tmp_path):
    rows = [
        {"premise": f"A man plays a guitar {i}.", "hypothesis": h, "label": label}
        for i, (h, label) in enumerate(
            [("A man plays.", "entailment"), ("Nobody plays.", "not_entailment")] * 6
        )
    ]
    gold, fitted = tmp_path / "gold.jsonl", tmp_path / "t.json"
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = ["-m", str(tiny), "--precision", "fp32"]
    done = run_cli(["eval", str(gold), *model, "--json", "--save-threshold", str(fitted)])
    assert done.returncode == 0, done.stderr
    report, saved = json.loads(done.stdout), json.loads(fitted.read_text())
    assert saved["threshold"] == report["best_threshold"]["threshold"]
    assert (saved["model"], saved["precision"], saved["rows"]) == (str(tiny), "fp32", 12)
    assert saved["fitted_on"] == [str(gold)]
    t = str(saved["threshold"])

    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"source": " ".join(FILLER), "text": "A man walks."}) + "\n")
    by_file = run_cli(["check", str(answers), *model, "--threshold-from", str(fitted)])
    by_hand = run_cli(["check", str(answers), *model, "--support", t])
    assert by_file.returncode == 0 and by_file.stdout == by_hand.stdout
    by_file = run_cli(["batch", str(gold), *model, "--threshold-from", str(fitted)])
    by_hand = run_cli(["batch", str(gold), *model, "--threshold", t])
    assert (
        by_file.returncode == 0
        and by_file.stdout == by_hand.stdout
        and "entailed" in by_file.stdout
    )

    other = run_cli(["check", str(answers), "-m", str(tiny), "--precision", "int8",
                     "--threshold-from", str(fitted)])  # fmt: skip
    assert other.returncode == 2 and "was fitted on" in other.stderr and "(fp32)" in other.stderr
    both = run_cli(
        ["check", str(answers), *model, "--threshold-from", str(fitted), "--support", "0.7"]
    )
    assert both.returncode == 2 and "not both" in both.stderr
    (tmp_path / "bad.json").write_text('{"threshold": 0.5}')
    bad = run_cli(["check", str(answers), *model, "--threshold-from", str(tmp_path / "bad.json")])
    assert bad.returncode == 2 and "is not a threshold file" in bad.stderr
    assert "Traceback" not in other.stderr + both.stderr + bad.stderr


def test_eval_saves_no_threshold_it_could_not_fit(tiny, tmp_path):
    rows = [{"premise": "A man.", "hypothesis": "A man.", "label": c} for c in
            ("entailment", "neutral", "contradiction")]  # fmt: skip
    gold, fitted = tmp_path / "gold.jsonl", tmp_path / "t.json"
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["eval", str(gold), "-m", str(tiny), "--save-threshold", str(fitted)]
    done = run_cli(args)
    assert done.returncode == 2 and "two-class gold labels" in done.stderr
    assert "--save-threshold" in done.stderr and not fitted.exists()
    zero_shot = run_cli([*args, "-l", "a,b"])
    assert zero_shot.returncode == 2 and "not zero-shot" in zero_shot.stderr
