"""Test a model's label mapping on NLI pairs whose answer is not in doubt.

The pairs (squeezenli/data/label_check.jsonl, written for this project) are ten per class.
For each gold class we find the output index that wins most often; when the three classes
win on three distinct indices, each in at least 8 of its 10 pairs, that is the order the
model behaves in. A model with two outputs (entailment, not_entailment) is checked the same
way on two classes, neutral and contradiction pairs counting as not_entailment. For a model
whose config names only LABEL_k, this runs once at build time (on the fp32 build) and the
order found is used when it is conclusive (labels.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from squeezenli.choices import LabelSource
from squeezenli.errors import ModelError
from squeezenli.models.atomic import atomic_path
from squeezenli.models.build import (
    build_lock,
    build_locked,
    kernel_settings,
    measurement_path,
    verify_model,
)
from squeezenli.models.hub import ModelFiles
from squeezenli.models.labels import BINARY_CLASSES, NLI_CLASSES, NOT_ENTAILMENT, LabelMap
from squeezenli.models.packaged import packaged_rows
from squeezenli.runtime.engine import reference_logits
from squeezenli.runtime.tokenizer import PairTokenizer

# A class "wins" on an index when that index wins at least this share of the class's pairs.
CONCLUSIVE_SHARE = 0.8


@dataclass(frozen=True)
class LabelCheck:
    """How each output index behaved on the check pairs, against the mapping in use."""

    mapping: LabelMap
    counts: np.ndarray  # [gold class (in classes' order), output index] -> wins
    behaves_as: dict[int, str]  # output index -> class, for classes won by a clear majority
    classes: tuple[str, ...] = NLI_CLASSES

    @classmethod
    def from_counts(
        cls, mapping: LabelMap, counts: np.ndarray, classes: tuple[str, ...] = NLI_CLASSES
    ) -> LabelCheck:
        """Each class behaves as the index it wins on, if in 8 of 10 pairs and not taken."""
        behaves_as: dict[int, str] = {}
        for c, name in enumerate(classes):
            index = int(counts[c].argmax())
            if counts[c, index] >= CONCLUSIVE_SHARE * counts[c].sum() and index not in behaves_as:
                behaves_as[index] = name
        return cls(mapping, counts, behaves_as, classes)

    @property
    def conclusive(self) -> bool:
        return len(self.behaves_as) == len(self.classes)

    @property
    def agrees(self) -> bool:
        names = self.mapping.names
        return self.conclusive and all(names[i] == c for i, c in self.behaves_as.items())

    @property
    def observed_order(self) -> tuple[str, ...] | None:
        if not self.conclusive:
            return None
        return tuple(self.behaves_as[i] for i in range(len(self.classes)))

    def as_dict(self) -> dict:
        return {
            "labels": list(self.mapping.names),
            "label_source": self.mapping.kind.value,
            "label_source_detail": self.mapping.source,
            "wins": {gold: [int(n) for n in self.counts[c]] for c, gold in enumerate(self.classes)},
            "observed_order": list(self.observed_order) if self.observed_order else None,
            "conclusive": self.conclusive,
            "agrees": self.agrees,
        }


def check_pairs() -> list[dict]:
    return packaged_rows("label_check.jsonl", ("premise", "hypothesis"), NLI_CLASSES)


def count_wins(
    logits: np.ndarray, pairs: list[dict], classes: tuple[str, ...] = NLI_CLASSES
) -> np.ndarray:
    """[gold class, output index] -> how many of the class's pairs that index won."""
    counts = np.zeros((len(classes), logits.shape[1]), dtype=np.int64)
    for pair, winner in zip(pairs, logits.argmax(axis=1)):
        gold = pair["label"]
        if classes == BINARY_CLASSES and gold != "entailment":
            gold = NOT_ENTAILMENT
        counts[classes.index(gold), winner] += 1
    return counts


def check_labels(model) -> LabelCheck:
    """The check pairs through a loaded NLIModel, against the mapping it uses."""
    names = model.labels.names
    classes = BINARY_CLASSES if set(names) == set(BINARY_CLASSES) else NLI_CLASSES
    if len(names) != len(classes):
        raise ModelError(
            f"check-labels needs a 3-way NLI model or one whose two outputs are entailment "
            f"and not_entailment; this one has {len(names)} outputs ({', '.join(names)})"
        )
    pairs = check_pairs()
    logits = model.logits([(p["premise"], p["hypothesis"]) for p in pairs])
    return LabelCheck.from_counts(model.labels, count_wins(logits, pairs, classes), classes)


def stored_order(files: ModelFiles) -> tuple[tuple[str, ...] | None, np.ndarray] | None:
    """The order measured at build time (None if inconclusive) and the wins behind it, if
    the build has been measured; nothing is built."""
    try:
        wins = orjson.loads(measurement_path(files, "fp32", "labels").read_bytes())["wins"]
        counts = np.array(wins, dtype=np.int64)
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if counts.shape != (len(NLI_CLASSES), len(NLI_CLASSES)):
        return None
    generic = LabelMap(
        tuple(f"LABEL_{i}" for i in range(len(NLI_CLASSES))), "measured", LabelSource.MEASURED
    )
    return LabelCheck.from_counts(generic, counts).observed_order, counts


def measured_order(files: ModelFiles, tokenizer: PairTokenizer) -> tuple[str, ...] | None:
    """The order the fp32 build behaves in on the check pairs, if conclusive; measured once
    per build and stored beside it."""
    stored = stored_order(files)
    if stored is None:
        with build_lock(files.build_dir):  # held while the build is read (build.build_locked)
            stored = stored_order(files)
            if stored is None:
                _measure_order(files, tokenizer)
                stored = stored_order(files)
    return stored[0] if stored else None


def _measure_order(files: ModelFiles, tokenizer: PairTokenizer) -> None:
    pairs = check_pairs()
    built = build_locked(files, "fp32")
    verify_model(built, files.build_dir)
    texts = [(p["premise"], p["hypothesis"]) for p in pairs]
    settings = kernel_settings(built, files.build_dir)
    logits = reference_logits(built, tokenizer, texts, "the check pairs", settings)
    counts = count_wins(logits, pairs)
    with atomic_path(measurement_path(files, "fp32", "labels")) as tmp:
        tmp.write_bytes(orjson.dumps({"wins": counts.tolist()}))
