"""int8 gives the same bits on every x86 CPU: squeezenli's int8 cannot saturate onnxruntime's
u8s8 kernels without VNNI, other int8 models get the exact kernels there, and nothing here
depends on the CPU that runs it (cpu_kind runs each test as on both kinds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from squeezenli.models import int8_kernels
from squeezenli.models.build import built_path, ensure_onnx, exact_kernels, ready_path
from squeezenli.models.hub import resolve
from squeezenli.models.quantize import DEFAULT_RANGE, Int8Range, quantize_model
from squeezenli.runtime.engine import create_session
from squeezenli.runtime.model import load_model

FEEDS = {
    "input_ids": np.array([[2, 90, 91, 3, 92, 3] * 4], np.int64),
    "attention_mask": np.ones((1, 24), np.int64),
    "token_type_ids": np.array([[0, 0, 0, 0, 1, 1] * 4], np.int64),
}
PAIRS = [
    ("A man plays a guitar on stage.", "A person is making music."),
    ("The dog runs in the park.", "A cat sits."),
    ("The old woman reads a book in the morning, and then she walks to the river.", "No."),
]
EXPORTS = Path(__file__).parent / "fixtures" / "exports"


def _int8(tiny_model: Path, int8_range: Int8Range, opset: int | None = None):
    fp32 = onnx.load(str(ensure_onnx(resolve(str(tiny_model)), "fp32")))
    if opset is not None:
        fp32.opset_import[0].version = opset
    return fp32, quantize_model(onnx.load_from_string(fp32.SerializeToString()), int8_range)


def _emulated_sums(model) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each integer product of the model on FEEDS: the exact int32 sums, and the sums as
    x86 CPUs without VNNI make them (vpmaddubsw: each adjacent pair of uint8 x int8 products
    along K added in int16 with saturation, then summed in int32). Computed in numpy from the
    uint8 rows the model quantizes, so the same on every CPU."""
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat"]
    probe = onnx.load_from_string(model.SerializeToString())
    for node in nodes:
        probe.graph.output.append(
            helper.make_tensor_value_info(node.input[0], TensorProto.UINT8, None)
        )
    import onnxruntime

    session = onnxruntime.InferenceSession(probe.SerializeToString())
    rows = session.run([n.input[0] for n in nodes], FEEDS)
    sums = []
    for node, a in zip(nodes, rows):
        b = weights[node.input[1]].astype(np.int32)
        a = a.reshape(-1, b.shape[0]).astype(np.int32)
        pairs = a[:, 0::2, None] * b[None, 0::2] + a[:, 1::2, None] * b[None, 1::2]
        sums.append((pairs.sum(axis=1), np.clip(pairs, -(2**15), 2**15 - 1).sum(axis=1)))
    return sums


@pytest.mark.parametrize(
    ("machine", "cpuinfo", "exact"),
    [
        ("x86_64", "flags\t: fpu sse avx2 avx512f avx512bw\n", True),  # Skylake-SP, Zen 3
        ("x86_64", "flags\t: fpu avx2 avx512f avx512_vnni\n", False),
        ("x86_64", "flags\t: fpu avx2 avx_vnni\n", False),  # Alder Lake
        ("x86_64", None, True),  # flags unknown: exact
        ("aarch64", "Features\t: fp asimd\n", False),  # not onnxruntime's x86 kernels
    ],
)
def test_exact_int8_kernels_are_chosen_where_vnni_is_missing(
    tmp_path, monkeypatch, machine, cpuinfo, exact
):
    cpu = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        cpu.write_text(cpuinfo)
    monkeypatch.setattr(int8_kernels, "CPUINFO", cpu)
    monkeypatch.setattr(int8_kernels.platform, "machine", lambda: machine)
    int8_kernels.needs_exact_kernels.cache_clear()
    try:
        assert int8_kernels.needs_exact_kernels() is exact
    finally:
        int8_kernels.needs_exact_kernels.cache_clear()


def test_squeezenli_int8_weights_cannot_saturate(tiny_model):
    _, ours = _int8(tiny_model, DEFAULT_RANGE)
    _, full = _int8(tiny_model, Int8Range.FULL)
    assert not int8_kernels.saturates(ours)
    assert int8_kernels.saturates(full)  # 8-bit weights, as before the quantizer's v3
    built = onnx.load(str(ensure_onnx(resolve(str(tiny_model)), "int8")))
    assert not int8_kernels.saturates(built)
    weights = [
        numpy_helper.to_array(i)
        for i in built.graph.initializer
        if i.data_type == TensorProto.INT8 and len(i.dims) == 2
    ]
    assert max(int8_kernels.largest_pair(w) for w in weights) <= int8_kernels.PAIR_BUDGET
    assert max(int(np.abs(w.astype(np.int16)).max()) for w in weights) == 127  # 8-bit codes


@pytest.mark.parametrize("int8_range", list(Int8Range))
def test_sums_without_vnni_equal_the_exact_sums_only_for_ranges_that_fit(tiny_model, int8_range):
    _, model = _int8(tiny_model, int8_range)
    sums = _emulated_sums(model)
    assert len(sums) > 10
    clipped = sum(int((exact != saturated).sum()) for exact, saturated in sums)
    if int8_range is Int8Range.FULL:
        assert clipped > 0  # the emulation sees what an AVX2 CPU would do to 8-bit codes
    else:
        assert clipped == 0


def _sessions_agree(path: Path) -> list[np.ndarray]:
    """Outputs of sessions opened as squeezenli opens them, with the default int8 kernels and
    with the exact ones: the same bits on every CPU for a model that cannot saturate."""
    outputs = []
    for exact in (False, True):
        session = create_session(path, settings=int8_kernels.settings(exact))
        outputs.append(session.run(None, FEEDS)[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    return outputs


@pytest.mark.parametrize("opset", [17, 18])
def test_int8_of_any_opset_scores_close_to_fp32_under_both_kernels(tiny_model, tmp_path, opset):
    """Exports come in newer opsets, where ReduceMax takes its axes as an input."""
    fp32, int8 = _int8(tiny_model, DEFAULT_RANGE, opset)
    for name, model in (("fp32", fp32), ("int8", int8)):
        onnx.save_model(model, str(tmp_path / f"{name}.onnx"))
    reference = create_session(tmp_path / "fp32.onnx").run(None, FEEDS)[0]
    for output in _sessions_agree(tmp_path / "int8.onnx"):
        assert np.abs(output - reference).max() < 0.1
    assert any(n.op_type == "MatMulIntegerToFloat" for n in int8.graph.node)


def test_squeezenli_int8_is_the_same_bits_on_both_kinds_of_cpu(tiny_model, tmp_path, cpu_kind):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model, folder)
    nli = load_model(str(folder), precision="int8")
    files = resolve(str(folder))
    ready = nli.onnx_path
    assert ready == ready_path(built_path(files, "int8"), files.build_dir)
    assert ready.is_file() and not ready.name.endswith(f"{int8_kernels.EXACT_SUFFIX}.onnx")
    assert not exact_kernels(ready, files.build_dir)  # no exact kernels needed, VNNI or not
    default, exact = _sessions_agree(ready)
    built = ensure_onnx(files, "int8")
    session = create_session(built, settings=int8_kernels.settings(True))
    expected = session.run(None, FEEDS)[0]
    np.testing.assert_array_equal(default, expected)  # the ready copy is the build, optimized
    agreement = nli.agreement
    assert agreement is not None and agreement.batch_difference == 0.0


def _quantized_export(folder: Path) -> str:
    """The roberta stand-in with onnxruntime's own dynamic int8 beside it, as repos ship it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    shutil.copytree(EXPORTS / "roberta", folder)
    variant = "onnx/model_quantized.onnx"
    quantize_dynamic(folder / "onnx/model.onnx", folder / variant, weight_type=QuantType.QInt8)
    return variant


def test_an_int8_export_that_may_saturate_runs_exact_kernels_only_without_vnni(tmp_path, cpu_kind):
    folder = tmp_path / "export"
    variant = _quantized_export(folder)
    assert int8_kernels.saturates(onnx.load(str(folder / variant)))
    assert not int8_kernels.saturates(onnx.load(str(folder / "onnx/model.onnx")))  # no integers
    nli = load_model(str(folder), onnx_file=variant, precision="int8")
    files = resolve(str(folder), onnx_file=variant)
    ready = nli.onnx_path
    assert ready == ready_path(folder / variant, files.build_dir)
    exact = cpu_kind == "no-vnni"
    assert ready.is_file() and ready.name.endswith(f"{int8_kernels.EXACT_SUFFIX}.onnx") is exact
    assert exact_kernels(folder / variant, files.build_dir) is exact
    if exact:  # onnxruntime stored its weights as uint8 for the exact u8u8 kernels
        graph = onnx.load(str(ready), load_external_data=False).graph
        kinds = {i.name: i.data_type for i in graph.initializer}
        integer = [n for n in graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
        assert integer and {kinds[n.input[1]] for n in integer} == {TensorProto.UINT8}
    assert nli.probabilities(PAIRS).shape == (len(PAIRS), 3)


def test_shape_inference_sees_the_converters_token_matrices(tiny_model):
    """Shape inference runs on the graph with the weights' values left out (quantize.py), and
    must still find every MatMul input of squeezenli's own graph to be 2-D: none is reshaped."""
    from squeezenli.models.quantize import _matrices

    fp32, int8 = _int8(tiny_model, DEFAULT_RANGE)
    weights = {i.name for i in fp32.graph.initializer}
    inputs = {
        n.input[0] for n in fp32.graph.node if n.op_type == "MatMul" and n.input[1] in weights
    }
    assert inputs and inputs <= _matrices(fp32)
    assert not [n for n in int8.graph.node if n.output[0].endswith("_2d")]


@pytest.mark.parametrize("recipe", ["shipped", "half kept fp32", "fixed scales", "all kept"])
def test_each_int8_recipe_keeps_a_pairs_scores_to_itself(tiny_model, tmp_path, recipe):
    """The recipes bench/int8_recipes.py measures: MatMuls kept in fp32 (`keep`) and fixed,
    calibrated activation scales (`scales`) quantize what they say, and a pair gets the
    same bits alone as in a batch under each."""
    from collections import Counter

    from squeezenli.runtime.engine import Engine

    fp32 = onnx.load(str(ensure_onnx(resolve(str(tiny_model)), "fp32")))
    weights = {i.name for i in fp32.graph.initializer if len(i.dims) == 2}
    matmuls = [n for n in fp32.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    keep = {
        "half kept fp32": frozenset(n.input[1] for n in matmuls[::2]),
        "all kept": frozenset(n.input[1] for n in matmuls),
    }.get(recipe, frozenset())
    scales = {n.input[0]: 3.0 for n in matmuls} if recipe == "fixed scales" else None
    copied = onnx.load_from_string(fp32.SerializeToString())
    int8 = quantize_model(copied, keep=keep, scales=scales)
    kinds = Counter(n.op_type for n in int8.graph.node)
    assert kinds["MatMulIntegerToFloat"] == len(matmuls) - len(keep)
    assert kinds["MatMul"] == len(keep) + sum(n.op_type == "MatMul" for n in fp32.graph.node) - len(
        matmuls
    )
    assert (kinds["ReduceMax"] == 0) == (recipe in ("fixed scales", "all kept"))
    onnx.save_model(int8, str(tmp_path / "int8.onnx"))
    tokenizer = load_model(str(tiny_model), precision="fp32").engine.tokenizer
    engine = Engine(create_session(tmp_path / "int8.onnx"), tokenizer)
    together = engine.logits(PAIRS)
    alone = np.concatenate([engine.logits([pair]) for pair in PAIRS])
    np.testing.assert_array_equal(together, alone)
    if recipe == "all kept":  # nothing quantized: fp32's own answers
        onnx.save_model(fp32, str(tmp_path / "fp32.onnx"))
        exact = Engine(create_session(tmp_path / "fp32.onnx"), tokenizer).logits(PAIRS)
        np.testing.assert_allclose(together, exact, atol=1e-6, rtol=0)
