"""The parts of a model's config.json that the converter and the label mapping need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from .errors import ModelError

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


def read_config(path: Path) -> dict:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise ModelError(f"{path}: cannot read config: {err}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: config is not a JSON object")
    return data


def id2label(data: dict) -> dict[int, str]:
    """Index -> name from a raw config; LABEL_i names when it gives only num_labels."""
    raw = data.get("id2label")
    if isinstance(raw, dict) and raw:
        try:
            return {int(k): str(v) for k, v in sorted(raw.items(), key=lambda kv: int(kv[0]))}
        except ValueError:
            raise ModelError(f"config id2label has non-integer keys: {list(raw)}") from None
    n = int(data.get("num_labels", 2))
    return {i: f"LABEL_{i}" for i in range(n)}


def parse_config(data: dict, origin: str = "config.json") -> ModelConfig:
    """A ModelConfig for a model we can convert, or a one-line ModelError saying why not."""
    model_type = data.get("model_type")
    if model_type not in CONVERTIBLE:
        raise ModelError(
            f"{origin}: model_type {model_type!r} is not supported "
            f"(supported: {', '.join(CONVERTIBLE)} sequence classifiers, or a repo that "
            "ships an ONNX sequence-classification export)"
        )
    archs = data.get("architectures") or []
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ModelError(
            f"{origin}: {', '.join(archs)} is not a sequence classifier "
            "(expected ...ForSequenceClassification)"
        )
    if data.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{origin}: only absolute position embeddings are supported")
    try:
        config = ModelConfig(
            model_type=model_type,
            vocab_size=int(data["vocab_size"]),
            hidden_size=int(data["hidden_size"]),
            num_hidden_layers=int(data["num_hidden_layers"]),
            num_attention_heads=int(data["num_attention_heads"]),
            intermediate_size=int(data["intermediate_size"]),
            hidden_act=str(data.get("hidden_act", "gelu")),
            layer_norm_eps=float(data.get("layer_norm_eps", 1e-12)),
            max_position_embeddings=int(data.get("max_position_embeddings", 512)),
            type_vocab_size=int(data.get("type_vocab_size", 2)),
            id2label=id2label(data),
            **{
                key: int(data.get(key, 1))
                for key in (
                    "q_groups",
                    "k_groups",
                    "v_groups",
                    "post_attention_groups",
                    "intermediate_groups",
                    "output_groups",
                )
                if model_type == "squeezebert"
            },
        )
    except KeyError as err:
        raise ModelError(f"{origin}: missing field {err.args[0]!r}") from None
    except (TypeError, ValueError) as err:
        raise ModelError(f"{origin}: bad value: {err}") from None
    if config.hidden_act not in ACTIVATIONS:
        raise ModelError(f"{origin}: hidden_act {config.hidden_act!r} is not supported")
    if config.hidden_size % config.num_attention_heads:
        raise ModelError(f"{origin}: hidden_size is not a multiple of num_attention_heads")
    if data.get("embedding_size", config.hidden_size) != config.hidden_size:
        raise ModelError(f"{origin}: embedding_size must equal hidden_size")
    return config
