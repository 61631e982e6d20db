"""A tiny random SqueezeBERT (or BERT) sequence classifier, written with numpy only.

Every tensor is random, LayerNorm gains and biases included, so a swapped or skipped
tensor changes the logits. The same seed gives the same files, which is what lets the
golden logits made by transformers (tests/make_golden.py) be checked without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WORDS = (
    "a an the man woman person people child dog cat guitar music stage song band plays play "
    "playing is are was were be makes making made on in at of to and or not no never some all "
    "walks walking runs running sits sitting eats eating food park street house car red blue "
    "green big small happy sad old young today yesterday morning night city river boat water "
    "ball game team wins won loses lost match time extra sports politics vote election "
    "government rain sun dark light reads book writes letter contribution university graduate"
).split()
PIECES = ["##s", "##ing", "##ed", "##er", "##ly", "##y", "##e", "##es"]


def vocabulary() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-:;()")
    return specials + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + PIECES + WORDS


def tiny_config(model_type: str = "squeezebert", vocab_size: int | None = None) -> dict:
    vocab_size = vocab_size or len(vocabulary()) + 6  # padded, like the real 30528 vs 30522
    common = {
        "model_type": model_type,
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 48,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "num_labels": 3,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"},
        "label2id": {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2},
    }
    if model_type == "squeezebert":
        common.update(
            embedding_size=64,
            q_groups=4,
            k_groups=4,
            v_groups=4,
            post_attention_groups=1,
            intermediate_groups=4,
            output_groups=4,
        )
    return common


def tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Names and shapes as transformers' ...ForSequenceClassification saves them."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    n = config["num_labels"]
    if config["model_type"] == "squeezebert":
        pre, emb = "transformer.encoder.layers.{}.", "transformer.embeddings."
        convs = {
            "attention.query": (h, h // config["q_groups"], 1),
            "attention.key": (h, h // config["k_groups"], 1),
            "attention.value": (h, h // config["v_groups"], 1),
            "post_attention.conv1d": (h, h // config["post_attention_groups"], 1),
            "intermediate.conv1d": (i, h // config["intermediate_groups"], 1),
            "output.conv1d": (h, i // config["output_groups"], 1),
        }
        norms = ["post_attention.layernorm", "output.layernorm"]
        pooler = "transformer.pooler.dense"
    else:
        pre, emb = "bert.encoder.layer.{}.", "bert.embeddings."
        convs = {
            "attention.self.query": (h, h),
            "attention.self.key": (h, h),
            "attention.self.value": (h, h),
            "attention.output.dense": (h, h),
            "intermediate.dense": (i, h),
            "output.dense": (h, i),
        }
        norms = ["attention.output.LayerNorm", "output.LayerNorm"]
        pooler = "bert.pooler.dense"
    shapes: dict[str, tuple[int, ...]] = {
        emb + "word_embeddings.weight": (v, h),
        emb + "position_embeddings.weight": (config["max_position_embeddings"], h),
        emb + "token_type_embeddings.weight": (config["type_vocab_size"], h),
        emb + "LayerNorm.weight": (h,),
        emb + "LayerNorm.bias": (h,),
    }
    for layer in range(config["num_hidden_layers"]):
        for name, shape in convs.items():
            shapes[pre.format(layer) + name + ".weight"] = shape
            shapes[pre.format(layer) + name + ".bias"] = (shape[0],)
        for name in norms:
            shapes[pre.format(layer) + name + ".weight"] = (h,)
            shapes[pre.format(layer) + name + ".bias"] = (h,)
    shapes.update(
        {
            pooler + ".weight": (h, h),
            pooler + ".bias": (h,),
            "classifier.weight": (n, h),
            "classifier.bias": (n,),
        }
    )
    return shapes


def random_tensors(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in tensor_shapes(config).items():
        if "LayerNorm.weight" in name or "layernorm.weight" in name:
            array = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith("embeddings.weight"):
            array = 0.5 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            array = 0.1 * rng.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            array = rng.standard_normal(shape) / np.sqrt(fan_in)
        tensors[name] = array.astype(np.float32)
    return tensors


def write_tiny_model(
    folder: Path,
    *,
    model_type: str = "squeezebert",
    seed: int = 0,
    weights: str = "safetensors",
    config_overrides: dict | None = None,
) -> Path:
    """Write config.json, vocab.txt (+ tokenizer_config.json) and model.safetensors."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_config(model_type)
    config.update(config_overrides or {})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "vocab.txt").write_text("\n".join(vocabulary()) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}
        )
    )
    if weights == "safetensors":
        save_file(random_tensors(config, seed), str(folder / "model.safetensors"))
    return folder


def weights_digest(config: dict, seed: int = 0) -> str:
    """A fingerprint of the random tensors, stored with the golden values to catch drift."""
    import hashlib

    digest = hashlib.sha256()
    for name, array in sorted(random_tensors(config, seed).items()):
        digest.update(name.encode())
        digest.update(np.round(array.astype(np.float64), 5).tobytes())
    return digest.hexdigest()


NLI_ORDER = ("contradiction", "entailment", "neutral")


def name_labels(folder: Path, names: tuple[str, ...] = NLI_ORDER) -> Path:
    """Give a written model's outputs class names in its config (id2label, label2id)."""
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): n for i, n in enumerate(names)}
    config["label2id"] = {n: i for i, n in enumerate(names)}
    (folder / "config.json").write_text(json.dumps(config))
    return folder
