"""Long documents, read truncated and read in windows, on the factual-consistency sets (not a
test).

    python bench/factual.py [--model DIR] [--rows 100] [--sets frank,wice] [--data DIR]

For each file of ../shared/data/factual/ (document, claim, consistent/inconsistent label):
how much of each document the model reads truncated at its length (median share of the
document's tokens), then `squeezenli batch --long-input truncate` and `--long-input chunk`
on the first --rows rows, each in a fresh process: windows per row, pairs scored, rows/s,
peak memory (wait4), and the balanced accuracy and ROC AUC of the entailment probability
against the gold label (the best threshold on these rows is printed too). Default model:
the full-size random checkpoint (bench/run.py): its weights are random, so the accuracy
figures mean nothing here; rows, windows, speed and memory are what it measures. Rows that
fail (a claim too long to leave room for a window: `check` splits such texts into sentences)
are counted, and rows/s includes each run's start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from squeezenli.tasks.evaluation import best_threshold, roc_auc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_rows import cpu_name  # noqa: E402
from run import ROOT, ensure_model, measure_rss  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--precision", default="fp32")
    # The full-size stand-in's config names LABEL_0..2, as the real model's does.
    parser.add_argument("--label-order", default="contradiction,entailment,neutral")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "factual")
    parser.add_argument("--sets", help="comma-separated file names without .jsonl [default: all]")
    args = parser.parse_args()
    model = ensure_model(args.model)
    from squeezenli import load_model

    nli = load_model(
        str(model), precision=args.precision, label_order=args.label_order, progress=False
    )
    tokenizer = nli.engine.tokenizer
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; model {model} ({args.precision}, random weights)")
    print(
        "| set | rows | read truncated | mode | failed | windows/row | pairs | rows/s | peak MiB "
        "| bal. acc. | ROC AUC | best t |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    base = [sys.executable, "-m", "squeezenli", "batch", "-m", str(model), "-q"]
    base += ["--precision", args.precision, "--label-order", args.label_order]
    base += ["--premise-field", "document"]
    base += ["--hypothesis-field", "claim"]
    wanted = set(args.sets.split(",")) if args.sets else None
    for path in sorted(args.data.glob("*.jsonl")):
        if wanted is not None and path.stem not in wanted:
            continue
        rows = [json.loads(line) for line in path.open()][: args.rows]
        read = []
        for row in rows:
            doc = len(tokenizer.tokens(row["document"]).ids)
            claim = len(tokenizer.tokens(row["claim"]).ids)
            room = nli.max_length - tokenizer.special_count - min(claim, nli.max_length // 2)
            read.append(min(1.0, room / max(doc, 1)))
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / path.name
            keep = ("document", "claim", "label")
            source.write_text("".join(json.dumps({k: r[k] for k in keep}) + "\n" for r in rows))
            for mode in ("truncate", "chunk"):
                command = [*base, "--long-input", mode, "--on-error", "skip", str(source)]
                run = measure_rss(command, dict(os.environ), ok=(0, 1))
                out = [json.loads(line) for line in run.out.splitlines()]
                positive = np.array([row["label"] == "consistent" for row in out])
                windows = [r.get("windows", 1) for r in out]
                scores = np.array([r["scores"]["entailment"] for r in out])
                balanced, threshold = best_threshold(scores, positive)
                auc = roc_auc(scores, positive) or float("nan")
                print(
                    f"| {path.stem} | {len(rows)} | {np.median(read):.0%} | {mode} "
                    f"| {len(rows) - len(out)} "
                    f"| {np.mean(windows):.1f} | {sum(windows)} | {len(rows) / run.wall:.1f} "
                    f"| {run.peak_mib:.0f} | {balanced:.3f} | {auc:.3f} "
                    f"| {threshold:.3f} |"
                )


if __name__ == "__main__":
    main()
