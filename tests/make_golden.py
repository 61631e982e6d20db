"""Write the golden values the default test run checks against (dev only: needs torch).

    pip install -e '.[test,reference]' && python tests/make_golden.py

The tiny model comes from tests/tinymodel.py (numpy, fixed seed); transformers'
SqueezeBertForSequenceClassification and its AutoTokenizer are the reference. Also writes
the tiny model as a torch pytorch_model.bin and the tokenizer.json that transformers saves
(with padding and truncation baked in, to keep that trap covered).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from tinymodel import name_labels, tiny_config, weights_digest, write_tiny_model  # noqa: E402

FIXTURES = HERE / "fixtures"

PAIRS = [
    ["A man plays a guitar on stage.", "A person is making music."],
    ["The dog runs in the park.", "A cat sits on the red car!"],
    ["Some people were eating food.", "Nobody ate."],
    ["THE OLD WOMAN READS A BOOK.", "the woman reads"],
    ["Café naïve résumé", "xylophone zebra quux"],
    [
        "The team won the match in extra time and the people of the city were happy, "
        "the sun was on the river and some boats were on the water all morning and night",
        "The team lost.",
    ],
    [
        "A child",
        "The big blue boat was on the green river in the city park yesterday "
        "morning and the small red car was in the old street today at night",
    ],
    ["", "An empty premise."],
]
CASES = [{"max_length": None}, {"max_length": 16}]


ZERO_SHOT = [
    {
        "texts": ["The match went to extra time.", "A man plays a guitar on stage.", "Nobody ate."],
        "labels": ["sports", "politics", "music"],
        "template": "This example is {}.",
        "multi_label": False,
    },
    {
        "texts": ["The match went to extra time.", "Café naïve résumé"],
        "labels": ["sports", "music", "food", "the city"],
        "template": "This example is {}.",
        "multi_label": True,
    },
    {
        "texts": ["THE OLD WOMAN READS A BOOK."],
        "labels": ["a book"],
        "template": "The text is about {}!",
        "multi_label": False,
    },
]


def encode(tokenizer, pairs, max_length: int):
    """transformers' padded batch of pairs, cut longest-first to max_length."""
    return tokenizer(
        [p for p, _ in pairs],
        [h for _, h in pairs],
        truncation="longest_first",
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )


def reference_logits(folder: Path, pairs, max_length: int):
    """Token ids and logits of transformers' AutoTokenizer + AutoModel on a folder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    batch = encode(tokenizer, pairs, max_length)
    with torch.no_grad():
        logits = model(**batch).logits
    ids = [
        row[mask.bool()].tolist() for row, mask in zip(batch["input_ids"], batch["attention_mask"])
    ]
    return ids, logits.numpy()


def zero_shot_reference(folder: Path, case: dict) -> list[dict]:
    """transformers' zero-shot-classification pipeline output for one case."""
    from transformers import pipeline

    classifier = pipeline("zero-shot-classification", model=str(folder))
    results = classifier(
        case["texts"],
        candidate_labels=case["labels"],
        hypothesis_template=case["template"],
        multi_label=case["multi_label"],
    )
    results = results if isinstance(results, list) else [results]
    return [{"text": r["sequence"], "labels": r["labels"], "scores": r["scores"]} for r in results]


def golden(folder: Path) -> dict:
    import torch
    from transformers import AutoTokenizer, SqueezeBertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", "guitar"]) == [2, 3, 96], (
        "vocab drift"
    )
    cases = []
    for case in CASES:
        max_length = case["max_length"] or tiny_config()["max_position_embeddings"]
        ids, logits = reference_logits(folder, PAIRS, max_length)
        cases.append(
            {"max_length": case["max_length"], "input_ids": ids, "logits": logits.tolist()}
        )
    model = SqueezeBertForSequenceClassification.from_pretrained(folder).eval()
    torch.save(model.state_dict(), FIXTURES / "tiny_pytorch_model.bin")
    tokenizer.save_pretrained(folder / "saved")
    data = json.loads((folder / "saved" / "tokenizer.json").read_text())
    data["padding"] = {
        "strategy": {"Fixed": 40},
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": 0,
        "pad_type_id": 0,
        "pad_token": "[PAD]",
    }
    data["truncation"] = {
        "max_length": 12,
        "strategy": "LongestFirst",
        "stride": 0,
        "direction": "Right",
    }
    (FIXTURES / "tiny_tokenizer.json").write_text(json.dumps(data))
    return {"weights_digest": weights_digest(tiny_config()), "pairs": PAIRS, "cases": cases}


def main() -> None:
    FIXTURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_tiny_model(Path(tmp) / "tiny")
        data = golden(folder)
        nli_folder = name_labels(write_tiny_model(Path(tmp) / "tiny-nli"))
        data["zero_shot"] = [
            {**case, "expected": zero_shot_reference(nli_folder, case)} for case in ZERO_SHOT
        ]
    (FIXTURES / "golden.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {FIXTURES / 'golden.json'}")


if __name__ == "__main__":
    main()
