"""int8 recipes against fp32 on one model: which MatMuls hurt, and what keeping them, fixed
calibrated scales or bf16 would buy (not a test; prints figures).

    python bench/int8_recipes.py ~/.cache/squeezenli-dev/trained [--rounds 3]

Recipes, each against fp32 on the package's 512 calibration pairs (what auto measures, and
needs 99.5% of labels and a largest probability difference of 0.05 on) and on `--count`
held-out MNLI pairs of ../shared/data:
- shipped: quantize.py as it ships (per-row activation scales, per-channel weights);
- each role kept fp32 in every layer (the query/key/value, attention output, feed-forward in
  and out MatMuls), then each (layer, role) kept alone: how many labels each one flips;
- greedy: the (layer, role)s kept fp32 one by one, the one that flips the most first, until
  the calibration agreement passes;
- static: one activation scale per MatMul input, fixed by calibration on the calibration
  pairs (their largest magnitude, or the 99.9th percentile of each row's), as a static QDQ
  model would;
- smoothquant: each MatMul's input channels scaled down and its weight rows up by
  calibrated per-channel factors (`--alphas`), then quantized as shipped;
- bf16: whether onnxruntime's CPU provider runs a bf16 MatMul at all.
With --fit-half, everything fitted (scales, the cells kept) is fitted and checked on the
first 256 calibration pairs, and the other 256 join the held-out pairs: the honest form of a
recipe that auto would fit on the user's weights. For the recipes that could ship it prints
pairs/s against fp32 (interleaved rounds, `--threads`), the model's size, and how far a
pair's probabilities move scored alone instead of in its batch (auto refuses anything above
1e-6). It names the CPU: int8 speed depends on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from squeezenli.models.build import ensure_onnx
from squeezenli.models.hub import resolve
from squeezenli.models.int8_kernels import cpu_name, settings
from squeezenli.models.quantize import _load_with_data, quantize_model
from squeezenli.runtime.engine import Engine, create_session, softmax
from squeezenli.runtime.model import load_model
from squeezenli.runtime.precision import MAX_DIFFERENCE, MIN_AGREEMENT, calibration_pairs

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT.parent / "shared" / "data" / "mnli_dev_mismatched_sample.jsonl"
ROLES = ("qkv", "attn_out", "ffn_in", "ffn_out")


def matmuls(model) -> list[tuple[str, str, str, int]]:
    """(weight, input, role, layer) of each MatMul with a constant weight, in graph order.
    The role is read off the weight: the converter names the fused query/key/value weight
    w_qkv_*; of the others, the feed-forward widens (in) or narrows (out) the channels and
    the attention output keeps them."""
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer if len(i.dims) == 2}
    found, layer, last = [], -1, ""
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in shapes:
            continue
        k, n = shapes[node.input[1]]
        if "qkv" in node.input[1]:
            role = "qkv"
            layer += last != "qkv"
        else:
            role = "ffn_in" if n > k else "ffn_out" if k > n else "attn_out"
        found.append((node.input[1], node.input[0], role, layer))
        last = role
    return found


class Scorer:
    """Sessions of model variants over one tokenizer, and the fp32 answers to compare."""

    def __init__(self, folder: Path, threads: int, held_out: list, fit_half: bool = False) -> None:
        files = resolve(str(folder))
        self.fp32_path = ensure_onnx(files, "fp32")
        self.fp32 = _load_with_data(self.fp32_path)
        self.tokenizer = load_model(str(folder), precision="fp32", progress=False).engine.tokenizer
        self.threads = threads
        fitting = calibration_pairs()
        if fit_half:  # fit on one half, and hold the other half out with the rest
            half = len(fitting) // 2
            fitting, held_out = fitting[:half], fitting[half:] + held_out
        self.sets = {"calibration": fitting, "held out": held_out}
        self.tmp = Path(tempfile.mkdtemp(prefix="squeezenli-recipes-"))
        self.reference = self.probs(self.engine(self.fp32))

    def engine(self, model) -> Engine:
        path = self.tmp / "variant.onnx"
        onnx.save_model(model, str(path))
        session = create_session(path, settings=settings(False))
        return Engine(session, self.tokenizer, threads=self.threads)

    def probs(self, engine: Engine, which: str | None = None) -> dict[str, np.ndarray] | np.ndarray:
        if which is not None:
            return softmax(engine.logits(self.sets[which]))
        return {name: softmax(engine.logits(pairs)) for name, pairs in self.sets.items()}

    def agreement(self, probs: np.ndarray, which: str) -> tuple[float, float]:
        reference = self.reference[which]
        labels = float((probs.argmax(1) == reference.argmax(1)).mean())
        return labels, float(np.abs(probs - reference).max())

    def variant(self, keep: frozenset[str] = frozenset(), scales: dict | None = None):
        return quantize_model(_copy(self.fp32), keep=keep, scales=scales)


def _copy(model):
    copied = onnx.ModelProto()
    copied.CopyFrom(model)
    return copied


def activation_peaks(scorer: Scorer, inputs: list[str]) -> dict[str, tuple]:
    """Per MatMul input, over the calibration pairs' real tokens (fp32 activations): each
    token row's largest magnitude, and each channel's."""
    import onnxruntime as ort

    model = _copy(scorer.fp32)
    for name in inputs:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    path = scorer.tmp / "probe.onnx"
    onnx.save_model(model, str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    engine = Engine(session, scorer.tokenizer, threads=1)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in inputs}
    channels: dict[str, np.ndarray] = {}
    pairs = scorer.sets["calibration"]
    for start in range(0, len(pairs), 32):
        feeds = engine.feeds(engine.encode(pairs[start : start + 32]))
        mask = feeds["attention_mask"].reshape(-1).astype(bool)
        for name, values in zip(inputs, session.run(inputs, feeds)):
            matrix = np.abs(values.reshape(-1, values.shape[-1]))
            if matrix.shape[0] == mask.shape[0]:  # the last layer keeps [CLS] rows only
                matrix = matrix[mask]
            rows[name].append(matrix.max(axis=1))
            peak = matrix.max(axis=0)
            channels[name] = np.maximum(channels.get(name, peak), peak)
    return {name: (np.concatenate(rows[name]), channels[name]) for name in inputs}


def static_scales(peaks: dict[str, tuple], percentile: float | None) -> dict[str, float]:
    """One scale per MatMul input: its largest magnitude, or that percentile of its rows'."""
    return {
        name: float(found.max() if percentile is None else np.percentile(found, percentile))
        for name, (found, _) in peaks.items()
    }


def smoothed(model, peaks: dict[str, tuple], alpha: float):
    """SmoothQuant (Xiao et al. 2023): each MatMul's input channels divided by
    s_c = max|x_c|^alpha / max|W_c|^(1 - alpha) and its weight rows multiplied by it, the
    same product in fp32 with the activations' outlier channels tamed before quantization
    (a Mul per MatMul input; the scales are fixed, so a row still depends on itself alone)."""
    from onnx import helper, numpy_helper

    model = _copy(model)
    initializers = {i.name: i for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        x, name = (node.input[0], node.input[1]) if node.op_type == "MatMul" else ("", "")
        if name in initializers and x in peaks and len(initializers[name].dims) == 2:
            w = numpy_helper.to_array(initializers[name]).astype(np.float32)
            a = peaks[x][1].astype(np.float64)
            scale = a**alpha / np.maximum(np.abs(w).max(axis=1), 1e-8) ** (1 - alpha)
            scale = np.where(a > 0, np.clip(scale, 1e-4, 1e4), 1.0)
            initializers[name].CopyFrom(
                numpy_helper.from_array((w * scale[:, None]).astype(np.float32), name)
            )
            inverse = f"{name}_smooth"
            model.graph.initializer.append(
                numpy_helper.from_array((1 / scale).astype(np.float32), inverse)
            )
            nodes.append(helper.make_node("Mul", [x, inverse], [f"{x}_{inverse}"]))
            node.input[0] = f"{x}_{inverse}"
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def greedy(scorer: Scorer, found: list, base: float, show: bool) -> tuple[frozenset[str], list]:
    """The (layer, role) cells kept fp32 one by one, the one whose keeping alone raises the
    calibration agreement most first, until the agreement passes (or all are kept)."""
    cells = {(layer, role) for *_, role, layer in found}
    gains: dict[tuple[int, str], float] = {}
    for layer, role in sorted(cells):
        keep = frozenset(w for w, _, r, lay in found if r == role and lay == layer)
        probs = scorer.probs(scorer.engine(scorer.variant(keep)), "calibration")
        gains[(layer, role)] = scorer.agreement(probs, "calibration")[0] - base
        if show:
            print(f"    layer {layer:2d} {role:9s} kept: {gains[(layer, role)]:+.1%}", flush=True)
    keep_set: frozenset[str] = frozenset()
    kept: list[str] = []
    for layer, role in sorted(gains, key=lambda cell: -gains[cell]):
        keep_set |= {w for w, _, r, lay in found if r == role and lay == layer}
        kept.append(f"{layer}:{role}")
        probs = scorer.probs(scorer.engine(scorer.variant(keep_set)), "calibration")
        labels, diff = scorer.agreement(probs, "calibration")
        if labels >= MIN_AGREEMENT and diff <= MAX_DIFFERENCE:
            break
    return keep_set, kept


def bf16_runs() -> str:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    a = helper.make_tensor_value_info("a", TensorProto.BFLOAT16, [4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [4, 4])
    cast = helper.make_node("Cast", ["w"], ["wb"], to=TensorProto.BFLOAT16)
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    graph = helper.make_graph(
        [cast, helper.make_node("MatMul", ["a", "wb"], ["y"])], "g", [a], [y], [w]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's NotImplemented
        return f"no: {str(err).splitlines()[0][:160]}"
    return "yes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--count", type=int, default=1000, help="held-out pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes for speed")
    parser.add_argument("--cells", action="store_true", help="also each (layer, role) alone")
    parser.add_argument(
        "--fit-half",
        action="store_true",
        help="fit and check on the first half of the calibration pairs; hold the rest out",
    )
    parser.add_argument(
        "--no-greedy", dest="greedy", action="store_false", help="skip the greedy keeping"
    )
    parser.add_argument("--alphas", type=float, nargs="*", default=[0.5, 0.75], help="SmoothQuant")
    args = parser.parse_args()
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()[: args.count]]
    held_out = [(r["premise"], r["hypothesis"]) for r in rows]
    scorer = Scorer(args.model, args.threads, held_out, args.fit_half)
    found = matmuls(scorer.fp32)
    layers = max(layer for *_, layer in found) + 1
    print(f"CPU: {cpu_name()}; {args.model}: {len(found)} MatMuls in {layers} layers")
    print(f"bf16 MatMul on onnxruntime's CPU provider: {bf16_runs()}")

    recipes: dict[str, tuple[frozenset[str], dict | None]] = {"shipped": (frozenset(), None)}
    smooth_models: dict = {}  # a recipe's own fp32 starting point, when it has one

    def report(name: str, keep: frozenset[str], scales: dict | None = None) -> float:
        probs = scorer.probs(scorer.engine(scorer.variant(keep, scales)))
        (cal, cal_diff), (held, held_diff) = (scorer.agreement(probs[w], w) for w in scorer.sets)
        passes = cal >= MIN_AGREEMENT and cal_diff <= MAX_DIFFERENCE
        print(
            f"  {name:34s} calibration {cal:6.1%} (largest {cal_diff:.3f})  held out "
            f"{held:6.1%} (largest {held_diff:.3f}){'  passes' if passes else ''}",
            flush=True,
        )
        return cal

    print("\nagreement with fp32 (labels; largest probability difference)")
    shipped = report("shipped", frozenset())
    for role in ROLES:
        keep = frozenset(w for w, _, r, _ in found if r == role)
        recipes[f"{role} kept fp32"] = (keep, None)
        report(f"{role} kept fp32 ({len(keep)} MatMuls)", keep)
    if args.greedy:
        keep_set, kept = greedy(scorer, found, shipped, args.cells)
        recipes["greedy"] = (keep_set, None)
        report(f"greedy: {len(kept)} cells kept ({len(keep_set) / len(found):.0%})", keep_set)
        print(f"    kept, most flips first: {', '.join(kept)}")
    inputs = sorted({x for _, x, _, _ in found})
    peaks = activation_peaks(scorer, inputs)
    for label, percentile in (("max", None), ("p99.9", 99.9)):
        scales = static_scales(peaks, percentile)
        recipes[f"static {label}"] = (frozenset(), scales)
        report(f"static scales ({label})", frozenset(), scales)
    fp32 = scorer.fp32
    for alpha in args.alphas:
        scorer.fp32 = smoothed(fp32, peaks, alpha)
        name = f"smoothquant a={alpha:g}"
        recipes[name] = (frozenset(), None)
        smooth_models[name] = scorer.fp32
        smooth_agreement = report(name, frozenset())
        if args.greedy and alpha == args.alphas[-1]:  # the last alpha, cells kept on top
            keep_set, kept = greedy(scorer, found, smooth_agreement, False)
            recipes[f"{name} + greedy"] = (keep_set, None)
            smooth_models[f"{name} + greedy"] = scorer.fp32
            report(f"{name} + greedy: {len(kept)} cells kept", keep_set)
            print(f"    kept, most flips first: {', '.join(kept)}")
    scorer.fp32 = fp32

    print(f"\nspeed ({len(held_out)} held-out pairs, {args.threads} threads), size, batch")
    engines = {"fp32": scorer.engine(scorer.fp32)}
    sizes = {"fp32": scorer.fp32.ByteSize()}
    for name, (keep, scales) in recipes.items():
        model = quantize_model(
            _copy(smooth_models.get(name, scorer.fp32)), keep=keep, scales=scales
        )
        sizes[name] = model.ByteSize()
        engines[name] = scorer.engine(model)
    times: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        engine.logits(held_out[:64])
    for _ in range(args.rounds):
        for name, engine in engines.items():
            started = time.perf_counter()
            engine.logits(held_out)
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["fp32"])
    for name, engine in engines.items():
        seconds = statistics.median(times[name])
        sample = held_out[:100]
        together = softmax(engine.logits(sample))
        alone = softmax(np.concatenate([engine.logits([pair]) for pair in sample]))
        print(
            f"  {name:26s} {len(held_out) / seconds:7.1f} pairs/s ({base / seconds:4.2f}x fp32)"
            f"  {sizes[name] / 1e6:6.1f} MB  alone vs batch {np.abs(alone - together).max():.1e}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
