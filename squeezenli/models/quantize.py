"""int8 whose answers do not depend on the batch: per-row activation scales, per-channel weights.

onnxruntime's dynamic quantization gives a whole [batch, length, channels] activation one
scale, so every other pair in a batch, and every padded position, moves a pair's scores: on
a full-size stand-in with a fitted classifier, 17% of labels differed from fp32 and a pair's
probabilities moved by up to 0.15 between batchings (design.md). Here each MatMul with a
constant weight becomes, on its input seen as a [tokens, channels] matrix,

    s = max|x| / 127 over each row's channels               (one scale per token row)
    q = QuantizeLinear(x, s, 128, axis=0)                   (uint8, zero point 128: symmetric)
    y = MatMulIntegerToFloat(q, W_int8, 1, w_scale, 128) * s

so a row's result depends on that row alone: a pair scored alone or in any batch gets the
same bits. Weights are int8 with a scale per output channel, and each pair of weights that
x86 CPUs without VNNI add in 16 bits (rows 2j and 2j + 1) shares a budget of 128, so those
CPUs' fast kernels give the exact sums, the bits VNNI gives (Int8Range.PAIRED; the scale of
each column is the one that errs least under that budget). Gemm nodes (BERT's pooler and
classifier) stay fp32. Measured on the fitted full-size stand-in (bench/quantization.py):
93.7% label agreement with fp32 (8-bit weights without the budget: 94.2%, saturating without
VNNI; 7-bit weights: 85.8%; per-tensor: 84.8%). QuantizeLinear along axis 0 replaced a
Div and a per-tensor QuantizeLinear: +8% int8 pairs/s (bench/, 2 cores). Inputs the
converter does not already give as matrices (an export's [batch, length, channels]) are
reshaped to one and back. onnxruntime's MatMulNBits (8 bits, int8 compute, blocks of 32)
was as faithful per pair but slower than fp32 here.
"""

from __future__ import annotations

import enum
from pathlib import Path

import numpy as np

from squeezenli.models.int8_kernels import PAIR_BUDGET

# Bump when the quantized graph changes: it is part of an int8 build's key.
QUANTIZER_VERSION = 3


class Int8Range(enum.Enum):
    """How far quantized values reach: (activation levels each side of zero, weight levels,
    whether each pair of weights along K shares one budget).

    Activations are stored as uint8 around a zero point of levels + 1, so their codes reach
    2 * levels + 1. x86 CPUs without VNNI add each pair of uint8 x int8 products (rows 2j and
    2j + 1 of a weight) in 16 bits with saturation (int8_kernels.py); when 255 times the two
    weights' magnitudes stays under 2**15, the sums are exact there too: the same bits as
    VNNI and as the exact kernels.
    """

    FULL = (127, 127, False)  # 255 * (127 + 127) = 64770: saturates (squeezenli before v3)
    WEIGHTS_7BIT = (127, 63, False)  # 255 * (63 + 63) = 32130: exact on every x86 kernel
    ACTIVATIONS_7BIT = (63, 127, False)  # 127 * (127 + 127) = 32258: exact everywhere
    PAIRED = (127, 127, True)  # 255 * 128 = 32640: 8-bit weights, |w_2j| + |w_2j+1| <= 128

    @property
    def activation_levels(self) -> int:
        return self.value[0]

    def weights(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """int8 codes [K, N] and a scale per column for an fp32 weight [K, N]."""
        levels, paired = self.value[1], self.value[2]
        peak = np.abs(w).max(axis=0)
        peak[peak == 0] = 1.0
        if not paired:
            scale = peak / levels
            return np.clip(np.rint(w / scale), -levels, levels).astype(np.int8), scale

        def fitted(stretch: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            scale = peak / levels * stretch
            codes = _fit_pairs(np.clip(np.rint(w / scale), -levels, levels))
            return codes, scale, ((codes * scale - w) ** 2).sum(axis=0)

        best, best_scale, best_error = fitted(PAIR_STRETCHES[0])
        for stretch in PAIR_STRETCHES[1:]:  # per column, the scale that errs least once paired
            codes, scale, error = fitted(stretch)
            better = error < best_error
            best = np.where(better, codes, best)
            best_scale = np.where(better, scale, best_scale)
            best_error = np.minimum(error, best_error)
        return best.astype(np.int8), best_scale


# Scales PAIRED tries per column, as multiples of the plain 8-bit one: a larger scale leaves
# fewer pairs over budget but coarser steps (2.0 puts every weight within 7 bits).
PAIR_STRETCHES = np.linspace(1.0, 2.0, 21)


def _fit_pairs(codes: np.ndarray) -> np.ndarray:
    """Codes whose pairs of rows (2j, 2j + 1) have |a| + |b| <= PAIR_BUDGET: a pair over it
    is shrunk in proportion, rounded toward zero."""
    codes = codes.copy()
    even = codes.shape[0] // 2 * 2
    a, b = codes[0:even:2], codes[1:even:2]
    total = np.abs(a) + np.abs(b)
    shrink = np.where(total > PAIR_BUDGET, PAIR_BUDGET / np.maximum(total, 1), 1.0)
    codes[0:even:2], codes[1:even:2] = np.trunc(a * shrink), np.trunc(b * shrink)
    return codes


# Chosen by measurement (docs/precision.md).
DEFAULT_RANGE = Int8Range.PAIRED


def quantize_model(
    model,
    int8_range: Int8Range = DEFAULT_RANGE,
    keep: frozenset[str] = frozenset(),
    scales: dict[str, float] | None = None,
):
    """Rewrite an fp32 onnx.ModelProto in place as described above; returns it. `keep`: the
    weights whose MatMuls stay fp32; `scales`: a fixed activation scale for these MatMul
    inputs (calibrated, one for every row) instead of each row's own."""
    from onnx import TensorProto, helper, numpy_helper

    levels = int8_range.activation_levels

    graph = model.graph
    weights = {i.name: i for i in graph.initializer if len(i.dims) == 2}
    weights = {n: i for n, i in weights.items() if i.data_type == TensorProto.FLOAT}
    matrices = _matrices(model)
    graph.initializer.extend(
        numpy_helper.from_array(np.array(v, dtype), name)
        for name, v, dtype in (
            ("rowq_levels", float(levels), np.float32),
            ("rowq_tiny", 1e-30, np.float32),
            ("rowq_one", 1.0, np.float32),
            ("rowq_zero_point", levels + 1, np.uint8),
            ("rowq_last", [-1], np.int64),
            ("rowq_first", [0], np.int64),
        )
    )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    nodes: list = []
    quantized: dict[str, tuple[str, str]] = {}  # input -> (its uint8 rows, their scales)
    replaced: set[str] = set()

    def add(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def quantize_rows(x: str) -> tuple[str, str]:
        magnitude = add("Abs", [x], f"{x}_abs")
        if opset >= 18:  # ReduceMax takes its axes as an input from opset 18 on
            peak = add("ReduceMax", [magnitude, "rowq_last"], f"{x}_peak", keepdims=0)
        else:
            peak = add("ReduceMax", [magnitude], f"{x}_peak", axes=[-1], keepdims=0)
        scale = add("Div", [add("Max", [peak, "rowq_tiny"], f"{x}_pos"), "rowq_levels"], f"{x}_s")
        zero_points = add("Expand", ["rowq_zero_point", add("Shape", [scale], f"{x}_n")], f"{x}_z")
        q = add("QuantizeLinear", [x, scale, zero_points], f"{x}_q", axis=0)
        return q, add("Unsqueeze", [scale, "rowq_last"], f"{x}_rows")

    def quantize_fixed(x: str, value: float) -> tuple[str, str]:
        scale = _const(graph, f"{x}_fixed_s", value / levels, np.float32)
        return add("QuantizeLinear", [x, scale, "rowq_zero_point"], f"{x}_q"), scale

    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in weights or node.input[1] in keep:
            nodes.append(node)
            continue
        x, name = node.input[0], node.input[1]
        w = numpy_helper.to_array(weights[name]).astype(np.float32)
        flat = x in matrices
        fixed = (scales or {}).get(x)
        if x not in quantized:
            matrix = _const(graph, f"rowq_matrix_{w.shape[0]}", [-1, w.shape[0]])
            rows = x if flat else add("Reshape", [x, matrix], f"{x}_2d")
            quantized[x] = quantize_rows(rows) if fixed is None else quantize_fixed(rows, fixed)
        q, scale = quantized[x]
        if name not in replaced:  # a weight two MatMuls share (DeBERTa's) is quantized once
            w_int8, w_scale = int8_range.weights(w)
            graph.initializer.extend(
                [
                    numpy_helper.from_array(w_int8, f"{name}_int8"),
                    numpy_helper.from_array(w_scale.astype(np.float32), f"{name}_scale"),
                ]
            )
            replaced.add(name)
        out = node.output[0]
        if fixed is not None:  # the activation scale is one number: the kernel applies it
            add(
                "MatMulIntegerToFloat",
                [q, f"{name}_int8", scale, f"{name}_scale", "rowq_zero_point"],
                out if flat else f"{out}_rows",
                domain="com.microsoft",
            )
            if flat:
                continue
            unscaled, scale = f"{out}_rows", "rowq_one"  # an export's shape back, below
        else:
            unscaled = add(
                "MatMulIntegerToFloat",
                [q, f"{name}_int8", "rowq_one", f"{name}_scale", "rowq_zero_point"],
                f"{out}_rows",
                domain="com.microsoft",
            )
        if flat:
            add("Mul", [unscaled, scale], out)
            continue
        # Back to the input's shape, the weight's width last.
        lead = add(
            "Slice", [add("Shape", [x], f"{out}_in"), "rowq_first", "rowq_last"], f"{out}_lead"
        )
        width = _const(graph, f"rowq_width_{w.shape[1]}", [w.shape[1]])
        shape = add("Concat", [lead, width], f"{out}_shape", axis=0)
        add("Reshape", [add("Mul", [unscaled, scale], f"{out}_flat"), shape], out)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}  # a weight other nodes read stays
    kept = [i for i in graph.initializer if i.name not in replaced or i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def _matrices(model) -> set[str]:
    """Names of the tensors that shape inference finds to be 2-D (the converter's own graph
    is; an export's activations usually are [batch, length, channels])."""
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(_without_weights(model))
    except Exception:  # an export onnx cannot infer (custom ops): reshape everything
        return set()
    found = set()
    for info in inferred.graph.value_info:
        tensor = info.type.tensor_type
        if tensor.HasField("shape") and len(tensor.shape.dim) == 2:
            found.add(info.name)
    return found


def _without_weights(model):
    """The model with its large initializers' values left out, their names, types and shapes
    kept: all that shape inference reads of them. Inferring on the whole model copied the
    weights four times (serialized, parsed, inferred, parsed back): quantizing the full-size
    model peaked at 1032 MiB that way, 645 MiB without them."""
    import math

    import onnx

    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    graph = light.graph
    for part in ("node", "input", "output", "value_info"):
        getattr(graph, part).extend(getattr(model.graph, part))
    for tensor in model.graph.initializer:
        if math.prod(tensor.dims) > 64:  # a weight: its values decide no shape
            graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
        else:  # a shape or an index, which Reshape, Slice and friends read
            graph.initializer.append(tensor)
    return light


def _const(graph, name: str, values: list[int] | float, dtype: type = np.int64) -> str:
    """An initializer of that name (int64 unless told), added once."""
    from onnx import numpy_helper

    if not any(i.name == name for i in graph.initializer):
        graph.initializer.append(numpy_helper.from_array(np.array(values, dtype), name))
    return name


def quantize_file(source: Path, target: Path, int8_range: Int8Range = DEFAULT_RANGE) -> None:
    """Read an fp32 ONNX file (its external data too), write the int8 form to target."""
    import onnx

    model = quantize_model(_load_with_data(source), int8_range)
    onnx.save_model(model, str(target))


def _load_with_data(source: Path):
    """An ONNX model with its external data read in. The Hugging Face cache's files are
    symbolic links into its blobs, and onnx refuses to read external data through a link (or
    a hard link), so each tensor's bytes are read here: from a plain name in the model's
    folder, never a path out of it, and from a regular file (a FIFO would block for ever)."""
    import os

    import onnx

    model = onnx.load(str(source), load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        name = info.get("location", "")
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise ValueError(f"external data {name!r} is not a file in the model's folder")
        real = Path(os.path.realpath(source.parent / name))
        if not real.is_file():
            raise ValueError(f"external data {name!r} is not a regular file")
        length = int(info["length"]) if "length" in info else -1
        with open(real, "rb") as handle:
            handle.seek(int(info.get("offset", 0)))
            data = handle.read(length)
        if 0 <= length != len(data):
            raise ValueError(f"external data {name!r} ends before tensor {tensor.name!r}")
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
    return model
