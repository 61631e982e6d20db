"""What the cores can do for this model: kernel microbenchmarks at the model's own shapes.

    python bench/ceiling.py [--model DIR] [--pairs FILE] [--threads 2]

The model's arithmetic is its projections (token rows x weight matrices, the grouped ones
as one GEMM per group) and its attention (two L x L x d products per head). Each distinct
projection shape is timed on onnxruntime alone, fp32 MatMul and int8 MatMulIntegerToFloat,
on 512-row matrices (the engine's token budget), with every thread busy in the way that is
fastest: one kernel split across the threads, or one kernel per thread at once. The
ceiling is then the pairs per second a run would reach if every multiply-add the answer
needs (every token through every layer, except that past the last layer's query, key and
value only [CLS], which the classifier reads, goes on), for every pair at its real length
with no padding, ran at those rates and nothing else took time: no
quantization, layer norm, gelu, softmax, copies, tokenizing or Python. A system's share of
the ceiling says how much of the machine it turns into answers.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROWS = 512  # token rows per GEMM: the engine's default batch_tokens


def projection_shapes(config: dict) -> list[tuple[int, int, int]]:
    """(count per layer, K, N) of each GEMM a layer runs on a token row."""
    hidden = config["hidden_size"]
    inner = config["intermediate_size"]
    groups = {
        "qkv": config.get("q_groups", 1),
        "post": config.get("post_attention_groups", 1),
        "inter": config.get("intermediate_groups", 1),
        "out": config.get("output_groups", 1),
    }
    shapes = [
        (groups["qkv"], hidden // groups["qkv"], 3 * hidden // groups["qkv"]),
        (groups["post"], hidden // groups["post"], hidden // groups["post"]),
        (groups["inter"], hidden // groups["inter"], inner // groups["inter"]),
        (groups["out"], inner // groups["out"], hidden // groups["out"]),
    ]
    return shapes


def _session(model, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()  # the kernels squeezenli runs: its int8 weights fit 7 bits
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _gemm_model(k: int, n: int, precision: str):
    from onnx import TensorProto, helper, numpy_helper

    from squeezenli.models.int8_kernels import PAIR_BUDGET

    limit = PAIR_BUDGET // 2  # speed does not depend on the values; their range is squeezenli's

    rng = np.random.default_rng(0)
    if precision == "int8":
        inits = [
            numpy_helper.from_array(rng.integers(-limit, limit + 1, (k, n), dtype=np.int8), "w"),
            numpy_helper.from_array(np.full(n, 0.01, np.float32), "w_scale"),
            numpy_helper.from_array(np.array(1.0, np.float32), "a_scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "a_zero"),
        ]
        node = helper.make_node(
            "MatMulIntegerToFloat",
            ["a", "w", "a_scale", "w_scale", "a_zero"],
            ["y"],
            domain="com.microsoft",
        )
        element = TensorProto.UINT8
    else:
        inits = [numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")]
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        element = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("a", element, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    return model


def _attention_model():
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["q", "k"], ["y"])],
        "attention",
        [
            helper.make_tensor_value_info("q", TensorProto.FLOAT, ["b", "h", "l", "d"]),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, ["b", "h", "d", "l"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _rate(model, feeds: dict, macs: int, threads: int, seconds: float) -> float:
    """Best multiply-adds per second over repeated rounds: one session split across the
    threads, or one single-threaded session per thread running at once (the better)."""

    def best_of(run, work: int) -> float:
        run()
        best = float("inf")
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            for _ in range(8):
                run()
            best = min(best, (time.perf_counter() - started) / 8)
        return work / best

    together = _session(model, threads)
    split = best_of(lambda: together.run(None, feeds), macs)
    if threads == 1:
        return split
    alone = [_session(model, 1) for _ in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        at_once = best_of(
            lambda: list(pool.map(lambda s: s.run(None, feeds), alone)), macs * threads
        )
    return max(split, at_once)


def measure(config: dict, lengths: list[int], threads: int, seconds: float = 1.5) -> dict:
    """Kernel rates at the model's shapes, and the pairs/s they allow for these lengths."""
    rng = np.random.default_rng(0)
    layers = config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    head_size = config["hidden_size"] // heads
    result: dict = {"kernels": [], "threads": threads}
    per_layer = {}  # precision -> seconds per token row per layer: (q/k/v, all projections)
    for precision in ("fp32", "int8"):
        times = {"qkv": 0.0, "all": 0.0}
        for index, (count, k, n) in enumerate(projection_shapes(config)):
            if precision == "int8":
                a = rng.integers(0, 256, (ROWS, k), dtype=np.uint8)
            else:
                a = rng.standard_normal((ROWS, k)).astype(np.float32)
            rate = _rate(_gemm_model(k, n, precision), {"a": a}, ROWS * k * n, threads, seconds)
            result["kernels"].append(
                {"precision": precision, "k": k, "n": n, "per_layer": count, "gmac_s": rate / 1e9}
            )
            times["all"] += count * k * n / rate
            if index == 0:
                times["qkv"] += count * k * n / rate
        per_layer[precision] = times
    # Attention stays fp32 in both forms: q.k and p.v, each L x L x d per head.
    length = int(np.median(lengths))
    rows = max(1, ROWS // length)
    q = rng.standard_normal((rows, heads, length, head_size)).astype(np.float32)
    k = rng.standard_normal((rows, heads, head_size, length)).astype(np.float32)
    attention_macs = rows * heads * length * length * head_size
    attention = _rate(_attention_model(), {"q": q, "k": k}, attention_macs, threads, seconds)
    result["attention_gmac_s"] = attention / 1e9
    result["weight_macs_per_token"] = sum(
        layers * count * k * n for count, k, n in projection_shapes(config)
    )
    result["attention_macs_per_pair_per_l2"] = 2 * layers * config["hidden_size"]
    for precision, times in per_layer.items():
        attended = [2 * layers * heads * n * n * head_size / attention for n in lengths]
        # The answer reads only [CLS]: past the last layer's q/k/v, one row per pair.
        answer = sum(
            n * ((layers - 1) * times["all"] + times["qkv"]) + times["all"] - times["qkv"] + a
            for n, a in zip(lengths, attended)
        )
        full = sum(n * layers * times["all"] + a for n, a in zip(lengths, attended))
        result[f"{precision}_pairs_s"] = len(lengths) / answer
        result[f"{precision}_full_encoder_pairs_s"] = len(lengths) / full
    return result


def report(ceiling: dict) -> str:
    kernels = ", ".join(
        f"{k['precision']} {k['k']}x{k['n']} {k['gmac_s']:.0f}" for k in ceiling["kernels"]
    )
    return (
        f"ceiling ({ceiling['threads']} threads): fp32 {ceiling['fp32_pairs_s']:.1f} pairs/s, "
        f"int8 {ceiling['int8_pairs_s']:.1f} pairs/s at zero padding (every token through "
        f"every layer: fp32 {ceiling['fp32_full_encoder_pairs_s']:.1f}, "
        f"int8 {ceiling['int8_full_encoder_pairs_s']:.1f}; "
        f"{ceiling['weight_macs_per_token'] / 1e6:.1f} M weight MACs per token; GMAC/s: "
        f"{kernels}; attention {ceiling['attention_gmac_s']:.0f})"
    )


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import DEFAULT_PAIRS, ensure_model, pair_lengths

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--model", help="model folder [default: full-size random checkpoint]")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = ensure_model(args.model)
    config = json.loads((model / "config.json").read_text())
    lengths = pair_lengths(model, args.pairs, args.count)
    print(report(measure(config, lengths, args.threads)))


if __name__ == "__main__":
    main()
