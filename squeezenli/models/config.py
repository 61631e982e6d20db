"""The parts of a model's config.json that the converter and the label mapping need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from squeezenli.errors import ModelError

CONVERTIBLE = ("squeezebert", "bert")
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


@dataclass(frozen=True)
class ModelConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    layer_norm_eps: float
    max_position_embeddings: int
    type_vocab_size: int
    id2label: dict[int, str]
    q_groups: int = 1
    k_groups: int = 1
    v_groups: int = 1
    post_attention_groups: int = 1
    intermediate_groups: int = 1
    output_groups: int = 1

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads


def read_config(path: Path, what: str = "config") -> dict:
    """A model's JSON settings file (config.json, tokenizer_config.json) as a dict, or a
    ModelError naming the file and what it should have been."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise ModelError(f"{path}: cannot read {what}: {err}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: {what} is not a JSON object")
    return data


# Bounds that no real model comes near; a value past them is a damaged or crafted config, and
# refusing it early keeps a number like num_labels 1e9 from allocating before the weights
# could contradict it.
MAX_LABELS = 10_000
_LIMITS = {
    "vocab_size": 10_000_000,
    "hidden_size": 1 << 16,
    "num_hidden_layers": 1000,
    "num_attention_heads": 1 << 16,
    "intermediate_size": 1 << 20,
    "max_position_embeddings": 1 << 20,
    "type_vocab_size": 1 << 16,
}
GROUP_FIELDS = (
    "q_groups",
    "k_groups",
    "v_groups",
    "post_attention_groups",
    "intermediate_groups",
    "output_groups",
)


def int_field(data: dict, key: str, origin: str, default: int | None = None) -> int:
    """A positive integer field of a config, within its bound, or a ModelError naming it."""
    value = data.get(key, default)
    if value is None:
        raise ModelError(f"{origin}: missing field {key!r}")
    limit = _LIMITS.get(key, 1 << 16)
    if type(value) is not int or not 1 <= value <= limit:
        raise ModelError(
            f"{origin}: {key} must be an integer from 1 to {limit}, got {shown(value)}"
        )
    return value


def shown(value: object, width: int = 60) -> str:
    """A value from a file, quoted for a message and cut short: a crafted file's values may
    be megabytes long."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# Models whose position ids start after the padding index (transformers'
# create_position_ids_from_input_ids): a table of 514 rows with pad_token_id 1 holds 512 tokens.
_POSITIONS_AFTER_PADDING = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "mpnet"}


def max_positions(data: dict, origin: str) -> int:
    """The longest input the model's position table takes (512 when the config is silent)."""
    table = int_field(data, "max_position_embeddings", origin, 512)
    if data.get("model_type") in _POSITIONS_AFTER_PADDING:
        pad = data.get("pad_token_id", 1)
        if type(pad) is not int or not 0 <= pad < table - 1:
            raise ModelError(
                f"{origin}: pad_token_id must be an integer from 0 to {table - 2} (positions "
                f"start after it in a table of {table}), got {shown(pad)}"
            )
        return table - pad - 1
    return table


def id2label(data: dict, origin: str = "config.json") -> dict[int, str]:
    """Index -> name from a raw config (indices 0..n-1); LABEL_i names when it gives only
    num_labels."""
    raw = data.get("id2label")
    if raw is None or raw == {}:
        n = data.get("num_labels", 2)
        if type(n) is not int or not 1 <= n <= MAX_LABELS:
            raise ModelError(f"{origin}: num_labels must be from 1 to {MAX_LABELS}, got {shown(n)}")
        return {i: f"LABEL_{i}" for i in range(n)}
    if not isinstance(raw, dict) or len(raw) > MAX_LABELS:
        raise ModelError(f"{origin}: id2label must map up to {MAX_LABELS} indices to names")
    try:
        labels = {int(k): v for k, v in raw.items()}
    except ValueError:
        raise ModelError(f"{origin}: id2label has non-integer keys: {shown(list(raw))}") from None
    if sorted(labels) != list(range(len(labels))):
        raise ModelError(f"{origin}: id2label must number its labels 0 to {len(labels) - 1}")
    if not all(isinstance(v, str) and v.strip() for v in labels.values()):
        raise ModelError(f"{origin}: id2label names must be non-empty text")
    return {i: labels[i] for i in range(len(labels))}


def parse_config(data: dict, origin: str = "config.json") -> ModelConfig:
    """A ModelConfig for a model we can convert, or a one-line ModelError saying why not."""
    model_type = data.get("model_type")
    if model_type not in CONVERTIBLE:
        raise ModelError(
            f"{origin}: model_type {shown(model_type)} is not supported "
            f"(supported: {', '.join(CONVERTIBLE)} sequence classifiers, or a repo that "
            "ships an ONNX sequence-classification export)"
        )
    archs = data.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ModelError(f"{origin}: architectures must be a list of names, got {shown(archs)}")
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ModelError(
            f"{origin}: {', '.join(archs)} is not a sequence classifier "
            "(expected ...ForSequenceClassification)"
        )
    if data.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{origin}: only absolute position embeddings are supported")
    sizes = {
        key: int_field(data, key, origin, 2 if key == "type_vocab_size" else None)
        for key in _LIMITS
        if key not in ("max_position_embeddings",)
    }
    groups = {
        key: int_field(data, key, origin, 1) if model_type == "squeezebert" else 1
        for key in GROUP_FIELDS
    }
    hidden_act = data.get("hidden_act", "gelu")
    if hidden_act not in ACTIVATIONS:
        raise ModelError(f"{origin}: hidden_act {shown(hidden_act)} is not supported")
    eps = data.get("layer_norm_eps", 1e-12)
    if type(eps) not in (int, float) or not 0 < eps < 1:
        raise ModelError(
            f"{origin}: layer_norm_eps must be a small positive number, got {shown(eps)}"
        )
    config = ModelConfig(
        model_type=model_type,
        hidden_act=hidden_act,
        layer_norm_eps=float(eps),
        max_position_embeddings=max_positions(data, origin),
        id2label=id2label(data, origin),
        **sizes,
        **{key: value for key, value in groups.items() if model_type == "squeezebert"},
    )
    _check_divisions(config, origin)
    if data.get("embedding_size", config.hidden_size) != config.hidden_size:
        raise ModelError(f"{origin}: embedding_size must equal hidden_size")
    return config


def _check_divisions(config: ModelConfig, origin: str) -> None:
    """Heads must split the width, and each group count the channels it groups."""
    hidden, inner = config.hidden_size, config.intermediate_size
    if hidden % config.num_attention_heads:
        raise ModelError(
            f"{origin}: hidden_size {hidden} is not a multiple of "
            f"num_attention_heads {config.num_attention_heads}"
        )
    widths = {
        "q_groups": (hidden, config.num_attention_heads),
        "k_groups": (hidden, config.num_attention_heads),
        "v_groups": (hidden, config.num_attention_heads),
        "post_attention_groups": (hidden,),
        "intermediate_groups": (hidden, inner),
        "output_groups": (hidden, inner),
    }
    for key, divides in widths.items():
        groups = getattr(config, key)
        if any(width % groups for width in divides):
            raise ModelError(
                f"{origin}: {key} {groups} does not divide " + " and ".join(str(w) for w in divides)
            )
