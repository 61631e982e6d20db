"""Built models and their onnxruntime-ready copies: equal outputs, damage detected, and only
what later runs read kept."""

from __future__ import annotations

import shutil

import numpy as np
import onnxruntime
import pytest

from squeezenli.errors import InputError
from squeezenli.models.build import built_path, ensure_onnx, ensure_runnable, ready_path
from squeezenli.models.hub import resolve
from squeezenli.runtime.model import load_model, prepare_model

PAIRS = [("A man plays a guitar.", "A person makes music."), ("a", "b c d e")]


def test_the_ready_copy_is_named_for_the_runtime_and_scores_the_same(tiny_model, tmp_path):
    tiny_model = shutil.copytree(tiny_model, tmp_path / "copy")  # a cache of its own
    files = resolve(str(tiny_model))
    ready = ensure_runnable(files, "fp32")
    built = built_path(files, "fp32")
    assert ready == ready_path(built, files.build_dir)
    assert ready.name.endswith(f".ort{onnxruntime.__version__}.onnx")  # no -u8u8: no integers
    assert (ready.parent / (ready.name + ".data")).is_file()  # weights mapped, not parsed
    assert not built.exists()  # the ready copy replaces it
    nli = load_model(str(tiny_model), precision="fp32")
    assert nli.onnx_path == ready
    rebuilt = ensure_onnx(files, "fp32")  # made again from the weights, on demand
    session = onnxruntime.InferenceSession(str(rebuilt), providers=["CPUExecutionProvider"])
    nli_built = load_model(str(tiny_model), precision="fp32")
    nli_built.engine.session = session
    np.testing.assert_array_equal(nli.logits(PAIRS), nli_built.logits(PAIRS))


def _models(folder) -> list[str]:
    return sorted(p.name for p in resolve(str(folder)).build_dir.glob("*.onnx"))


def _measured(files) -> list[str]:
    return sorted(p.name.split(".", 1)[1] for p in files.build_dir.glob("*.json"))


def test_a_first_run_builds_only_what_it_runs(tiny_model, tmp_path):
    """auto's first run answers in fp32 and builds nothing else: no int8, no measurement (the
    ready copy, the label order and the content hashes are what later runs read)."""
    tiny_model = shutil.copytree(tiny_model, tmp_path / "copy")  # a cache of its own
    first = load_model(str(tiny_model))
    files = resolve(str(tiny_model))
    assert first.precision == "fp32" and first.agreement is None and first.speed is None
    assert _models(tiny_model) == [first.onnx_path.name]
    assert first.onnx_path.name.startswith(built_path(files, "fp32").stem + ".ort")
    assert not any(m.startswith(("agreement", "speed")) for m in _measured(files))
    ready = first.onnx_path.name  # and its weights and hash; the build's side file is gone
    left = sorted(p.name for p in files.build_dir.iterdir() if ".onnx" in p.name)
    assert left == [ready, ready + ".data", ready + ".xxh3"]
    exact = load_model(str(tiny_model), precision="fp32")
    np.testing.assert_array_equal(first.logits(PAIRS), exact.logits(PAIRS))


def test_a_run_keeps_only_the_model_later_runs_open(tiny_model, tmp_path):
    """model download (prepare_model(measure=True)) builds both precisions and measures
    them; what stays is the ready copy of the one auto chooses, with the measurements. A
    later run of another precision builds it again from the weights, to the same bits."""
    tiny_model = shutil.copytree(tiny_model, tmp_path / "copy")  # a cache of its own
    prepared = prepare_model(str(tiny_model), measure=True)
    first = load_model(str(tiny_model))
    files = resolve(str(tiny_model))
    assert first.precision == prepared.choice.precision and first.agreement is not None
    assert _models(tiny_model) == [first.onnx_path.name]
    assert first.onnx_path.name.startswith(built_path(files, first.precision).stem + ".ort")
    measured = _measured(files)
    assert "agreement.json" in measured and any(m.startswith("speed-") for m in measured)
    before = {p.name: p.stat().st_mtime_ns for p in files.build_dir.iterdir()}
    again = load_model(str(tiny_model))
    assert {p.name: p.stat().st_mtime_ns for p in files.build_dir.iterdir()} == before
    np.testing.assert_array_equal(again.logits(PAIRS), first.logits(PAIRS))
    other = "fp32" if first.precision == "int8" else "int8"
    expected = load_model(str(tiny_model), precision=other).logits(PAIRS)
    assert len(_models(tiny_model)) == 2 and not any(
        built_path(files, p).exists() for p in ("fp32", "int8")
    )
    for path in files.build_dir.glob(f"*-{other}.ort*"):
        path.unlink()
    np.testing.assert_array_equal(
        load_model(str(tiny_model), precision=other).logits(PAIRS), expected
    )


def test_a_ready_copy_without_its_weights_is_replaced(tiny_model):
    expected = load_model(str(tiny_model), precision="fp32").logits(PAIRS)
    files = resolve(str(tiny_model))
    ready = ready_path(built_path(files, "fp32"), files.build_dir)
    side = ready.parent / (ready.name + ".data")
    side.write_bytes(side.read_bytes()[:100])  # truncated, as after a full disk
    again = load_model(str(tiny_model), precision="fp32")  # the plain model, from the weights
    np.testing.assert_allclose(again.logits(PAIRS), expected, atol=1e-6, rtol=0)
    assert not ready.exists() and again.onnx_path == built_path(files, "fp32")
    third = load_model(str(tiny_model), precision="fp32")  # and the copy is made again
    assert third.onnx_path == ready and side.stat().st_size > 100
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
        assert again.onnx_path == ready_path(built, files.build_dir)
        assert not built.exists()  # built whole again, copied, then removed
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
    assert nli.onnx_path.exists() and not fp32.exists()


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
    assert ready_path(built, files.build_dir).exists()
    assert all(path.exists() for path in newer)


def test_an_unknown_precision_is_refused_before_anything_is_built(tiny_model, tmp_path):
    files = resolve(str(shutil.copytree(tiny_model, tmp_path / "copy")))
    for make in (ensure_onnx, ensure_runnable):
        with pytest.raises(InputError, match="unknown precision 'int4'"):
            make(files, "int4")
    assert not list(files.build_dir.glob("*.onnx"))


def test_a_build_interrupted_after_its_weights_leaves_nothing_behind(
    tiny_model, tmp_path, monkeypatch
):
    """The fp32 build writes its weights to a side file as it converts them: interrupted
    before its model is in place, the side file goes too, and the next run builds afresh."""
    from squeezenli.models import convert

    tiny_model = shutil.copytree(tiny_model, tmp_path / "copy")  # a cache of its own
    real = convert.build_model

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "build_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_model(str(tiny_model), precision="fp32")
    files = resolve(str(tiny_model))
    assert not [p.name for p in files.build_dir.iterdir() if ".onnx" in p.name]
    monkeypatch.setattr(convert, "build_model", real)
    again = load_model(str(tiny_model), precision="fp32")
    np.testing.assert_array_equal(
        again.logits(PAIRS), load_model(str(tiny_model), precision="fp32").logits(PAIRS)
    )


@pytest.mark.parametrize(
    "lie",
    [
        {"label_agreement": None},
        {"max_difference": "0.01"},
        {"label_agreement": 7.0},
        {"mean_difference": -1},
        {"pairs": True},
        {"unknown": 1},
    ],
)
def test_a_stored_measurement_that_lies_is_ignored_with_a_warning(tiny_model, tmp_path, lie):
    """A verdict file edited, cut or written by another version is measured again, never
    trusted (a null agreement was a TypeError in `score` and `model info`)."""
    import json

    from conftest import run_cli

    from squeezenli.models.build import measurement_path

    tiny_model = shutil.copytree(tiny_model, tmp_path / "copy")
    prepare_model(str(tiny_model), measure=True)
    stored = measurement_path(resolve(str(tiny_model)), "int8", "agreement")
    stored.write_text(json.dumps({**json.loads(stored.read_text()), **lie}))
    for args in (["model", "info"], ["score", "A man plays.", "Music.", "--precision", "auto"]):
        done = run_cli([*args, "-m", str(tiny_model)])
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    assert "ignoring the stored measurement" in done.stderr
    prepare_model(str(tiny_model), measure=True)  # measured again, over the lie
    assert json.loads(stored.read_text()).keys() >= {"label_agreement", "max_difference"}
    assert json.loads(stored.read_text())["label_agreement"] not in (None, 7.0)
