"""One measured system, run in its own process by bench/run.py (not a test).

    python bench/child.py SYSTEM --model DIR --pairs FILE --threads N --probs OUT.npy

Prints one JSON line: pairs, real and padded token counts, load and scoring seconds. The
parent measures the process's wall time and peak memory, so start-up is included.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

STARTED = time.perf_counter()


def read_pairs(path: str) -> list[tuple[str, str]]:
    with open(path, "rb") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(r["premise"], r["hypothesis"]) for r in rows]


def padded_in_order(lengths: list[int], batch: int) -> int:
    """Tokens fed when batches are cut in input order and padded to their longest row."""
    return sum(
        max(lengths[i : i + batch]) * len(lengths[i : i + batch])
        for i in range(0, len(lengths), batch)
    )


def run_squeezenli(args, pairs):
    from squeezenli import load_model

    nli = load_model(args.model, precision=args.precision, threads=args.threads)
    loaded = time.perf_counter()
    probs = nli.probabilities(pairs)
    engine = nli.engine
    return probs, loaded, engine.real_tokens, engine.padded_tokens


def run_pipeline(args, pairs):
    import torch
    from transformers import pipeline

    torch.set_num_threads(args.threads)
    classifier = pipeline("text-classification", model=args.model, device=-1, top_k=None)
    loaded = time.perf_counter()
    inputs = [{"text": p, "text_pair": h} for p, h in pairs]
    results = classifier(inputs, batch_size=args.batch_size, truncation=True)
    import numpy as np

    labels = classifier.model.config.id2label
    probs = np.array(
        [
            [{d["label"]: d["score"] for d in row}[labels[i]] for i in range(len(labels))]
            for row in results
        ]
    )
    lengths = [
        len(e)
        for e in classifier.tokenizer(
            [p for p, _ in pairs], [h for _, h in pairs], truncation=True
        )["input_ids"]
    ]
    return probs, loaded, sum(lengths), padded_in_order(lengths, args.batch_size)


def run_plain_onnx(args, pairs):
    """onnxruntime on the graph torch.onnx exports from transformers (grouped Conv form),
    batched as the pipeline does: input order, padded to the longest in each batch."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(args.tokenizer)
    tokenizer.no_padding()
    tokenizer.enable_truncation(512)
    loaded = time.perf_counter()
    encodings = tokenizer.encode_batch(pairs)
    out = []
    for start in range(0, len(encodings), args.batch_size):
        chunk = encodings[start : start + args.batch_size]
        width = max(len(e.ids) for e in chunk)
        feeds = {
            name: np.zeros((len(chunk), width), np.int64)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        }
        for row, e in enumerate(chunk):
            feeds["input_ids"][row, : len(e.ids)] = e.ids
            feeds["attention_mask"][row, : len(e.ids)] = 1
            feeds["token_type_ids"][row, : len(e.ids)] = e.type_ids
        out.append(session.run(None, feeds)[0])
    logits = np.concatenate(out)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    lengths = [len(e.ids) for e in encodings]
    return (
        probs / probs.sum(1, keepdims=True),
        loaded,
        sum(lengths),
        padded_in_order(lengths, args.batch_size),
    )


def run_openvino(args, pairs):
    """OpenVINO on squeezenli's own fp32 graph, fed squeezenli's length-sorted batches, so
    only the runtime differs: fp32 with the f32 precision hint; int8 quantized statically by
    NNCF on the calibration pairs squeezenli ships (disjoint from the benchmark pairs), with
    OpenVINO's default precision for the rest (bf16 on CPUs that have it): its fastest."""
    import numpy as np
    import openvino as ov

    from squeezenli import load_model
    from squeezenli.models.build import ensure_onnx
    from squeezenli.runtime.precision import calibration_pairs

    nli = load_model(args.model, precision="fp32", threads=args.threads, progress=False)
    engine = nli.engine
    core = ov.Core()
    model = core.read_model(str(ensure_onnx(nli.files, "fp32")))  # the plain graph

    def feeds_of(chosen: list) -> list[tuple[list[int], dict]]:
        encoded = engine.tokenizer.encode(chosen)
        return [
            (batch, engine.feeds([encoded[i] for i in batch]))
            for batch in engine.batches([len(e.ids) for e in encoded])
        ]

    config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "THROUGHPUT"}
    if args.precision == "int8":
        import nncf

        calibration = [f for _, f in feeds_of(calibration_pairs())]
        model = nncf.quantize(
            model,
            nncf.Dataset(calibration),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calibration),
        )
    else:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = core.compile_model(model, "CPU", config)
    loaded = time.perf_counter()
    batches = feeds_of(pairs)
    logits = np.zeros((len(pairs), len(nli.labels.names)), np.float32)
    queue = ov.AsyncInferQueue(compiled)

    def done(request, index):
        logits[index] = request.get_output_tensor(0).data

    queue.set_callback(done)
    for batch, arrays in batches:
        queue.start_async(arrays, userdata=batch)
    queue.wait_all()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    real = sum(int(a["attention_mask"].sum()) for _, a in batches)
    padded = sum(a["input_ids"].size for _, a in batches)
    return probs / probs.sum(1, keepdims=True), loaded, real, padded


def export(args) -> None:
    """Write the model as torch.onnx exports it from transformers, and its tokenizer.json."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reference = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    sample = tokenizer(["A man plays."], ["A person."], return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(
        reference,
        tuple(sample[n] for n in names),
        args.onnx,
        input_names=names,
        output_names=["logits"],
        dynamic_axes={n: {0: "batch", 1: "length"} for n in names} | {"logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    tokenizer.save_pretrained(str(Path(args.tokenizer).parent))


SYSTEMS = {
    "squeezenli": run_squeezenli,
    "pipeline": run_pipeline,
    "plain-onnx": run_plain_onnx,
    "openvino": run_openvino,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=[*sorted(SYSTEMS), "export"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--onnx")
    parser.add_argument("--tokenizer")
    parser.add_argument("--probs")
    args = parser.parse_args()
    if args.system == "export":
        export(args)
        return
    pairs = read_pairs(args.pairs)
    probs, loaded, real, padded = SYSTEMS[args.system](args, pairs)
    done = time.perf_counter()
    if args.probs:
        import numpy as np

        np.save(args.probs, np.asarray(probs, dtype=np.float32))
    report = {
        "pairs": len(pairs),
        "real_tokens": int(real),
        "padded_tokens": int(padded),
        "load_s": loaded - STARTED,
        "score_s": done - loaded,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
