"""Documents longer than the model reads (issue 25): every result says whether its pair was
cut; --long-input chunk reads a premise in windows of whole sentences that cover every
token, the deciding window answering; `check` judges each sentence of a text against its
source. The stand-ins' weights are random: these check coverage and parity, not accuracy."""

from __future__ import annotations

import json
import subprocess

import manual
import numpy as np
import pytest
from conftest import one_error
from conftest import run_cli as _run
from hypothesis import given, settings
from hypothesis import strategies as st
from tinymodel import name_labels, vocabulary, write_tiny_model

from squeezenli.runtime.model import load_model
from squeezenli.runtime.tokenizer import TextTokens
from squeezenli.tasks.documents import sentence_spans, token_windows

WORDS = [w for w in vocabulary() if w.isalpha() and len(w) > 2][:60]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny NLI model with room for 128 positions: a document of a few dozen sentences
    takes several windows."""
    folder = tmp_path_factory.mktemp("models") / "tiny-128"
    return name_labels(write_tiny_model(folder, config_overrides={"max_position_embeddings": 128}))


def _document(seed: int, sentences: int) -> tuple[str, list[str]]:
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(sentences):
        words = [WORDS[i] for i in rng.integers(len(WORDS), size=rng.integers(3, 14))]
        made.append(" ".join(words).capitalize() + ".")
    return " ".join(made), made


def _rows(done: subprocess.CompletedProcess) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_every_result_says_whether_its_pair_was_cut(model, tmp_path):
    nli = load_model(str(model), precision="fp32")
    tokenizer = nli.engine.tokenizer
    pairs = [(_document(i, n)[0], "A man plays.") for i, n in enumerate([1, 3, 8, 20, 40])]
    expected = [
        len(tokenizer.tokens(p).ids) + len(tokenizer.tokens(h).ids) + tokenizer.special_count
        > nli.max_length
        for p, h in pairs
    ]
    assert True in expected and False in expected  # both kinds, counted by the test
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps({"premise": p, "hypothesis": h}) + "\n" for p, h in pairs))
    done = _run(["batch", str(source), "-m", str(model), "--precision", "fp32"])
    assert [row["truncated"] for row in _rows(done)] == expected
    assert f"({sum(expected)} truncated" in done.stderr
    assert [p.truncated for p in nli.predict(pairs)] == expected
    csv = _run(["batch", str(source), "-m", str(model), "--precision", "fp32", "-o", "csv"])
    header, *lines = csv.stdout.splitlines()
    at = header.split(",").index("truncated")
    assert [line.split(",")[at] == "true" for line in lines] == expected
    failed = _run(
        [
            "batch",
            str(source),
            "-m",
            str(model),
            "--long-input",
            "fail",
            "--errors",
            str(tmp_path / "cut.jsonl"),
        ]
    )
    assert failed.returncode == 1
    cut = [json.loads(line) for line in (tmp_path / "cut.jsonl").read_text().splitlines()]
    assert [r["line"] for r in cut] == [i + 1 for i, e in enumerate(expected) if e]
    assert "--long-input chunk" in cut[0]["error"]


def _windows_by_hand(nli, sentences: list[str], hypothesis: str) -> list[tuple[int, int]]:
    """Character spans of windows of whole sentences, packed as docs/check.md says: as many
    sentences as fit beside the hypothesis."""
    tokenizer = nli.engine.tokenizer
    budget = nli.max_length - tokenizer.special_count - len(tokenizer.tokens(hypothesis).ids)
    spans, start, at, used = [], 0, 0, 0
    for sentence in sentences:
        size = len(tokenizer.tokens(sentence).ids)
        assert size <= budget
        if used + size > budget:
            spans.append((start, at - 1))
            start, used = at, 0
        used += size
        at += len(sentence) + 1
    spans.append((start, at - 1))
    return spans


def test_chunked_scores_are_the_deciding_windows_scored_as_pairs(model, tmp_path):
    nli = load_model(str(model), precision="fp32")
    hypothesis = "A man plays a guitar."
    document, sentences = _document(7, 30)
    spans = _windows_by_hand(nli, sentences, hypothesis)
    assert len(spans) >= 3
    alone = nli.probabilities([(document[a:b], hypothesis) for a, b in spans])
    entail = nli.labels.names.index("entailment")
    best = int(np.argmax(alone[:, entail]))
    source = tmp_path / "doc.jsonl"
    source.write_text(json.dumps({"premise": document, "hypothesis": hypothesis}) + "\n")
    (row,) = _rows(_run(["batch", str(source), "-m", str(model), "--long-input", "chunk"]))
    assert row["windows"] == len(spans) and row["truncated"] is False
    assert (row["evidence"]["start"], row["evidence"]["end"]) == spans[best]
    got = [row["scores"][name] for name in nli.labels.names]
    np.testing.assert_allclose(got, alone[best], atol=1e-4, rtol=0)
    contradiction = nli.labels.names.index("contradiction")
    margin = int(np.argmax(alone[:, entail] - alone[:, contradiction]))
    args = ["batch", str(source), "-m", str(model), "--long-input", "chunk"]
    (by_margin,) = _rows(_run([*args, "--aggregate", "margin"]))
    assert (by_margin["evidence"]["start"], by_margin["evidence"]["end"]) == spans[margin]


def test_a_hypothesis_that_leaves_no_room_is_the_rows_error(model, tmp_path):
    source = tmp_path / "long.jsonl"
    hypothesis = " ".join(WORDS * 3)
    source.write_text(json.dumps({"premise": "A man plays.", "hypothesis": hypothesis}) + "\n")
    line = one_error(_run(["batch", str(source), "-m", str(model), "--long-input", "chunk"]), 2)
    assert f"{source}:1: 'hypothesis': the hypothesis takes" in line and "shorten it" in line


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    budget=st.integers(1, 25),
)
def test_windows_cover_every_token_and_fit_the_budget(lengths, budget):
    """Sentences of random token counts (some longer than the budget): every token is in
    a window, and no window is longer than the budget."""
    offsets, spans, at = [], [], 0
    for size in lengths:
        spans.append((at, at + 2 * size))
        offsets += [(at + 2 * i, at + 2 * i + 1) for i in range(size)]
        at += 2 * size
    tokens = TextTokens(np.arange(len(offsets)), np.array(offsets).reshape(-1, 2))
    windows = token_windows(tokens, spans, budget)
    covered = np.zeros(len(offsets), bool)
    for a, b in windows:
        assert 0 < b - a <= budget
        covered[a:b] = True
    assert covered.all()


def test_sentence_spans_cover_the_text_and_split_at_sentences():
    text = "Mr. Smith went to Washington. He arrived at 5 p.m. on Monday!\nA new line? Yes."
    spans = sentence_spans(text)
    assert "".join(text[a:b] for a, b in spans) == text
    said = [text[a:b].strip() for a, b in spans]
    assert said == [
        "Mr. Smith went to Washington.",
        "He arrived at 5 p.m. on Monday!",
        "A new line?",
        "Yes.",
    ]


def test_check_judges_each_sentence_against_its_source(model, tmp_path):
    nli = load_model(str(model), precision="fp32")
    document, _ = _document(3, 30)
    text = "A man plays a guitar. The dog runs in the park. Some people eat food."
    source = tmp_path / "check.jsonl"
    source.write_text(json.dumps({"id": 1, "source": document, "text": text}) + "\n")
    args = ["check", str(source), "-m", str(model), "--support", "0.4", "--contradict", "0.3"]
    (row,) = _rows(_run(args))
    assert row["id"] == 1 and len(row["claims"]) == 3
    assert [c["text"] for c in row["claims"]] == [
        "A man plays a guitar.",
        "The dog runs in the park.",
        "Some people eat food.",
    ]

    def alone(premise: str, claim: str, scores: dict) -> None:
        expected = nli.probabilities([(premise, claim)])[0]
        got = [scores[name] for name in nli.labels.names]
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)

    for claim in row["claims"]:
        assert text[claim["start"] : claim["end"]] == claim["text"]
        evidence, window = claim["evidence"], claim["window"]
        assert evidence["source"] == window["source"] == 0
        assert document[evidence["start"] : evidence["end"]] == evidence["text"]
        assert window["start"] <= evidence["start"] < evidence["end"] <= window["end"]
        alone(evidence["text"], claim["text"], evidence["scores"])
        alone(document[window["start"] : window["end"]], claim["text"], window["scores"])
        if claim["verdict"] != "contradicted":  # else the window most contradicting it
            assert claim["scores"] == window["scores"]
        if claim["scores"]["entailment"] >= 0.4:
            assert claim["verdict"] == "supported"
        else:
            assert claim["verdict"] in ("contradicted", "not_supported")
    entailment = [c["scores"]["entailment"] for c in row["claims"]]
    assert row["score"] == pytest.approx(np.mean(entailment), abs=1e-6)
    supported = [c["text"] for c in row["claims"] if c["verdict"] == "supported"]
    assert row["supported_text"] == " ".join(supported)
    (low,) = _rows(_run([*args, "--score", "min"]))
    assert low["score"] == pytest.approx(min(entailment), abs=1e-6)


def test_the_manuals_python_example_for_documents_runs(model, capsys):
    blocks = manual.text().split("```python\n")[1:]
    (block,) = [code for b in blocks if "check_records" in (code := b.split("```")[0])]
    exec(block.replace("load_model()", f"load_model({str(model)!r})"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and "Evidence(start=0" in printed[0]
    assert "Verdict." in printed[1]  # random weights: any verdict


def test_the_manuals_shell_examples_for_documents_run(model, tmp_path):
    document, _ = _document(5, 30)
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"document": document, "claim": "A man plays."}) + "\n")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        json.dumps({"document": document, "answer": "A man plays. Dogs run."}) + "\n"
    )
    text = manual.text()
    for line in [ln for ln in text.splitlines() if ln.startswith("squeezenli ")]:
        if "docs.jsonl --premise-field" not in line and "answers.jsonl --source-field" not in line:
            continue
        if " -o " in line:  # a page or a table for people (tests/test_reports.py)
            continue
        args = line.split(">")[0].split()[1:]
        args = [str(tmp_path / a) if a.endswith(".jsonl") else a for a in args]
        (row,) = _rows(_run([*args, "-m", str(model)]))
        assert row["windows"] > 1


def test_eval_on_consistency_labels_reports_balanced_accuracy_and_roc_auc(model, tmp_path):
    rows = []
    for i in range(16):
        document, sentences = _document(20 + i, 12)
        claim = sentences[i % len(sentences)] if i % 2 else "Nobody eats food today."
        rows.append(
            {"document": document, "claim": claim, "label": ["inconsistent", "consistent"][i % 2]}
        )
    source = tmp_path / "factual.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--premise-field", "document", "--hypothesis-field", "claim", "--long-input", "chunk"]
    scored = _rows(_run(["batch", str(source), "-m", str(model), *common]))
    done = _run(["eval", str(source), "-m", str(model), *common, "--json"])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    entail = [r["scores"]["entailment"] for r in scored]
    positive = [r["label"] == "consistent" for r in rows]
    pairs = [
        (p, n)
        for p, yes in zip(entail, positive)
        if yes
        for n, no in zip(entail, positive)
        if not no
    ]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert report["roc_auc"] == pytest.approx(expected, abs=1e-9)
    threshold = report["best_threshold"]["threshold"]
    said = [e >= threshold for e in entail]
    tpr = sum(s and y for s, y in zip(said, positive)) / sum(positive)
    tnr = sum(not s and not y for s, y in zip(said, positive)) / (len(rows) - sum(positive))
    assert report["best_threshold"]["balanced_accuracy"] == pytest.approx((tpr + tnr) / 2)
    recalls = [v["recall"] for v in report["per_class"].values()]
    assert report["balanced_accuracy"] == pytest.approx(sum(recalls) / len(recalls))


@pytest.mark.parametrize("long_input", ["truncate", "chunk"])
def test_a_consumer_that_stops_early_leaves_no_thread(model, long_input):
    import itertools
    import threading
    import time

    from squeezenli.records.readers import Record
    from squeezenli.tasks.scoring import score_records

    nli = load_model(str(model), precision="fp32")
    document, _ = _document(9, 20)
    endless = (
        Record("<gen>", n, {"premise": document, "hypothesis": "A man plays."})
        for n in itertools.count(1)
    )
    results = score_records(nli, endless, timely=True, long_input=long_input)
    assert next(results).output is not None
    results.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.name == "squeezenli-reader" for t in threading.enumerate()
    ):
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "squeezenli-reader"]


def test_zero_shot_says_when_a_text_was_cut(model):
    from squeezenli.tasks.zeroshot import classify

    nli = load_model(str(model), precision="fp32")
    long, _ = _document(11, 30)
    short, long_result = classify(nli, ["A man plays.", long], "sports,music")
    assert short.truncated is False and long_result.truncated is True


def test_check_refuses_a_threshold_that_is_no_probability_before_loading(tmp_path):
    source = tmp_path / "c.jsonl"
    source.write_text(json.dumps({"source": "A man plays.", "text": "A man plays."}) + "\n")
    missing = tmp_path / "no-model"  # refused before any model is looked for
    line = one_error(_run(["check", str(source), "-m", str(missing), "--support", "2"]), 2)
    assert "--support must be a probability from 0 to 1" in line


@pytest.mark.parametrize("output", ["jsonl", "csv"])
def test_batch_thresholds_the_entailment_probability_and_gives_logits(model, tmp_path, output):
    nli = load_model(str(model), precision="fp32")
    pairs = [(_document(i, 2)[0], "A man plays.") for i in range(12)]
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps({"premise": p, "hypothesis": h}) + "\n" for p, h in pairs))
    logits = nli.logits(pairs)
    probs = nli.probabilities(pairs)
    entail = nli.labels.names.index("entailment")
    cut = float(np.median(probs[:, entail]))
    args = ["batch", str(source), "-m", str(model), "--threshold", str(cut), "--logits"]
    done = _run([*args, "-o", output])
    assert done.returncode == 0, done.stderr
    if output == "jsonl":
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        entailed = [row["entailed"] for row in rows]
        got = np.array([[row["logits"][n] for n in nli.labels.names] for row in rows])
    else:
        header, *lines = [line.split(",") for line in done.stdout.splitlines()]
        entailed = [cells[header.index("entailed")] == "true" for cells in lines]
        columns = [header.index(f"logit_{n}") for n in nli.labels.names]
        got = np.array([[float(cells[i]) for i in columns] for cells in lines])
    assert entailed == [bool(p >= cut) for p in probs[:, entail]]
    assert True in entailed and False in entailed
    np.testing.assert_allclose(got, logits, atol=1e-6, rtol=0)
    refused = one_error(_run(["batch", str(source), "-m", str(model), "--threshold", "1.5"]), 2)
    assert "--threshold must be a probability from 0 to 1" in refused
