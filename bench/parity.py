"""Answers on a trained model: squeezenli fp32 against transformers, int8 against fp32, and a
pair's scores alone against in a stream, over the MNLI benchmark sample, through the task
path every interface uses (score_records with PairOptions). Prints the figures as one JSON
object, with the CPU they came from and how the predictions spread over the classes (a
stand-in whose answers are all one class hides every flip).

    python scripts/make_trained_standin.py
    python bench/parity.py ~/.cache/squeezenli-dev/trained \
        --label-order neutral,contradiction,entailment

Needs the reference extra (torch, transformers) for the transformers side.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_PAIRS  # noqa: E402


def cpu_name() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line), "?"
    )
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    kind = "avx512_vnni" if "avx512_vnni" in flags.split() else "avx2 (no VNNI)"
    return f"{model}, {kind}"


def squeezenli_probs(model: str, rows: list[dict], precision: str, order: str | None) -> tuple:
    """(probabilities [pairs, classes] in the model's label order, class names, predictions)."""
    from squeezenli.records.readers import Record
    from squeezenli.runtime.model import load_model
    from squeezenli.tasks.options import PairOptions
    from squeezenli.tasks.scoring import score_records

    nli = load_model(model, precision=precision, label_order=order, progress=False)
    records = [Record("<bench>", n, row) for n, row in enumerate(rows, 1)]
    names = list(nli.labels.names)
    probs, labels = [], []
    for result in score_records(nli, records, PairOptions(), on_error="fail"):
        assert result.output is not None
        probs.append([result.output.scores[name] for name in names])
        labels.append(result.output.label)
    alone = [
        next(iter(score_records(nli, [record], PairOptions(), on_error="fail"))).output
        for record in records[:200]
    ]
    alone_diff = max(
        abs(one.scores[name] - probs[i][j])
        for i, one in enumerate(alone)
        for j, name in enumerate(names)
    )
    return np.array(probs), names, labels, alone_diff, nli.max_length


def transformers_probs(model: str, rows: list[dict], max_length: int) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(model)
    reference = AutoModelForSequenceClassification.from_pretrained(model).eval()
    found = []
    with torch.no_grad():
        for at in range(0, len(rows), 32):
            part = rows[at : at + 32]
            encoded = tokenizer(
                [r["premise"] for r in part],
                [r["hypothesis"] for r in part],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            found.append(torch.softmax(reference(**encoded).logits, -1).numpy())
    return np.concatenate(found)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--label-order", default=None)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.pairs.read_text().splitlines() if line.strip()]
    rows = [
        {"premise": r["premise"], "hypothesis": r["hypothesis"], "label": r["label"]} for r in rows
    ][: args.count]
    gold = [r["label"] for r in rows]
    fp32, names, fp32_labels, fp32_alone, max_length = squeezenli_probs(
        args.model, rows, "fp32", args.label_order
    )
    int8, _, int8_labels, int8_alone, _ = squeezenli_probs(
        args.model, rows, "int8", args.label_order
    )
    reference = transformers_probs(args.model, rows, max_length)
    reference_labels = [names[i] for i in reference.argmax(-1)]
    report = {
        "model": args.model,
        "cpu": cpu_name(),
        "pairs": len(rows),
        "classes": names,
        "fp32_predictions": dict(Counter(fp32_labels)),
        "fp32_vs_transformers_max_abs_prob": float(np.abs(fp32 - reference).max()),
        "fp32_vs_transformers_label_agreement": float(
            np.mean([a == b for a, b in zip(fp32_labels, reference_labels)])
        ),
        "int8_vs_fp32_label_agreement": float(
            np.mean([a == b for a, b in zip(int8_labels, fp32_labels)])
        ),
        "int8_vs_fp32_max_abs_prob": float(np.abs(int8 - fp32).max()),
        "alone_vs_stream_max_abs_prob": {"fp32": fp32_alone, "int8": int8_alone},
        "accuracy": {
            "fp32": float(np.mean([a == b for a, b in zip(fp32_labels, gold)])),
            "int8": float(np.mean([a == b for a, b in zip(int8_labels, gold)])),
            "transformers": float(np.mean([a == b for a, b in zip(reference_labels, gold)])),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
