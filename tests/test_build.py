"""Built models and their onnxruntime-ready copies: equal outputs, damage detected."""

from __future__ import annotations

import numpy as np
import onnxruntime

from squeezenli.models.build import ensure_onnx, ensure_ready, ready_path
from squeezenli.models.hub import resolve
from squeezenli.runtime.model import load_model

PAIRS = [("A man plays a guitar.", "A person makes music."), ("a", "b c d e")]


def test_the_ready_copy_is_named_for_the_runtime_and_scores_the_same(tiny_model):
    files = resolve(str(tiny_model))
    built = ensure_onnx(files, "fp32")
    ready = ensure_ready(built, files.build_dir)
    assert ready == ready_path(built, files.build_dir)
    assert ready.name.endswith(f".ort{onnxruntime.__version__}.onnx")  # no -u8u8: no integers
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


def _built(folder, precision):
    files = resolve(str(folder))
    return ensure_onnx(files, precision)


def test_a_torn_built_model_is_built_again(tiny_model):
    expected = load_model(str(tiny_model), precision="fp32").logits(PAIRS)
    for precision in ("fp32", "int8"):
        load_model(str(tiny_model), precision=precision)
        files = resolve(str(tiny_model))
        for path in files.build_dir.glob("*.ort*"):
            path.unlink()  # so the damaged built model has to be read
        built = _built(tiny_model, precision)
        whole = built.stat().st_size
        built.write_bytes(built.read_bytes()[: whole // 2])
        again = load_model(str(tiny_model), precision=precision)
        assert again.onnx_path == built and built.stat().st_size == whole
        logits = again.logits(PAIRS)
        if precision == "fp32":
            np.testing.assert_allclose(logits, expected, atol=1e-6, rtol=0)


def test_a_torn_fp32_model_under_an_int8_one_is_rebuilt_too(tiny_model):
    load_model(str(tiny_model), precision="int8")
    files = resolve(str(tiny_model))
    for path in files.build_dir.glob("*"):
        if path.name.endswith(("-int8.onnx",)) or ".ort" in path.name:
            path.unlink()
    fp32 = _built(tiny_model, "fp32")
    fp32.write_bytes(b"not a model")
    nli = load_model(str(tiny_model), precision="int8")  # must quantize from a rebuilt fp32
    assert nli.logits(PAIRS).shape == (len(PAIRS), 3)
    assert fp32.stat().st_size > 1000


def test_builds_of_older_versions_are_removed_and_newer_ones_stay(tiny_model):
    """Newer ones stay: an older squeezenli sharing the cache keeps a newer one's builds, so
    neither rebuilds the other's on every start."""
    files = resolve(str(tiny_model))
    built = ensure_onnx(files, "fp32")
    key = built.name.split("-c")[0]
    stale = [
        files.build_dir / f"{key}-c0-fp32.onnx",
        files.build_dir / f"{built.stem}-0123abcd.ort0.0.1.onnx",
        files.build_dir / f"{built.stem}-0123abcd.ort0.0.1.onnx.data",
    ]
    newer = [
        files.build_dir / f"{key}-c999q999-fp32.onnx",
        files.build_dir / f"{built.stem}.ort999.0.0.onnx",
        files.build_dir / f"{built.stem}.ort999.0.0-u8u8.onnx.data",
    ]
    for path in stale + newer:
        path.write_bytes(b"other")
    for path in files.build_dir.glob(f"*.ort{onnxruntime.__version__}*.onnx*"):
        path.unlink()  # so this start makes a ready copy, and tidies up after it
    load_model(str(tiny_model), precision="fp32")
    assert not [p for p in stale if p.exists()]
    assert built.exists() and ready_path(built, files.build_dir).exists()
    assert all(path.exists() for path in newer)
