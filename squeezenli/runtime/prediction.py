"""A scored pair as every caller sees it, importable without numpy or onnxruntime: the
`--server` client reads its answers into these and never loads the model's runtime."""

from __future__ import annotations

from dataclasses import dataclass

Pair = tuple[str, str]  # (premise, hypothesis)

# Probabilities are written to six places: plenty for a decision, short in JSON.
SCORE_DIGITS = 6


@dataclass(frozen=True)
class Evidence:
    """Where in a premise its deciding window lies: characters [start, end), of `windows`
    windows the premise was read in."""

    start: int
    end: int
    windows: int


@dataclass(frozen=True)
class Prediction:
    """One scored pair: the winning label and every label's probability, whether the model
    read the pair cut to its length, and, for a premise read in windows, the deciding one."""

    label: str
    scores: dict[str, float]
    truncated: bool = False
    evidence: Evidence | None = None
    entailed: bool | None = None  # P(entailment) at or above a threshold, when one was given
    logits: dict[str, float] | None = None  # the raw logits, when asked for

    def rounded_scores(self) -> dict[str, float]:
        return {name: round(value, SCORE_DIGITS) for name, value in self.scores.items()}

    def fields(self) -> dict:
        """What every output row adds: `prediction`, `scores` and `truncated`, and for a
        chunked premise `evidence` ({start, end}) and `windows`."""
        found: dict = {
            "prediction": self.label,
            "scores": self.rounded_scores(),
            "truncated": self.truncated,
        }
        if self.evidence is not None:
            found["evidence"] = {"start": self.evidence.start, "end": self.evidence.end}
            found["windows"] = self.evidence.windows
        if self.entailed is not None:
            found["entailed"] = self.entailed
        if self.logits is not None:
            found["logits"] = {name: round(v, SCORE_DIGITS) for name, v in self.logits.items()}
        return found

    @classmethod
    def from_fields(cls, found: dict) -> Prediction:
        """The Prediction a row's result fields (fields()) were written from."""
        evidence = found.get("evidence")
        logits = found.get("logits")
        entailed = found.get("entailed")
        return cls(
            found["prediction"],
            dict(found["scores"]),
            bool(found.get("truncated", False)),
            None
            if not evidence
            else Evidence(int(evidence["start"]), int(evidence["end"]), int(found["windows"])),
            None if entailed is None else bool(entailed),
            None if not logits else dict(logits),
        )
