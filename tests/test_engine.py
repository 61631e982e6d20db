"""Batching, padding and order; softmax; the engine used from Python without the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from squeezenli import load_model
from squeezenli.runtime.engine import softmax

PAIRS = [
    ("A man plays a guitar on stage.", "A person is making music."),
    ("the dog", "the dog runs in the park and the cat sits on the red car all morning"),
    ("", ""),
    ("Some people were eating food.", "Nobody ate."),
    ("a", "b"),
    ("The team won the match in extra time and the city was happy.", "The team lost."),
    ("old man reads a book", "young woman writes a letter"),
]


def test_results_do_not_depend_on_batching(tiny_model):
    reference = np.concatenate(
        [load_model(str(tiny_model), precision="fp32", batch_size=1).logits([p]) for p in PAIRS]
    )
    for batch_size in (2, 3, 32):
        nli = load_model(str(tiny_model), precision="fp32", batch_size=batch_size)
        nli.engine.window = 5  # several windows, each sorted by length
        np.testing.assert_allclose(nli.logits(PAIRS), reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_batches_run_at_once_give_the_same_bits(tiny_model, precision):
    one = load_model(str(tiny_model), precision=precision, threads=1, batch_size=2)
    many = load_model(str(tiny_model), precision=precision, threads=3, batch_size=2)
    assert (one.engine.threads, many.engine.threads) == (1, 3)
    np.testing.assert_array_equal(many.logits(PAIRS * 3), one.logits(PAIRS * 3))


def test_a_small_window_is_cut_so_every_thread_has_a_batch(tiny_model):
    engine = load_model(str(tiny_model), threads=3).engine
    assert sorted(map(len, engine.batches([5, 5, 5, 5]))) == [1, 1, 2]
    assert list(engine.batches([5])) == [[0]]
    engine.threads = 1
    assert list(engine.batches([5, 5, 5, 5])) == [[0, 1, 2, 3]]


def test_padding_is_to_the_longest_in_the_batch(tiny_model):
    nli = load_model(str(tiny_model), batch_size=2)
    nli.logits(PAIRS)
    sorted_batches = nli.engine.padded_tokens
    assert nli.engine.real_tokens < sorted_batches
    unsorted = load_model(str(tiny_model), batch_size=len(PAIRS))
    unsorted.logits(PAIRS)
    assert unsorted.engine.real_tokens == nli.engine.real_tokens
    assert sorted_batches < unsorted.engine.padded_tokens


def test_predictions_stream_in_input_order(tiny_model):
    nli = load_model(str(tiny_model), label_order="contradiction,entailment,neutral", batch_size=2)
    predictions = list(nli.predict(iter(PAIRS)))
    probs = nli.probabilities(PAIRS)
    assert [p.label for p in predictions] == [nli.labels.names[i] for i in probs.argmax(axis=1)]
    assert list(predictions[0].scores) == ["entailment", "neutral", "contradiction"]


def test_empty_input(tiny_model):
    nli = load_model(str(tiny_model))
    assert nli.logits([]).shape[0] == 0
    assert list(nli.predict([])) == []


def test_softmax_is_stable_for_large_logits():
    logits = np.array([[1000.0, 999.0, -1000.0], [-1e30, 0.0, 1e30]], dtype=np.float32)
    probs = softmax(logits)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert probs[0, 0] == pytest.approx(1 / (1 + np.exp(-1.0)), rel=1e-5)


def test_batches_respect_the_row_cap_and_the_token_budget(tiny_model):
    nli = load_model(str(tiny_model), batch_size=4, batch_tokens=40)
    lengths = [12, 3, 30, 7, 7, 50, 9, 10, 11, 4, 5, 6]
    batches = list(nli.engine.batches(lengths))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths)
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 4
        assert len(batch) == 1 or len(batch) * longest <= 40
    assert [50] in [[lengths[i] for i in b] for b in batches]  # too long alone: its own batch
