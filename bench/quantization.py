"""int8 schemes against fp32 on real MNLI pairs: agreement, batch dependence and speed.

Compares, on one model folder and in one process (2 threads): fp32; onnxruntime's dynamic
quantization with one activation scale per tensor (squeezenli's int8 before per-row scales,
built here from the same fp32 model); and squeezenli's int8 (per-row activation scales,
per-channel weights: squeezenli/quantize.py). For each int8: label agreement and largest
probability difference against fp32 over the pairs, and how far a pair's probabilities move
when it is scored alone or in reversed order instead of in its batch.

    python scripts/make_fullsize_checkpoint.py && python scripts/make_minilm_standin.py
    python bench/quantization.py ~/.cache/squeezenli-dev/fullsize ~/.cache/squeezenli-dev/minilm
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from squeezenli.models.build import ensure_onnx
from squeezenli.models.hub import resolve
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--count", type=int, default=1000, help="pairs to score")
    parser.add_argument("--alone", type=int, default=200, help="pairs also scored one by one")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()[: args.count]]
    pairs = [(r["premise"], r["hypothesis"]) for r in rows]
    for folder in args.models:
        nli = load_model(str(folder), precision="fp32", progress=False)
        tokenizer = nli.engine.tokenizer
        files = resolve(str(folder))
        with tempfile.TemporaryDirectory() as tmp:
            variants = {
                "fp32": ensure_onnx(files, "fp32"),
                "int8 per-tensor (before)": per_tensor_int8(
                    ensure_onnx(files, "fp32"), Path(tmp) / "per-tensor.onnx"
                ),
                "int8 per-row (now)": ensure_onnx(files, "int8"),
            }
            print(f"\n{folder} ({len(pairs)} MNLI dev-mismatched pairs, {args.threads} threads)")
            reference = None
            for name, path in variants.items():
                engine = Engine(create_session(path), tokenizer, threads=args.threads)
                engine.logits(pairs[:64])  # warm up
                start = time.perf_counter()
                probs = softmax(engine.logits(pairs))
                rate = len(pairs) / (time.perf_counter() - start)
                alone = softmax(np.concatenate([engine.logits([p]) for p in pairs[: args.alone]]))
                backwards = softmax(engine.logits(pairs[::-1]))[::-1]
                moved = max(
                    np.abs(alone - probs[: args.alone]).max(), np.abs(backwards - probs).max()
                )
                flips = int((alone.argmax(1) != probs[: args.alone].argmax(1)).sum())
                line = f"  {name:26s} {rate:6.1f} pairs/s"
                if reference is None:
                    reference = probs
                else:
                    agree = (probs.argmax(1) == reference.argmax(1)).mean()
                    diff = np.abs(probs - reference).max()
                    line += f" | labels agree with fp32 {agree:.1%}, largest difference {diff:.3f}"
                line += f" | alone or reversed: moves {moved:.1e}, {flips} labels change"
                print(line, flush=True)


if __name__ == "__main__":
    main()
