"""int8 schemes against fp32 on real MNLI pairs: agreement, batch dependence, exactness, speed.

Compares, on one model folder and in one process: fp32; onnxruntime's dynamic quantization
with one activation scale per tensor (squeezenli's int8 before per-row scales); squeezenli's
per-row int8 in each Int8Range (quantize.py): 8-bit codes and weights as before v3, run with
onnxruntime's default kernels and with its exact u8u8 ones (what squeezenli ran on CPUs
without VNNI), 7-bit weights (what ships) and 7-bit activations. For each: pairs/s (wall)
and CPU seconds over the pairs (median of --rounds, variants interleaved), label agreement
and largest probability difference against fp32, whether its logits are the same bits as
the exact kernels give (what VNNI computes; 8-bit codes differ on CPUs without VNNI), and
how far a pair's probabilities move when scored alone or in reversed order. It names the
CPU it ran on: int8 speed depends on it.

    python scripts/make_fullsize_checkpoint.py && python scripts/make_minilm_standin.py
    python bench/quantization.py ~/.cache/squeezenli-dev/fullsize ~/.cache/squeezenli-dev/minilm
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from squeezenli.models.build import ensure_onnx
from squeezenli.models.hub import resolve
from squeezenli.models.int8_kernels import cpu_name, needs_exact_kernels, settings
from squeezenli.runtime.engine import Engine, create_session, softmax
from squeezenli.runtime.model import load_model

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT.parent / "shared" / "data" / "mnli_dev_mismatched_sample.jsonl"


def per_tensor_int8(fp32: Path, target: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(
        str(fp32),
        str(target),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"MatMulConstBOnly": True},
    )
    return target


def variants(folder: Path, tmp: Path) -> dict[str, tuple[Path, bool]]:
    """name -> (model, whether it runs onnxruntime's exact u8u8 kernels)."""
    from squeezenli.models.quantize import DEFAULT_RANGE, Int8Range, quantize_file

    files = resolve(str(folder))
    fp32 = ensure_onnx(files, "fp32")
    built = {"fp32": (fp32, False)}
    built["int8 per-tensor (v1)"] = (per_tensor_int8(fp32, tmp / "per-tensor.onnx"), False)
    for int8_range in Int8Range:
        path = tmp / f"{int8_range.name}.onnx"
        quantize_file(fp32, path, int8_range)
        shipped = " (ships)" if int8_range is DEFAULT_RANGE else ""
        built[f"int8 {int8_range.name}{shipped}"] = (path, False)
        if int8_range is Int8Range.FULL:
            built["int8 FULL, exact kernels (v2)"] = (path, True)
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--pairs", type=Path, default=PAIRS, help="JSON lines with pairs")
    parser.add_argument("--count", type=int, default=1000, help="pairs to score")
    parser.add_argument("--alone", type=int, default=200, help="pairs also scored one by one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the pairs")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.pairs.read_text().splitlines()[: args.count]]
    pairs = [(r["premise"], r["hypothesis"]) for r in rows]
    print(f"CPU: {cpu_name()}; needs exact kernels for 8-bit codes: {needs_exact_kernels()}")
    for folder in args.models:
        tokenizer = load_model(str(folder), precision="fp32", progress=False).engine.tokenizer
        with tempfile.TemporaryDirectory() as tmp:
            built = variants(folder, Path(tmp))
            engines = {
                name: Engine(
                    create_session(path, settings=settings(exact)), tokenizer, threads=args.threads
                )
                for name, (path, exact) in built.items()
            }
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in engines}
            probs: dict[str, np.ndarray] = {}
            for engine in engines.values():
                engine.logits(pairs[:64])  # warm up
            for _ in range(args.rounds):
                for name, engine in engines.items():
                    cpu, wall = time.process_time(), time.perf_counter()
                    probs[name] = softmax(engine.logits(pairs))
                    times[name].append((time.process_time() - cpu, time.perf_counter() - wall))
            print(f"\n{folder} ({len(pairs)} pairs of {args.pairs.name}, {args.threads} threads)")
            reference = probs["fp32"]
            for name, engine in engines.items():
                cpu = statistics.median(c for c, _ in times[name])
                rate = len(pairs) / statistics.median(w for _, w in times[name])
                line = f"  {name:30s} {rate:6.1f} pairs/s {cpu:6.2f} CPU s"
                if name != "fp32":
                    agree = (probs[name].argmax(1) == reference.argmax(1)).mean()
                    diff = np.abs(probs[name] - reference).max()
                    line += f" | labels agree with fp32 {agree:.1%}, largest difference {diff:.3f}"
                alone = softmax(np.concatenate([engine.logits([p]) for p in pairs[: args.alone]]))
                backwards = softmax(engine.logits(pairs[::-1]))[::-1]
                moved = max(
                    np.abs(alone - probs[name][: args.alone]).max(),
                    np.abs(backwards - probs[name]).max(),
                )
                flips = int((alone.argmax(1) != probs[name][: args.alone].argmax(1)).sum())
                line += f" | alone or reversed: moves {moved:.1e}, {flips} labels change"
                print(line, flush=True)
            _bits_equal_to_exact(built, engines, tokenizer, pairs[: args.alone])


def _bits_equal_to_exact(built, engines, tokenizer, pairs) -> None:
    """Each int8 range on the default kernels against the same model on the exact ones."""
    for name, (path, exact) in built.items():
        if exact or not name.startswith("int8 ") or "per-tensor" in name:
            continue
        exact_engine = Engine(create_session(path, settings=settings(True)), tokenizer)
        same = np.array_equal(engines[name].logits(pairs), exact_engine.logits(pairs))
        print(f"  {name}: default kernels give the exact kernels' bits: {same}")


if __name__ == "__main__":
    main()
