"""Scores equal the reference implementation (transformers) on a tiny random model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import FIXTURES
from tinymodel import tiny_config, weights_digest

from squeezenli.runtime.model import load_model

TOLERANCE = 1e-4


def test_fixture_weights_match_the_golden_run(golden):
    # If numpy's generator ever changed, the golden logits would describe another model.
    assert weights_digest(tiny_config()) == golden["weights_digest"]


@pytest.mark.parametrize("case", [0, 1], ids=["full-length", "truncated-16"])
@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_bin_model"])
def test_logits_match_transformers(request, golden, case, fixture):
    folder = request.getfixturevalue(fixture)
    expected = golden["cases"][case]
    nli = load_model(str(folder), precision="fp32", max_length=expected["max_length"], batch_size=3)
    pairs = [tuple(p) for p in golden["pairs"]]
    assert [e.ids for e in nli.engine.tokenizer.encode(pairs)] == expected["input_ids"]
    logits = nli.logits(pairs)
    np.testing.assert_allclose(logits, np.array(expected["logits"]), atol=TOLERANCE, rtol=0)


def test_tokenizer_json_with_baked_padding_and_truncation(tiny_model, golden, tmp_path):
    # This tokenizer.json pads to 40 and truncates to 12 on its own; both must be ignored.
    folder = tmp_path / "with-tokenizer-json"
    shutil.copytree(tiny_model, folder)
    (folder / "vocab.txt").unlink()
    shutil.copy(FIXTURES / "tiny_tokenizer.json", folder / "tokenizer.json")
    expected = golden["cases"][0]
    nli = load_model(str(folder), precision="fp32")
    assert nli.files.path("tokenizer.json") is not None
    pairs = [tuple(p) for p in golden["pairs"]]
    assert [e.ids for e in nli.engine.tokenizer.encode(pairs)] == expected["input_ids"]
    np.testing.assert_allclose(
        nli.logits(pairs), np.array(expected["logits"]), atol=TOLERANCE, rtol=0
    )


def test_int8_is_close_to_fp32(tiny_model, golden):
    pairs = [tuple(p) for p in golden["pairs"]]
    fp32 = load_model(str(tiny_model), precision="fp32").probabilities(pairs)
    int8 = load_model(str(tiny_model), precision="int8")
    assert "-int8.ort" in int8.onnx_path.name
    assert np.abs(int8.probabilities(pairs) - fp32).max() < 0.05


# Live comparison with the reference, when it is installed (pip install -e '.[reference]').


@pytest.mark.parametrize("layers", [None, 1], ids=["tiny", "one-layer"])  # one: its last
@pytest.mark.parametrize("model_type", ["squeezebert", "bert"])
def test_live_against_transformers(tmp_path, model_type, layers):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from make_golden import reference_logits
    from tinymodel import write_tiny_model

    overrides = {"num_hidden_layers": layers} if layers else None
    folder = write_tiny_model(
        tmp_path / model_type, model_type=model_type, seed=7, config_overrides=overrides
    )
    pairs = [
        ("A man plays a guitar on stage.", "A person is making music."),
        ("the dog runs in the park and the cat sits on the red car all morning", "no"),
        ("Café", "The big blue boat was on the green river in the city park yesterday"),
    ]
    for max_length in (48, 12):
        ids, expected = reference_logits(folder, pairs, max_length)
        nli = load_model(str(folder), precision="fp32", max_length=max_length)
        assert [e.ids for e in nli.engine.tokenizer.encode(pairs)] == ids
        np.testing.assert_allclose(nli.logits(pairs), expected, atol=TOLERANCE, rtol=0)
