"""Built models and their onnxruntime-ready copies: equal outputs, damage detected."""

from __future__ import annotations

import numpy as np
import onnxruntime

from squeezenli.build import ensure_onnx, ensure_ready, ready_path
from squeezenli.hub import resolve
from squeezenli.model import load_model

PAIRS = [("A man plays a guitar.", "A person makes music."), ("a", "b c d e")]


def test_the_ready_copy_is_named_for_the_runtime_and_scores_the_same(tiny_model):
    files = resolve(str(tiny_model))
    built = ensure_onnx(files, "fp32")
    ready = ensure_ready(built, files.build_dir)
    assert ready == ready_path(built, files.build_dir)
    assert ready.name.endswith(f".ort{onnxruntime.__version__}.onnx")
    assert (ready.parent / (ready.name + ".data")).is_file()  # weights mapped, not parsed
    nli = load_model(str(tiny_model), precision="fp32")
    session = onnxruntime.InferenceSession(str(built), providers=["CPUExecutionProvider"])
    nli_built = load_model(str(tiny_model), precision="fp32")
    nli_built.engine.session = session
    np.testing.assert_array_equal(nli.logits(PAIRS), nli_built.logits(PAIRS))


def test_a_ready_copy_without_its_weights_is_replaced(tiny_model):
    expected = load_model(str(tiny_model), precision="fp32").logits(PAIRS)
    files = resolve(str(tiny_model))
    ready = ready_path(ensure_onnx(files, "fp32"), files.build_dir)
    side = ready.parent / (ready.name + ".data")
    side.write_bytes(side.read_bytes()[:100])  # truncated, as after a full disk
    again = load_model(str(tiny_model), precision="fp32")
    np.testing.assert_allclose(again.logits(PAIRS), expected, atol=1e-6, rtol=0)
    assert not ready.exists() or side.stat().st_size > 100
    third = load_model(str(tiny_model), precision="fp32")  # and it is made again
    assert ready.exists() and side.stat().st_size > 100
    np.testing.assert_allclose(third.logits(PAIRS), expected, atol=1e-6, rtol=0)
