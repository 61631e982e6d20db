"""Build the ONNX graph of a SqueezeBERT (or BERT) sequence classifier from numpy weights.

The encoder works on a [tokens, channels] matrix (batch and length flattened): every
projection is a 2-D GEMM, and the int8 form quantizes each token row with one
QuantizeLinear along axis 0 (quantize.py); attention reshapes to heads and back.

A grouped 1x1 convolution with g groups becomes Split + g MatMuls + Concat: the same
arithmetic as the reference's Conv1d, and the form that int8 speeds up (onnxruntime's
ConvInteger kernel made the Conv form 2.5x slower; design.md). The reference this must
equal, to float32 rounding, is transformers' SqueezeBertForSequenceClassification.

Two rewrites keep the copies between groups down, the cost that dominates once the MatMuls
are int8: query, key and value of a group are one MatMul (their weights side by side), and
when the intermediate and output convolutions have the same groups, group j of the output
reads only group j of the intermediate, so each group runs MatMul -> gelu -> MatMul on its
own and the 3072-wide tensor is never concatenated and split again. The last layer runs
its projections and feed-forward on the [CLS] rows only, the rows the pooler reads: the same
bits as the whole layer's, fp32 and int8, for ~7% fewer multiply-adds (docs/performance.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from squeezenli.errors import ModelError
from squeezenli.models.config import ModelConfig

# Bump when the graph changes, so cached builds from older versions are not reused.
CONVERTER_VERSION = 4
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "logits"


def check_interface(inputs: set[str], outputs: list[str], origin: object) -> None:
    """A model squeezenli can run takes input_ids (and maybe the other INPUTS) and gives
    OUTPUT: an export that does not is refused before anything is built from it."""
    if "input_ids" not in inputs or not inputs <= set(INPUTS) or OUTPUT not in outputs:
        raise ModelError(
            f"{origin}: not an ONNX sequence classifier (inputs {sorted(inputs)}, "
            f"outputs {outputs}; expected inputs among {list(INPUTS)} and an output '{OUTPUT}')"
        )


# Weights of at least this many bytes go to the side file when there is one.
SIDE_MIN_BYTES = 1024


class _Graph:
    """A tiny onnx.helper wrapper that names nodes and initializers uniquely. Each weight goes
    straight into the model being built, not into a list that make_graph and make_model would
    copy twice more: converting the full-size model peaked at 847 MiB that way. With a side
    file (an open file and its name beside the model), each weight is written there as it is
    made and the model only points at it, so the model in memory holds no copy of the
    weights and saving it makes none (the full-size build peaked ~430 MiB over its start
    with the weights inside)."""

    def __init__(self, side: tuple[BinaryIO, str] | None = None) -> None:
        from onnx import ModelProto, helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.model = ModelProto()
        self.nodes: list = []
        self._count = 0
        self._side = side

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, array: np.ndarray) -> str:
        name = self._name(hint)
        array = np.asarray(array, order="C")
        if self._side is None or array.nbytes < SIDE_MIN_BYTES:
            self.model.graph.initializer.append(self._numpy_helper.from_array(array, name))
            return name
        from onnx import TensorProto, helper

        handle, location = self._side
        offset = handle.tell()
        handle.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        proto = TensorProto(name=name, dims=array.shape)
        proto.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        proto.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", offset), ("length", array.nbytes)):
            entry = proto.external_data.add()
            entry.key, entry.value = key, str(value)
        self.model.graph.initializer.append(proto)
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs):
        names = [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self._helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def _tensor_getter(tensors: dict[str, np.ndarray]) -> Callable[[str], np.ndarray]:
    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise ModelError(f"weights are missing tensor '{name}'")
        return np.asarray(tensors[name], dtype=np.float32)

    return get


def _grouped_linear(g: _Graph, x: str, weight: np.ndarray, bias: np.ndarray, groups: int) -> str:
    """y = x W^T + b for a Conv1d weight [out, in/groups, 1] or a Linear weight [out, in]."""
    parts = _split(g, x, weight.shape[1] * groups, groups)
    outs = [
        g.op("MatMul", p, g.const("w", w)) for p, w in zip(parts, _group_weights(weight, groups))
    ]
    y = outs[0] if groups == 1 else g.op("Concat", *outs, axis=-1)
    return g.op("Add", y, g.const("b", bias))


def _group_weights(weight: np.ndarray, groups: int) -> list[np.ndarray]:
    """Per group, the [in/groups, out/groups] matrix of a Conv1d or Linear weight."""
    w = weight.reshape(weight.shape[0], -1)
    per_group = w.shape[0] // groups
    return [w[j * per_group : (j + 1) * per_group].T for j in range(groups)]


def _split(g: _Graph, x: str, width: int, groups: int) -> list[str]:
    if groups == 1:
        return [x]
    sizes = g.const("split", np.full(groups, width // groups, dtype=np.int64))
    return g.op("Split", x, sizes, outputs=groups, axis=-1)


def _layer_norm(g: _Graph, x: str, weight: np.ndarray, bias: np.ndarray, eps: float) -> str:
    return g.op(
        "LayerNormalization",
        x,
        g.const("ln_w", weight),
        g.const("ln_b", bias),
        axis=-1,
        epsilon=eps,
    )


def _activation(g: _Graph, x: str, name: str) -> str:
    if name == "relu":
        return g.op("Relu", x)
    if name == "gelu":  # erf form, as torch.nn.functional.gelu
        inner = g.op("Erf", g.op("Div", x, g.const("sqrt2", np.array(math.sqrt(2), np.float32))))
        one = g.const("one", np.array(1.0, np.float32))
        half = g.const("half", np.array(0.5, np.float32))
        return g.op("Mul", g.op("Mul", x, half), g.op("Add", inner, one))
    # tanh approximation (gelu_new, gelu_pytorch_tanh)
    cube = g.op("Mul", g.op("Mul", x, x), x)
    c = g.const("c", np.array(0.044715, np.float32))
    k = g.const("k", np.array(math.sqrt(2 / math.pi), np.float32))
    t = g.op("Tanh", g.op("Mul", k, g.op("Add", x, g.op("Mul", c, cube))))
    half = g.const("half", np.array(0.5, np.float32))
    one = g.const("one", np.array(1.0, np.float32))
    return g.op("Mul", g.op("Mul", half, x), g.op("Add", one, t))


def _names(config: ModelConfig) -> dict[str, str]:
    """Tensor-name templates for the two layouts transformers saves."""
    if config.model_type == "squeezebert":
        layer = "transformer.encoder.layers.{i}."
        return {
            "emb": "transformer.embeddings.",
            "q": layer + "attention.query",
            "k": layer + "attention.key",
            "v": layer + "attention.value",
            "attn_out": layer + "post_attention.conv1d",
            "ln1": layer + "post_attention.layernorm",
            "inter": layer + "intermediate.conv1d",
            "out": layer + "output.conv1d",
            "ln2": layer + "output.layernorm",
            "pooler": "transformer.pooler.dense",
        }
    layer = "bert.encoder.layer.{i}."
    return {
        "emb": "bert.embeddings.",
        "q": layer + "attention.self.query",
        "k": layer + "attention.self.key",
        "v": layer + "attention.self.value",
        "attn_out": layer + "attention.output.dense",
        "ln1": layer + "attention.output.LayerNorm",
        "inter": layer + "intermediate.dense",
        "out": layer + "output.dense",
        "ln2": layer + "output.LayerNorm",
        "pooler": "bert.pooler.dense",
    }


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the graph reads, with the shape the config implies for it."""
    names = _names(config)
    h, inner, n = config.hidden_size, config.intermediate_size, config.num_labels
    conv = config.model_type == "squeezebert"

    def linear(out: int, width: int, groups: int = 1) -> tuple[int, ...]:
        return (out, width // groups, 1) if conv else (out, width)

    emb = names["emb"]
    shapes = {
        emb + "word_embeddings.weight": (config.vocab_size, h),
        emb + "position_embeddings.weight": (config.max_position_embeddings, h),
        emb + "token_type_embeddings.weight": (config.type_vocab_size, h),
        emb + "LayerNorm.weight": (h,),
        emb + "LayerNorm.bias": (h,),
        names["pooler"] + ".weight": (h, h),
        names["pooler"] + ".bias": (h,),
        "classifier.weight": (n, h),
        "classifier.bias": (n,),
    }
    per_layer = {
        "q": (linear(h, h, config.q_groups), h),
        "k": (linear(h, h, config.k_groups), h),
        "v": (linear(h, h, config.v_groups), h),
        "attn_out": (linear(h, h, config.post_attention_groups), h),
        "inter": (linear(inner, h, config.intermediate_groups), inner),
        "out": (linear(h, inner, config.output_groups), h),
    }
    for i in range(config.num_hidden_layers):
        for key, (weight, bias) in per_layer.items():
            shapes[names[key].format(i=i) + ".weight"] = weight
            shapes[names[key].format(i=i) + ".bias"] = (bias,)
        for key in ("ln1", "ln2"):
            shapes[names[key].format(i=i) + ".weight"] = (h,)
            shapes[names[key].format(i=i) + ".bias"] = (h,)
    return shapes


def check_weights(config: ModelConfig, tensors: dict[str, np.ndarray]) -> None:
    """Refuse weights that do not fit the config (a missing tensor, a wrong shape, a value
    that is not a number) before a graph is built from them: a 10-row embedding table under
    a 30522-word vocabulary would otherwise fail in the middle of a run, or read nonsense."""
    for name, shape in expected_shapes(config).items():
        if name not in tensors:
            raise ModelError(f"weights are missing tensor '{name}'")
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise ModelError(
                f"tensor '{name}' has shape {list(tensor.shape)}, but the config implies "
                f"{list(shape)}: the weights and config.json do not belong together"
            )
        if tensor.dtype.kind not in "fiu":
            raise ModelError(f"tensor '{name}' holds {tensor.dtype}, not numbers")


def build_model(
    config: ModelConfig, tensors: dict[str, np.ndarray], side: tuple[BinaryIO, str] | None = None
):
    """The classifier as an onnx.ModelProto: (ids, mask, token types) -> logits; with `side`
    (an open file and the name it will have beside the model), its weights written there."""
    from onnx import TensorProto, helper

    check_weights(config, tensors)
    get = _tensor_getter(tensors)
    names = _names(config)
    g = _Graph(side)
    eps = config.layer_norm_eps
    heads, head_size, hidden = config.num_attention_heads, config.head_size, config.hidden_size

    def param(key: str, i: int, part: str) -> np.ndarray:
        return get(names[key].format(i=i) + "." + part)

    # Embeddings: word + position (0..L-1) + token type, then LayerNorm.
    emb = names["emb"]
    words = g.op("Gather", g.const("word_emb", get(emb + "word_embeddings.weight")), "input_ids")
    shape = g.op("Shape", "input_ids")  # [batch, length]
    zero, one, two = (g.const("index", np.array([n], np.int64)) for n in range(3))
    first_index = g.const("zero_s", np.array(0, np.int64))
    length = g.op("Slice", shape, one, two)
    positions = g.op(
        "Slice", g.const("pos_emb", get(emb + "position_embeddings.weight")), zero, length, zero
    )
    types = g.op(
        "Gather", g.const("type_emb", get(emb + "token_type_embeddings.weight")), "token_type_ids"
    )
    x = g.op("Add", g.op("Add", words, positions), types)
    x = _layer_norm(g, x, get(emb + "LayerNorm.weight"), get(emb + "LayerNorm.bias"), eps)
    tokens = g.const("tokens_shape", np.array([-1, hidden], np.int64))
    x = g.op("Reshape", x, tokens)
    batch_length = g.op("Slice", shape, zero, two)

    def unflattened(*tail: int) -> str:
        """The shape [batch, length, *tail] of this run, for a Reshape of the token matrix."""
        return g.op("Concat", batch_length, g.const("tail", np.array(tail, np.int64)), axis=0)

    # Additive attention bias: 0 for real tokens, float32 min for padding (as transformers).
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    inverted = g.op("Sub", g.const("one_f", np.array(1.0, np.float32)), mask)
    bias = g.op("Mul", inverted, g.const("neg", np.array(np.finfo(np.float32).min, np.float32)))
    bias = g.op("Unsqueeze", bias, g.const("axes12", np.array([1, 2], np.int64)))

    groups = {
        "attn_out": config.post_attention_groups,
        "inter": config.intermediate_groups,
        "out": config.output_groups,
    }
    qkv_groups = config.q_groups
    if not (config.q_groups == config.k_groups == config.v_groups) or heads % qkv_groups:
        raise ModelError(
            f"unsupported attention groups (q {config.q_groups}, k {config.k_groups}, "
            f"v {config.v_groups} with {heads} heads)"
        )
    # [B, L, group, q|k|v, head in group, d] -> [q|k|v, B, group, head in group, L, d]
    qkv_shape = unflattened(qkv_groups, 3, heads // qkv_groups, head_size)
    heads_shape = g.const("heads_shape", np.array([3, 0, heads, -1, head_size], np.int64))
    # 1/sqrt(d) folded into the query weights when it is a power of two (exact in float32).
    root = math.sqrt(head_size)
    fold_scale = root.is_integer() and int(root) & (int(root) - 1) == 0
    scale = g.const("scale", np.array(root, np.float32))

    def linear(key: str, i: int, inp: str) -> str:
        return _grouped_linear(g, inp, param(key, i, "weight"), param(key, i, "bias"), groups[key])

    def attention_inputs(i: int, x: str) -> tuple[str, str, str]:
        q_scale = 1.0 / root if fold_scale else 1.0
        weights = [_group_weights(param(key, i, "weight"), qkv_groups) for key in ("q", "k", "v")]
        biases = [param(key, i, "bias").reshape(qkv_groups, -1) for key in ("q", "k", "v")]
        outs = []
        for j, part in enumerate(_split(g, x, hidden, qkv_groups)):
            w = np.concatenate([weights[0][j] * q_scale, weights[1][j], weights[2][j]], axis=1)
            b = np.concatenate([biases[0][j] * q_scale, biases[1][j], biases[2][j]])
            outs.append(g.op("Add", g.op("MatMul", part, g.const("w_qkv", w)), g.const("b", b)))
        qkv = outs[0] if len(outs) == 1 else g.op("Concat", *outs, axis=-1)
        qkv = g.op("Transpose", g.op("Reshape", qkv, qkv_shape), perm=[3, 0, 2, 4, 1, 5])
        qkv = g.op("Reshape", qkv, heads_shape)
        q, k, v = (
            g.op("Gather", qkv, g.const("idx", np.array(n, np.int64)), axis=0) for n in range(3)
        )
        return q, k, v

    def feed_forward(i: int, x: str) -> str:
        if groups["inter"] != groups["out"]:
            inner = _activation(g, linear("inter", i, x), config.hidden_act)
            return linear("out", i, inner)
        n = groups["inter"]
        w_in = _group_weights(param("inter", i, "weight"), n)
        b_in = param("inter", i, "bias").reshape(n, -1)
        w_out = _group_weights(param("out", i, "weight"), n)
        outs = []
        for j, part in enumerate(_split(g, x, hidden, n)):
            h = g.op("Add", g.op("MatMul", part, g.const("w", w_in[j])), g.const("b", b_in[j]))
            h = _activation(g, h, config.hidden_act)
            outs.append(g.op("MatMul", h, g.const("w", w_out[j])))
        y = outs[0] if n == 1 else g.op("Concat", *outs, axis=-1)
        return g.op("Add", y, g.const("b", param("out", i, "bias")))

    last = config.num_hidden_layers - 1
    for i in range(config.num_hidden_layers):
        q, k, v = attention_inputs(i, x)
        scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2]))
        if not fold_scale:
            scores = g.op("Div", scores, scale)
        scores = g.op("Add", scores, bias)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        context = g.op("Transpose", context, perm=[0, 2, 1, 3])  # [B, L, heads, d]
        if i == last:
            # Only [CLS] reaches the pooler, so the last layer's projections, feed-forward and
            # layer norms run on its row alone (~6.7% of the weight multiply-adds skipped).
            # Attention still runs for every query row: a single row's product with the
            # values summed its padding differently and moved int8 answers with the batch.
            context = g.op("Gather", context, first_index, axis=1)
            x = g.op("Gather", g.op("Reshape", x, unflattened(hidden)), first_index, axis=1)
        context = g.op("Reshape", context, tokens)
        attended = g.op("Add", linear("attn_out", i, context), x)
        attended = _layer_norm(g, attended, param("ln1", i, "weight"), param("ln1", i, "bias"), eps)
        x = g.op("Add", feed_forward(i, attended), attended)
        x = _layer_norm(g, x, param("ln2", i, "weight"), param("ln2", i, "bias"), eps)

    # Pooler: tanh(dense) on the [CLS] rows the last layer kept; then the classifier.
    pooler = names["pooler"]
    pool_w = g.const("pool_w", get(pooler + ".weight"))
    pooled = g.op(
        "Tanh", g.op("Gemm", x, pool_w, g.const("pool_b", get(pooler + ".bias")), transB=1)
    )
    classifier_w = g.const("cls_w", get("classifier.weight"))
    classifier = [pooled, classifier_w, g.const("cls_b", get("classifier.bias"))]
    g.nodes.append(helper.make_node("Gemm", classifier, [OUTPUT], transB=1))

    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "length"]) for n in INPUTS
    ]
    output = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", config.num_labels])
    model = g.model
    model.graph.node.extend(g.nodes)
    model.graph.name = f"{config.model_type}_nli"
    model.graph.input.extend(inputs)
    model.graph.output.append(output)
    model.opset_import.append(helper.make_opsetid("", OPSET))
    model.producer_name = "squeezenli"
    model.ir_version = 8
    return model
