"""Write the ONNX stand-ins of the model families squeezenli runs from a repo's own export,
with their golden values (dev only: needs torch and transformers).

    pip install -e '.[test,reference]' && python tests/make_exports.py

Each family gets a tiny random model of its architecture, its head fitted on 256 real MNLI
pairs (../shared/data) so each logit varies with std 1.5 and its answers spread over every
class (scripts/make_fullsize_checkpoint.py's fit_classifier), a tokenizer made here from the
test sentences (byte-level BPE for RoBERTa and BART, a SentencePiece-style Unigram for
DeBERTa-v3, WordPiece for DistilBERT), the ONNX export a repo of that family ships (the
inputs optimum gives it: no token_type_ids) and the reference: transformers' ids, logits
and zero-shot pipeline output, with padding and with truncation at the model's own limit.
The default test run reads tests/fixtures/exports/ without torch (tests/test_exports.py).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "scripts"))

from make_fullsize_checkpoint import DEFAULT_PAIRS, fit_classifier, read_fit_pairs  # noqa: E402
from make_golden import PAIRS, ZERO_SHOT, encode, zero_shot_reference  # noqa: E402
from tinymodel import write_tiny_model  # noqa: E402

OUT = HERE / "fixtures" / "exports"
SEED = 5
# What tokenizer_config.json says when a tokenizer has no limit of its own (transformers'
# VERY_LARGE_INTEGER, int(1e30)): the model's position table must decide.
NO_LIMIT = 1000000000000000019884624838656
LONG_PAIR = [
    "The team won the match in extra time and the people of the city were happy, the sun was "
    "on the river and some boats were on the water all morning and all night long, again",
    "A child plays music with the band in the park, and the old man reads a book by the river "
    "while the dog runs and the cat sits on the red car in the street of the city today",
]

NLI3 = {"0": "contradiction", "1": "entailment", "2": "neutral"}  # cross-encoder/nli-*
NLI2 = {"0": "entailment", "1": "not_entailment"}  # MoritzLaurer/*-zeroshot-v2.0
BART = {"0": "contradiction", "1": "neutral", "2": "entailment"}  # facebook/bart-large-mnli
UPPER = {"0": "ENTAILMENT", "1": "NEUTRAL", "2": "CONTRADICTION"}  # typeform/distilbert-*

FAMILIES = {
    # cross-encoder/nli-roberta-base, nli-distilroberta-base: 514 positions, pad 1 -> 512 (here 64).
    "roberta": {"labels": NLI3, "positions": 66, "tokenizer": "bpe"},
    # cross-encoder/nli-deberta-v3-xsmall and MoritzLaurer's zeroshot-v2.0: no token types.
    "deberta-v3": {"labels": NLI3, "positions": 64, "tokenizer": "unigram"},
    "deberta-v3-2class": {"labels": NLI2, "positions": 64, "tokenizer": "unigram"},
    # facebook/bart-large-mnli as Xenova/bart-large-mnli ships it (ONNX only).
    "bart": {"labels": BART, "positions": 64, "tokenizer": "bpe"},
    # Xenova/distilbert-*-mnli, typeform/distilbert-base-uncased-mnli: upper-case names.
    "distilbert": {"labels": UPPER, "positions": 64, "tokenizer": "wordpiece"},
}


def corpus() -> list[str]:
    lines = [text for pair in [*PAIRS, LONG_PAIR] for text in pair]
    for case in ZERO_SHOT:
        lines += case["texts"] + [case["template"].format(label) for label in case["labels"]]
    data = Path(__file__).parents[1] / "squeezenli" / "data"
    for name in ("label_check.jsonl", "calibration.jsonl"):
        for line in (data / name).read_text().splitlines()[:200]:
            row = json.loads(line)
            lines += [row["premise"], row["hypothesis"]]
    return lines


def bpe_tokenizer(folder: Path) -> None:
    """A RoBERTa tokenizer: byte-level BPE, <s> A </s></s> B </s>."""
    from tokenizers import ByteLevelBPETokenizer, processors

    tokenizer = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer.train_from_iterator(corpus(), vocab_size=400, special_tokens=specials)
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>"))
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "RobertaTokenizer",
        "model_max_length": NO_LIMIT,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "add_prefix_space": False,
        "trim_offsets": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1))


def unigram_tokenizer(folder: Path) -> None:
    """A DeBERTa-v3 tokenizer: SentencePiece-style Unigram, [CLS] A [SEP] B [SEP]. Its pieces
    are the corpus's commonest words and every character it uses (not trained: the trainer's
    threads give other files each run)."""
    from collections import Counter

    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import Unigram

    lines = corpus()
    words = Counter(w.strip(".,!?'\"") for line in lines for w in line.split())
    chars = sorted({c for line in lines for c in line if not c.isspace()})
    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    pieces = [(token, 0.0) for token in specials]
    pieces += [
        (f"\u2581{w}", -3.0 - rank / 100) for rank, (w, _) in enumerate(words.most_common(200)) if w
    ]
    pieces += [(piece, -8.0) for c in chars for piece in (c, f"\u2581{c}")]
    scores: dict[str, float] = {}
    for piece, score in pieces:  # a word that is one character keeps its word score
        scores.setdefault(piece, score)
    tokenizer = Tokenizer(Unigram(list(scores.items()), unk_id=3))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.add_special_tokens(specials)
    tokenizer.add_special_tokens(["[MASK]"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "DebertaV2Tokenizer",
        "model_max_length": NO_LIMIT,
        "do_lower_case": False,
        "bos_token": "[CLS]",
        "eos_token": "[SEP]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "mask_token": "[MASK]",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1))


def wordpiece_tokenizer(folder: Path) -> None:
    """A DistilBERT tokenizer: the tiny model's WordPiece vocabulary, saved by transformers
    as a repo holds it (tokenizer.json and vocab.txt)."""
    from transformers import AutoTokenizer

    source = write_tiny_model(folder.parent / "wordpiece-source")
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(tokenizer_class="DistilBertTokenizer", model_max_length=NO_LIMIT)
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    shutil.rmtree(source)


def model_config(family: str, spec: dict, vocab_size: int, pad: int) -> dict:
    labels = spec["labels"]
    label2id = {name: int(index) for index, name in labels.items()}
    common = {"id2label": labels, "label2id": label2id, "vocab_size": vocab_size}
    common.update(max_position_embeddings=spec["positions"], pad_token_id=pad)
    encoder = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
    }
    if family == "roberta":
        from transformers import RobertaConfig

        return RobertaConfig(
            **encoder,
            type_vocab_size=1,
            bos_token_id=0,
            eos_token_id=2,
            architectures=["RobertaForSequenceClassification"],
            **common,
        ).to_dict()
    if family == "bart":
        from transformers import BartConfig

        return BartConfig(
            d_model=32,
            encoder_layers=2,
            decoder_layers=1,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
            forced_eos_token_id=2,
            architectures=["BartForSequenceClassification"],
            **common,
        ).to_dict()
    if family.startswith("deberta-v3"):
        from transformers import DebertaV2Config

        return DebertaV2Config(
            **encoder,
            type_vocab_size=0,
            relative_attention=True,
            position_buckets=16,
            max_relative_positions=-1,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            architectures=["DebertaV2ForSequenceClassification"],
            **common,
        ).to_dict()
    from transformers import DistilBertConfig

    return DistilBertConfig(
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=64,
        architectures=["DistilBertForSequenceClassification"],
        **common,
    ).to_dict()


def export(folder: Path) -> None:
    """The ONNX export, as optimum names it (input_ids, attention_mask -> logits), checked
    against torch on a padded batch before it is kept."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        folder, attn_implementation="eager"
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = encode(tokenizer, PAIRS[:3], limit(folder))
    names = ["input_ids", "attention_mask"]
    (folder / "onnx").mkdir(exist_ok=True)
    target = folder / "onnx" / "model.onnx"
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in names}

    class Logits(torch.nn.Module):
        """The model as an export sees it: two inputs, logits out (no cache: BART)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            extra = {"use_cache": False} if model.config.model_type == "bart" else {}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    with torch.no_grad():
        torch.onnx.export(
            Logits().eval(),  # export restores the mode it found: eval, as the check needs
            tuple(batch[n] for n in names),
            str(target),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch_size"}},
            opset_version=17,
            dynamo=False,
        )
    for pairs in (PAIRS, PAIRS[4:6]):  # other lengths than the traced one
        batch = encode(tokenizer, pairs, limit(folder))
        with torch.no_grad():
            expected = model(**{n: batch[n] for n in names}).logits.numpy()
        session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        got = session.run(["logits"], {n: batch[n].numpy() for n in names})[0]
        assert np.abs(got - expected).max() < 1e-5, (folder.name, np.abs(got - expected).max())


def limit(folder: Path) -> int:
    """The model's own length limit: RoBERTa's positions start after the padding index."""
    config = json.loads((folder / "config.json").read_text())
    positions = config["max_position_embeddings"]
    return (
        positions - config["pad_token_id"] - 1 if config["model_type"] == "roberta" else positions
    )


def reference(folder: Path, max_length: int | None) -> dict:
    """transformers' ids and logits for the pairs, longest-first truncation at max_length
    (None: the model's own limit, read the way transformers reads it)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, attn_implementation="eager"
    ).eval()
    batch = encode(tokenizer, [*PAIRS, LONG_PAIR], max_length or limit(folder))
    with torch.no_grad():
        logits = model(**batch).logits.numpy()
    ids = [row[m.bool()].tolist() for row, m in zip(batch["input_ids"], batch["attention_mask"])]
    return {"max_length": max_length, "input_ids": ids, "logits": logits.tolist()}


def make(family: str, spec: dict, work: Path) -> dict:
    import torch

    torch.manual_seed(SEED)
    folder = work / family
    folder.mkdir(parents=True)
    {"bpe": bpe_tokenizer, "unigram": unigram_tokenizer, "wordpiece": wordpiece_tokenizer}[
        spec["tokenizer"]
    ](folder)
    if family == "bart":  # the same byte-level BPE and template under BART's name
        settings = json.loads((folder / "tokenizer_config.json").read_text())
        settings["tokenizer_class"] = "BartTokenizer"
        (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=1))
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    pad = tokenizer.pad_token_id
    vocab_size = max(tokenizer.get_vocab().values()) + 1  # ids may have gaps
    config = model_config(family, spec, vocab_size, pad)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    model = AutoModelForSequenceClassification.from_config(
        config_class(config), attn_implementation="eager"
    )
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:  # nothing swapped can hide
                tensor.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
            elif tensor.dim() == 2:  # transformers' std 0.02 gives every pair the same
                tensor.normal_(0.0, tensor.shape[1] ** -0.5)  # scores: ties hide errors
            else:
                tensor.normal_(0.0, 0.1)
    model.eval()  # as a trained head would, its predictions spread over every class
    fit_classifier(model, tokenizer, read_fit_pairs(DEFAULT_PAIRS, 256), 1.5, limit(folder))
    model.save_pretrained(folder)
    export(folder)
    cases = [reference(folder, None), reference(folder, 16)]
    zero_shot = [{**case, "expected": zero_shot_reference(folder, case)} for case in ZERO_SHOT]
    target = OUT / family
    shutil.rmtree(target, ignore_errors=True)
    (target / "onnx").mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"):
        shutil.copy(folder / name, target / name)
    if (folder / "vocab.txt").exists():
        shutil.copy(folder / "vocab.txt", target / "vocab.txt")
    return {"pairs": [*PAIRS, LONG_PAIR], "cases": cases, "zero_shot": zero_shot}


def config_class(config: dict):
    from transformers import AutoConfig

    return AutoConfig.for_model(**config)


def main() -> None:
    golden = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family, spec in FAMILIES.items():
            golden[family] = make(family, spec, Path(tmp))
            print(f"{family}: ok")
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
