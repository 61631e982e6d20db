"""int8 on a CPU without VNNI, from a machine with it: onnxruntime's real AVX2 kernels under
qemu-user, against this machine's, bit for bit (not a test: it needs qemu, and takes minutes).

    apt-get install qemu-user
    python bench/avx2_bits.py ~/.cache/squeezenli-dev/minilm [--cpu Haswell] [--count 16]

For each int8 range (squeezenli/models/quantize.py) it quantizes the model's fp32 build and
scores the first pairs of the benchmark sample with onnxruntime's default kernels and with
its exact ones (session.x64quantprecision), here and in a child process that qemu runs as an
AVX2 CPU (Haswell: no AVX-512, no VNNI), where onnxruntime picks its u8s8 AVX2 kernels. The
exact kernels give the same bits on both; a range whose pairs of products fit in int16 gives
those bits on the default kernels too, the 8-bit FULL range does not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT.parent / "shared" / "data" / "mnli_dev_mismatched_sample.jsonl"


def score(folder: str, models: str, count: int, out: str) -> None:
    """In this process: logits of every int8 range on both kernel settings, saved to out."""
    from squeezenli.models.int8_kernels import cpu_name, needs_exact_kernels, settings
    from squeezenli.runtime.engine import Engine, create_session
    from squeezenli.runtime.model import load_model

    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()[:count]]
    pairs = [(r["premise"], r["hypothesis"]) for r in rows]
    tokenizer = load_model(folder, precision="fp32", progress=False).engine.tokenizer
    found = {"cpu": cpu_name(), "needs_exact": needs_exact_kernels()}
    for path in sorted(Path(models).glob("*.onnx")):
        for exact in (False, True):
            session = create_session(path, settings=settings(exact))
            found[f"{path.stem} {'exact' if exact else 'default'}"] = (
                Engine(session, tokenizer, threads=1).logits(pairs).tolist()
            )
    Path(out).write_text(json.dumps(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--cpu", default="Haswell", help="qemu's CPU model (no VNNI)")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--score", nargs=2, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args()
    if args.score:
        score(str(args.model), args.score[0], args.count, args.score[1])
        return
    import onnx

    from squeezenli.models.build import ensure_onnx
    from squeezenli.models.hub import resolve
    from squeezenli.models.quantize import Int8Range, quantize_model

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = ensure_onnx(resolve(str(args.model)), "fp32")
        onnx.save_model(onnx.load(str(fp32)), f"{tmp}/fp32.onnx")  # its kernels differ too
        for int8_range in Int8Range:
            model = quantize_model(onnx.load(str(fp32)), int8_range)
            onnx.save_model(model, f"{tmp}/{int8_range.name}.onnx")
        runs = {}
        for where, prefix in (("here", []), (f"qemu -cpu {args.cpu}", ["qemu-x86_64", "-cpu"])):
            command = [*prefix, *([args.cpu] if prefix else []), sys.executable, __file__]
            out = f"{tmp}/{len(runs)}.json"
            command += [str(args.model), "--count", str(args.count), "--score", tmp, out]
            subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
            runs[where] = json.loads(Path(out).read_text())
        here, there = runs.values()
        print(f"here: {here.pop('cpu')}; under qemu: {there.pop('cpu')}")
        print(
            f"exact kernels needed for 8-bit codes: {here.pop('needs_exact')} here, "
            f"{there.pop('needs_exact')} under qemu; {args.count} pairs of {args.model}"
        )
        reference = {k: np.array(v) for k, v in here.items()}
        for name, logits in there.items():
            logits = np.array(logits)
            exact = reference[name.replace("default", "exact")]
            moved = np.abs(logits - exact).max()
            own = np.abs(reference[name] - exact).max()
            print(
                f"  {name:24s} under qemu: largest logit difference from the exact kernels here "
                f"{moved:.3g} (the same setting here: {own:.3g})"
            )


if __name__ == "__main__":
    main()
