"""One batcher under every caller (issue 25): producers on many threads share windows and
get the bits a lone producer gets, for pairs, zero-shot, evaluation and chunked documents;
a producer that gives up leaves its window to the others."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from tinymodel import name_labels, vocabulary, write_tiny_model

from squeezenli.records.readers import Record
from squeezenli.runtime.model import load_model
from squeezenli.tasks.evaluation import judge_records
from squeezenli.tasks.scoring import score_records
from squeezenli.tasks.zeroshot import classify

WORDS = [w for w in vocabulary() if w.isalpha() and len(w) > 2]


@pytest.fixture(scope="module")
def nli(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-128"
    name_labels(write_tiny_model(folder, config_overrides={"max_position_embeddings": 128}))
    return load_model(str(folder), precision="fp32")


def _text(rng, low: int, high: int) -> str:
    return " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=rng.integers(low, high)))


def _jobs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = [
        {"premise": _text(rng, 2, 150), "hypothesis": _text(rng, 1, 9), "label": "entailment"}
        for _ in range(40)
    ]
    return {
        "pairs": [Record("<t>", i, r) for i, r in enumerate(rows, 1)],
        "texts": [_text(rng, 3, 30) for _ in range(15)],
    }


def _run(nli, jobs: dict, kind: str):
    if kind == "pairs":
        return [r.output.scores for r in score_records(nli, jobs["pairs"])]
    if kind == "chunk":
        found = score_records(nli, jobs["pairs"], long_input="chunk")
        return [(r.output.scores, r.output.evidence) for r in found]
    if kind == "zero-shot":
        return [(r.labels, r.scores) for r in classify(nli, jobs["texts"], "sports,music,food")]
    return [r.output.prediction.scores for r in judge_records(nli, jobs["pairs"])]


KINDS = ["pairs", "chunk", "zero-shot", "eval"]


@pytest.mark.parametrize("producers", [1, 4, 16])
def test_concurrent_producers_get_the_bits_a_lone_one_gets(nli, producers):
    jobs = [_jobs(seed) for seed in range(producers)]
    alone = [_run(nli, jobs[i], KINDS[i % 4]) for i in range(producers)]
    together: list = [None] * producers
    start = threading.Barrier(producers)

    def produce(i: int) -> None:
        start.wait()
        together[i] = _run(nli, jobs[i], KINDS[i % 4])

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone  # exact: floats compared bit for bit


def test_a_producer_that_gives_up_leaves_the_others_their_scores(nli):
    from squeezenli.runtime.batcher import Batcher

    batcher = Batcher(nli.engine, wait=0.05)
    pairs = [(_text(np.random.default_rng(i), 5, 40), "music") for i in range(30)]
    kept = batcher.submit(pairs[:15])
    dropped = batcher.submit(pairs[15:])
    batcher.give_up(dropped)
    expected = nli.logits(pairs[:15])
    assert np.array_equal(kept.result().logits, expected)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_pairs_bits_do_not_depend_on_what_shares_its_window(tmp_path_factory, precision):
    """What lets producers share windows: a pair gets the same bits alone, among 300 others,
    and in any order (the batcher's docstring)."""
    folder = tmp_path_factory.mktemp("models") / "tiny-bits"
    name_labels(write_tiny_model(folder, config_overrides={"max_position_embeddings": 128}))
    model = load_model(str(folder), precision=precision)
    rng = np.random.default_rng(3)
    pairs = [(_text(rng, 2, 100), _text(rng, 1, 9)) for _ in range(300)]
    together = model.logits(pairs)
    alone = np.concatenate([model.logits([pair]) for pair in pairs[:40]])
    order = rng.permutation(len(pairs))
    shuffled = np.empty_like(together)
    shuffled[order] = model.logits([pairs[i] for i in order])
    assert np.array_equal(alone, together[:40]) and np.array_equal(shuffled, together)
