"""Which output index means which NLI class, and where that knowledge comes from.

A wrong order silently inverts every answer, so the mapping is explicit and its source is
shown. In order: --label-order when the user says so; the config when it names its labels;
the order measured at build time on pairs whose answer is not in doubt (labelcheck.py),
when that is conclusive; a table of known models; LABEL_k.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from squeezenli.choices import LabelSource
from squeezenli.errors import InputError, ModelError

NLI_CLASSES = ("entailment", "neutral", "contradiction")
NOT_ENTAILMENT = "not_entailment"
BINARY_CLASSES = ("entailment", NOT_ENTAILMENT)  # RTE-style models and data

# The zero-shot hypothesis, as transformers' zero-shot pipeline words it by default.
DEFAULT_TEMPLATE = "This example is {}."

# Models whose config names only LABEL_0..n, with the order and the evidence for it.
KNOWN_ORDERS: dict[str, tuple[tuple[str, ...], str]] = {
    "squeezebert/squeezebert-mnli": (
        ("contradiction", "entailment", "neutral"),
        "inferred: the model was fine-tuned with the authors' fork of transformers (2020), whose "
        "GLUE MNLI processor orders labels contradiction, entailment, neutral; its config names "
        "only LABEL_0..2 and no public source confirms the order (run 'squeezenli model "
        "check-labels' to test it)",
    ),
}

_ALIASES = {
    "entail": "entailment",
    "entailed": "entailment",
    "contradict": "contradiction",
    "contradictory": "contradiction",
    "neutrality": "neutral",
    "not_entailment": "not_entailment",
}


@dataclass(frozen=True)
class LabelMap:
    """Output names in the model's index order, and the source of that order."""

    names: tuple[str, ...]
    source: str  # where the order came from, in words
    kind: LabelSource = LabelSource.LABEL_ORDER  # ... as a choice

    def describe(self) -> str:
        """The mapping and its source, for error messages, with how to change it."""
        hint = "" if "--label-order" in self.source else "; pass --label-order"
        return f"the label mapping is {','.join(self.names)} ({self.source}){hint}"

    def ordered(self) -> list[int]:
        """Indices in presentation order: entailment, neutral, contradiction first."""
        known = [self.names.index(c) for c in NLI_CLASSES if c in self.names]
        return known + [i for i in range(len(self.names)) if i not in known]


def normalize(name: str) -> str:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return _ALIASES.get(key, key)


def _is_generic(names: list[str]) -> bool:
    return all(n.upper() == f"LABEL_{i}" for i, n in enumerate(names))


def parse_label_order(text: str) -> tuple[str, ...]:
    names = tuple(normalize(n) for n in text.split(",") if n.strip())
    if len(set(names)) != len(names) or not names:
        raise InputError(f"`label_order` must list distinct names, got {text!r}")
    return names


MEASURED = (
    "measured: the model's answers on the 30 check pairs of 'squeezenli model check-labels', "
    "at build time"
)


def needs_measurement(id2label: dict[int, str], override: object) -> bool:
    """Only a 3-output model with generic names and no override has its order measured."""
    names = [id2label[i] for i in sorted(id2label)]
    return not override and len(names) == len(NLI_CLASSES) and _is_generic(names)


def resolve_labels(
    id2label: dict[int, str],
    model_id: str,
    override: str | tuple[str, ...] | None = None,
    measured: tuple[str, ...] | None = None,
) -> LabelMap:
    """The label mapping for a model, from the first source that has one (module docstring)."""
    count = len(id2label)
    if override:
        names = parse_label_order(override) if isinstance(override, str) else tuple(override)
        if len(names) != count:
            raise InputError(
                f"`label_order` names {len(names)} labels but the model has {count} outputs"
            )
        return LabelMap(names, "--label-order", LabelSource.LABEL_ORDER)
    config_names = [id2label[i] for i in sorted(id2label)]
    if not _is_generic(config_names):
        names = tuple(normalize(n) for n in config_names)
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ModelError(
                f"{model_id}: the config's id2label names {', '.join(twice)} more than once, so "
                "one score would hide another: pass `label_order` to name the outputs"
            )
        return LabelMap(names, "the model's config (id2label)", LabelSource.CONFIG)
    known = KNOWN_ORDERS.get(model_id)
    if measured is not None and len(measured) == count:
        if known is not None and known[0] != measured:
            logging.getLogger("squeezenli").warning(
                "%s behaves as %s on the check pairs, not as the %s the known-model table "
                "gives; using the measured order (pass `label_order` to choose)",
                model_id,
                ",".join(measured),
                ",".join(known[0]),
            )
        return LabelMap(measured, MEASURED, LabelSource.MEASURED)
    if known is not None and len(known[0]) == count:
        return LabelMap(known[0], known[1], LabelSource.KNOWN)
    return LabelMap(
        tuple(n.upper() for n in config_names),
        "the model's config names only LABEL_0..n: pass --label-order to name them",
        LabelSource.UNNAMED,
    )
