"""Test a model's label mapping on NLI pairs whose answer is not in doubt.

The pairs (squeezenli/data/label_check.jsonl, written for this project) are ten per class.
For each gold class we find the output index that wins most often; when the three classes
win on three distinct indices, each by a majority, that is the order the model behaves in.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import orjson

from .errors import ModelError
from .labels import NLI_CLASSES, LabelMap
from .model import NLIModel


@dataclass(frozen=True)
class LabelCheck:
    """How each output index behaved on the check pairs, against the mapping in use."""

    mapping: LabelMap
    counts: np.ndarray  # [gold class (NLI_CLASSES order), output index] -> wins
    behaves_as: dict[int, str]  # output index -> class, for classes won by a clear majority

    @classmethod
    def from_counts(cls, mapping: LabelMap, counts: np.ndarray) -> LabelCheck:
        """Each class behaves as the index it wins on, if by a majority and not already taken."""
        behaves_as: dict[int, str] = {}
        for c, name in enumerate(NLI_CLASSES):
            index = int(counts[c].argmax())
            if counts[c, index] * 2 > counts[c].sum() and index not in behaves_as:
                behaves_as[index] = name
        return cls(mapping, counts, behaves_as)

    @property
    def conclusive(self) -> bool:
        return len(self.behaves_as) == len(NLI_CLASSES)

    @property
    def agrees(self) -> bool:
        names = self.mapping.names
        return self.conclusive and all(names[i] == c for i, c in self.behaves_as.items())

    @property
    def observed_order(self) -> tuple[str, ...] | None:
        if not self.conclusive:
            return None
        return tuple(self.behaves_as[i] for i in range(len(NLI_CLASSES)))

    def as_dict(self) -> dict:
        return {
            "labels": list(self.mapping.names),
            "label_source": self.mapping.source,
            "wins": {gold: [int(n) for n in self.counts[c]] for c, gold in enumerate(NLI_CLASSES)},
            "observed_order": list(self.observed_order) if self.observed_order else None,
            "conclusive": self.conclusive,
            "agrees": self.agrees,
        }


def check_pairs() -> list[dict]:
    text = resources.files("squeezenli").joinpath("data/label_check.jsonl").read_bytes()
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def check_labels(model: NLIModel) -> LabelCheck:
    n_outputs = len(model.labels.names)
    if n_outputs != len(NLI_CLASSES):
        raise ModelError(f"check-labels needs a 3-way NLI model; this one has {n_outputs} outputs")
    pairs = check_pairs()
    winners = model.logits([(p["premise"], p["hypothesis"]) for p in pairs]).argmax(axis=1)
    counts = np.zeros((len(NLI_CLASSES), n_outputs), dtype=np.int64)
    for pair, winner in zip(pairs, winners):
        counts[NLI_CLASSES.index(pair["label"]), winner] += 1
    return LabelCheck.from_counts(model.labels, counts)
