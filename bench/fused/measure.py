"""What two fused kernels would give squeezenli's int8 (an experiment, not a test).

    python bench/fused/measure.py --include DIR [--model DIR] [--count 400] [--rounds 6]

DIR holds onnxruntime's C API header (onnxruntime_c_api.h and the headers it includes, as
onnxruntime's release archives ship them under include/). The script compiles fused_ops.cc
(g++, AVX-512), rewrites the int8 build of the model (default: the full-size stand-in) so that
each row quantization is one RowQuantize and each row scale with its bias one ScaleBias, and
scores the same length-sorted batches of real MNLI pairs on both graphs, one thread each,
interleaved: it prints the largest logit difference (0.0: the same bits) and pairs per second
per core (thread CPU time, best round), so the machine's drift touches both alike.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from run import DEFAULT_PAIRS, ensure_model  # noqa: E402

DOMAIN = "squeezenli.fused"


def build_library(include: Path, folder: Path) -> Path:
    library = folder / "libfused.so"
    subprocess.run(
        ["g++", "-O3", "-march=native", "-ffp-contract=off", "-fPIC", "-shared"]
        + [f"-I{include}", "-o", str(library), str(HERE / "fused_ops.cc")],
        check=True,
    )
    return library


def fuse(source: Path, target: Path) -> tuple[int, int]:
    """The int8 graph with its row quantizations and scale-and-bias pairs fused (quantize.py
    names the tensors it adds after their input: x_abs, x_peak, ..., x_q, x_rows)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    graph = model.graph
    constants = {i.name: i for i in graph.initializer}
    producer = {n.output[0]: n for n in graph.node}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    dropped: set[int] = set()
    replaced: dict[int, object] = {}
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or not node.output[0].endswith("_q"):
            continue
        x = node.input[0]
        chain = [f"{x}_{part}" for part in ("abs", "peak", "pos", "s", "n", "z", "rows")]
        if all(name in producer for name in chain):
            dropped.update(id(producer[name]) for name in chain)
            replaced[id(node)] = helper.make_node(
                "RowQuantize", [x], [f"{x}_q", f"{x}_rows"], domain=DOMAIN
            )
    quantized = len(replaced)
    for node in graph.node:
        if node.op_type != "Mul" or not node.input[1].endswith("_rows"):
            continue
        users = readers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add":
            continue
        add = users[0]
        bias = [name for name in add.input if name != node.output[0]]
        if len(bias) == 1 and bias[0] in constants and len(constants[bias[0]].dims) == 1:
            dropped.update((id(node), id(add)))
            replaced[id(add)] = helper.make_node(
                "ScaleBias", [node.input[0], node.input[1], bias[0]], [add.output[0]], domain=DOMAIN
            )
    nodes = [
        replaced.get(id(n), n) for n in graph.node if id(n) in replaced or id(n) not in dropped
    ]
    del graph.node[:]
    graph.node.extend(nodes)
    model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    onnx.save(model, str(target))
    return quantized, len(replaced) - quantized


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--include", type=Path, required=True, help="onnxruntime's C headers")
    parser.add_argument("--model", help="model folder [default: full-size random checkpoint]")
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    import onnxruntime as ort

    from squeezenli import load_model
    from squeezenli.models.build import ensure_onnx

    work = Path(tempfile.mkdtemp(prefix="squeezenli-fused-"))
    library = build_library(args.include, work)
    nli = load_model(str(ensure_model(args.model)), precision="int8", threads=1)
    fused = work / "fused-int8.onnx"
    built = ensure_onnx(nli.files, "int8")  # the plain graph (runs open its optimized copy)
    quantizations, scales = fuse(built, fused)
    print(f"fused {quantizations} row quantizations and {scales} scale-and-bias pairs")
    with open(args.pairs, "rb") as f:
        rows = [json.loads(line) for line in f if line.strip()][: args.count]
    engine = nli.engine
    encodings = engine.tokenizer.encode([(r["premise"], r["hypothesis"]) for r in rows])
    lengths = [len(e.ids) for e in encodings]
    batches = [engine.feeds([encodings[i] for i in b]) for b in engine.batches(lengths)]

    def session(path: Path, custom: bool):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        if custom:
            options.register_custom_ops_library(str(library))
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    systems = {"stock int8": session(built, False), "fused int8": session(fused, True)}
    logits = {
        name: np.concatenate([s.run(["logits"], b)[0] for b in batches])
        for name, s in systems.items()
    }
    difference = float(np.abs(logits["fused int8"] - logits["stock int8"]).max())
    print(f"largest logit difference, fused against stock: {difference}")
    best = dict.fromkeys(systems, float("inf"))
    for _ in range(args.rounds):
        for name, s in systems.items():
            started = time.thread_time()
            for batch in batches:
                s.run(["logits"], batch)
            best[name] = min(best[name], time.thread_time() - started)
    for name, seconds in best.items():
        print(f"{name}: {len(rows) / seconds:.1f} pairs/s per core")


if __name__ == "__main__":
    main()
