"""Score labelled pairs and report accuracy, per-class precision/recall/F1 and confusion.

Gold labels are class names (entailment, neutral, contradiction; any case). Data labelled in
two classes (entailment and not_entailment, as RTE and HANS) is scored by merging the model's
neutral and contradiction predictions into not_entailment, the usual practice for those sets;
a model with those two outputs is scored on 3-class data by merging the gold labels so.
Numbers are refused as gold labels: datasets disagree on what 0, 1 and 2 mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from squeezenli.choices import OnError, choose
from squeezenli.errors import InputError, ModelError
from squeezenli.models.labels import BINARY_CLASSES, NLI_CLASSES, NOT_ENTAILMENT, LabelMap
from squeezenli.records.readers import ColumnsError, Record, RowError, RowFailure
from squeezenli.runtime.model import NLIModel
from squeezenli.runtime.prediction import Prediction
from squeezenli.tasks.options import EVAL, PairOptions
from squeezenli.tasks.results import Result, ZeroShot
from squeezenli.tasks.scoring import PairReading, score_scored

_GOLD_NAMES = {
    "entailment": "entailment",
    "entailed": "entailment",
    "neutral": "neutral",
    "contradiction": "contradiction",
    "not_entailment": NOT_ENTAILMENT,
    "non_entailment": NOT_ENTAILMENT,
    "not_entailed": NOT_ENTAILMENT,
    # Factual-consistency sets (SummaC, FRANK, WiCE, ...): is the claim supported by the
    # document, counted as 2-class NLI.
    "consistent": "entailment",
    "inconsistent": NOT_ENTAILMENT,
}


# Gold labels that say a row has none (SNLI and MNLI mark pairs the annotators did not agree
# on with "-"): such rows are counted as unlabelled and not scored.
UNLABELLED = ("-", "")


def gold_label(record: Record, field_name: str) -> str | None:
    """The normalised gold class of a record, None for an unlabelled one (UNLABELLED), or a
    RowFailure naming file, line and field."""
    assert record.data is not None
    value = record.data.get(field_name)
    if isinstance(value, str) and value.strip() in UNLABELLED:
        return None

    def failure(message: str) -> RowFailure:
        return RowFailure(RowError.of(record, message, field_name))

    if field_name not in record.data:
        raise failure(f"missing field '{field_name}'")
    if not isinstance(value, str):
        raise failure(
            f"field '{field_name}' must be a class name "
            f"(entailment, neutral, contradiction, not_entailment; consistent, inconsistent), "
            f"got {value!r}"
        )
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in _GOLD_NAMES:
        raise failure(
            f"field '{field_name}': unknown label {value!r} (expected entailment, neutral, "
            "contradiction or not_entailment; consistent or inconsistent)"
        )
    return _GOLD_NAMES[key]


@dataclass(frozen=True)
class Judgement:
    """A labelled pair's prediction against its gold label; both None for a row whose gold
    label says it has none (UNLABELLED), which is counted, not scored."""

    prediction: Prediction | None
    gold: str | None

    @property
    def unlabelled(self) -> bool:
        return self.gold is None

    @property
    def correct(self) -> bool:
        """Whether the prediction matches; where either side is 2-class (not_entailment),
        neutral and contradiction count as not_entailment."""
        if self.prediction is None:
            return False
        predicted = self.prediction.label
        if NOT_ENTAILMENT in (self.gold, predicted):
            return (predicted == "entailment") == (self.gold == "entailment")
        return predicted == self.gold


@dataclass
class Report:
    """Counts of (gold, predicted) classes, and the figures computed from them."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    entailment: list[float] = field(default_factory=list)  # each pair's P(entailment)
    failed: int = 0
    unlabelled: int = 0  # rows whose gold label says they have none (UNLABELLED)
    # The same figures per value of a field (eval --by): value -> its rows' Report.
    groups: dict[str, Report] = field(default_factory=dict)
    by: str | None = None
    # A model whose outputs are entailment and not_entailment: 3-class gold labels are merged
    # into those two, as 2-class gold labels merge a 3-class model's predictions.
    two_class_model: bool = False
    # Where the first gold label of each kind was seen: 3-class (neutral, contradiction) and
    # 2-class (not_entailment) labels in one run would silently make it 2-class.
    kinds: dict[str, str] = field(default_factory=dict)

    def add(
        self,
        gold: str,
        predicted: str,
        where: str = "",
        entailment: float = 0.0,
        group: str | None = None,
    ) -> None:
        """Count a judged pair (in its group's report too, with `by`); a gold label of the
        other kind than those before is refused."""
        if group is not None:
            inner = self.groups.setdefault(group, Report(two_class_model=self.two_class_model))
            inner.add(gold, predicted, where, entailment)
        if gold != "entailment":
            kind = "2-class" if gold == NOT_ENTAILMENT else "3-class"
            other = "3-class" if kind == "2-class" else "2-class"
            if other in self.kinds:
                raise InputError(
                    f"{where}: gold label '{gold}' is {kind}, but {self.kinds[other]} had a "
                    f"{other} one: evaluate the two kinds of data separately"
                )
            self.kinds.setdefault(kind, where or "an earlier row")
        self.pairs.append((gold, predicted))
        self.entailment.append(entailment)

    @classmethod
    def for_model(cls, labels: LabelMap, by: str | None = None) -> Report:
        return cls(two_class_model=set(labels.names) == set(BINARY_CLASSES), by=by)

    def add_judged(self, judged: Result[Judgement]) -> None:
        """Count one of judge_records' results: unlabelled, or judged (in its group)."""
        verdict = judged.output
        assert verdict is not None
        if verdict.prediction is None or verdict.gold is None:
            self.unlabelled += 1
            if self.by is not None:
                self.groups.setdefault(
                    group_of(judged.record, self.by), Report(two_class_model=self.two_class_model)
                ).unlabelled += 1
            return
        entailment = verdict.prediction.scores.get("entailment", 0.0)
        group = None if self.by is None else group_of(judged.record, self.by)
        self.add(verdict.gold, verdict.prediction.label, judged.record.where, entailment, group)

    @property
    def binary(self) -> bool:
        return self.two_class_model or any(gold == NOT_ENTAILMENT for gold, _ in self.pairs)

    @property
    def merged_gold(self) -> bool:
        """Whether 3-class gold labels were merged to fit a 2-class model (worth a note)."""
        return self.two_class_model and "3-class" in self.kinds

    @property
    def classes(self) -> tuple[str, ...]:
        return BINARY_CLASSES if self.binary else NLI_CLASSES

    def _merged(self) -> list[tuple[str, str]]:
        if not self.binary:
            return self.pairs
        merge = {
            c: c if c == "entailment" else NOT_ENTAILMENT for c in (*NLI_CLASSES, NOT_ENTAILMENT)
        }
        return [(merge[g], merge[p]) for g, p in self.pairs]

    @property
    def confusion(self) -> dict[str, dict[str, int]]:
        """gold class -> predicted class -> rows."""
        matrix = {g: {p: 0 for p in self.classes} for g in self.classes}
        for gold, predicted in self._merged():
            matrix[gold][predicted] += 1
        return matrix

    def as_dict(self) -> dict:
        matrix = self.confusion
        scored = len(self.pairs)
        correct = sum(matrix[c][c] for c in self.classes)
        per_class = {}
        for c in self.classes:
            predicted = sum(matrix[g][c] for g in self.classes)
            support = sum(matrix[c].values())
            precision = matrix[c][c] / predicted if predicted else 0.0
            recall = matrix[c][c] / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_class[c] = {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": support,
                "predicted": predicted,
            }
        recalls = [v["recall"] for v in per_class.values() if v["support"]]
        found = {
            "accuracy": correct / scored if scored else 0.0,
            "balanced_accuracy": sum(recalls) / len(recalls) if recalls else 0.0,
            "macro_f1": sum(v["f1"] for v in per_class.values()) / len(per_class),
            "classes": list(self.classes),
            "per_class": per_class,
            "confusion": matrix,
            "counts": {
                "scored": scored,
                "correct": correct,
                "failed": self.failed,
                "unlabelled": self.unlabelled,
            },
        }
        if self.by is not None:
            found["by"] = {
                "field": self.by,
                "groups": {name: self.groups[name].as_dict() for name in sorted(self.groups)},
            }
        if self.binary:  # how well P(entailment) ranks and splits the two classes
            scores = np.array(self.entailment)
            positive = np.array([gold == "entailment" for gold, _ in self.pairs], bool)
            best, threshold = best_threshold(scores, positive)
            found["roc_auc"] = roc_auc(scores, positive)
            found["best_threshold"] = {"threshold": threshold, "balanced_accuracy": best}
        return found


def group_of(record: Record, field_name: str) -> str:
    """The value of a record's field that names its group (eval --by)."""
    value = (record.data or {}).get(field_name)
    return "(missing)" if value is None else str(value)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """The chance that a random positive scores above a random negative, ties counting half
    (the Mann-Whitney statistic); None without both classes."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return None
    values = np.concatenate([pos, neg])
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # tied values share the mean of their ranks
    ranks = (upper - (counts - 1) / 2)[inverse]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def best_threshold(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """(the best balanced accuracy of `score >= t`, that t) over the scores as thresholds:
    SummaC's per-dataset threshold, fitted on the data it is reported on."""
    best = (0.0, 0.5)
    for t in np.unique(scores):
        said = scores >= t
        tpr = (said & positive).sum() / max(int(positive.sum()), 1)
        tnr = (~said & ~positive).sum() / max(int((~positive).sum()), 1)
        best = max(best, (float(tpr + tnr) / 2, float(t)))
    return best


def check_nli_labels(mapping: LabelMap) -> None:
    """Evaluation compares class names, so the model's outputs must be named."""
    known = set(NLI_CLASSES) | {NOT_ENTAILMENT}
    if not set(mapping.names) <= known:
        raise ModelError(f"eval needs named NLI outputs; {mapping.describe()}")


def judge_records(
    nli: NLIModel,
    records: Iterable[Record],
    options: PairOptions | None = None,
    *,
    label_field: str = EVAL.label_field,
    on_error: OnError | str = OnError.SKIP,
    timely: bool = False,
    **changes: Any,
) -> Iterator[Result[Judgement]]:
    """A Result per record, in input order: its Judgement, or the error. The pairs are read
    as PairOptions (or its fields as `changes`) say: long_input, what to do with a pair
    longer than the model reads (documents.py)."""
    check_nli_labels(nli.labels)
    reading = PairReading(nli, PairOptions.of(options, **changes))
    fields = reading.fields

    def pairs_of(record: Record):
        assert record.data is not None
        if fields.fields is None and label_field not in record.data:
            raise ColumnsError(
                f"{record.where}: no '{label_field}' field; columns present: "
                f"{', '.join(record.data)}; use `label_field`"
            )
        if gold_label(record, label_field) is None:  # checked now: a bad label is a bad row
            fields.read(record)  # its pair is still checked, and names the source's fields
            return []
        return reading(record)

    for done in score_scored(nli, records, pairs_of, on_error=on_error, timely=timely):
        if not done.error and gold_label(done.record, label_field) is None:
            yield Result(done.record, Judgement(None, None))
            continue
        found = reading.result(done, on_error)
        if isinstance(found, RowError):
            yield Result(done.record, error=found)
            continue
        gold = gold_label(done.record, label_field)
        yield Result(done.record, Judgement(found, gold), pair=fields.read(done.record))


def evaluate(
    nli: NLIModel,
    records: Iterable[Record],
    *,
    label_field: str = EVAL.label_field,
    by: str | None = EVAL.by,
    **options: Any,
) -> Report:
    """Judge every record and gather the report (bad records count as failed; with `by`,
    the figures per value of that field too)."""
    report = Report.for_model(nli.labels, by)
    for judged in judge_records(nli, records, label_field=label_field, **options):
        if judged.error:
            report.failed += 1
        else:
            report.add_judged(judged)
    return report


# Zero-shot evaluation: classify's results against a gold label field. A single-label gold
# is one label (a string); a multi-label gold is a list of labels (a string is a list of one).
NONE = "(none)"  # what an abstention (a threshold no label reached) counts as


@dataclass(frozen=True)
class LabelJudgement:
    """A classified text's chosen labels against its gold ones; gold None for a row whose
    gold label says it has none (UNLABELLED)."""

    chosen: tuple[str, ...]
    gold: tuple[str, ...] | None
    labels: tuple[str, ...]  # the text's candidate labels


def chosen_labels(result: ZeroShot, multi_label: bool, threshold: float | None) -> list[str]:
    """What a result answers: its `selected` labels where a threshold chose them, else the
    top label (single-label) or every label scoring 0.5 or more (multi-label)."""
    if result.selected is not None:
        return list(result.selected)
    if multi_label:
        cut = 0.5 if threshold is None else threshold
        return [name for name, score in zip(result.labels, result.scores) if score >= cut]
    return result.labels[:1]


def gold_labels(record: Record, field_name: str, multi_label: bool) -> tuple[str, ...] | None:
    """A record's gold labels (None: unlabelled), or a RowFailure naming the field."""
    assert record.data is not None
    if field_name not in record.data:
        raise RowFailure(RowError.of(record, f"missing field '{field_name}'", field_name))
    value = record.data[field_name]
    if isinstance(value, str):
        return None if value.strip() in UNLABELLED else (value.strip(),)
    if multi_label and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value)
    wanted = "a label or a list of labels" if multi_label else "a label (a string)"
    message = f"field '{field_name}' must be {wanted}, got {value!r}"
    raise RowFailure(RowError.of(record, message, field_name))


def judge_zero_shot(
    results: Iterable[Result[ZeroShot]],
    *,
    label_field: str = EVAL.label_field,
    multi_label: bool = False,
    threshold: float | None = None,
    on_error: OnError | str = OnError.SKIP,
) -> Iterator[Result[LabelJudgement]]:
    """Each classified record against its gold labels; a gold label that is not one of the
    record's candidates is that record's error."""
    on_error = choose(OnError, on_error, "on_error")
    for result in results:
        if result.error or result.output is None:
            if on_error is OnError.FAIL and result.error:
                raise RowFailure(result.error)
            yield Result(result.record, error=result.error)
            continue
        output = result.output
        try:
            gold = gold_labels(result.record, label_field, multi_label)
            unknown = [name for name in gold or () if name not in output.labels]
            if unknown and len(output.labels) == len(set(output.labels)):
                message = (
                    f"field '{label_field}': gold label {unknown[0]!r} is not a candidate "
                    f"({', '.join(output.labels)})"
                )
                raise RowFailure(RowError.of(result.record, message, label_field))
        except RowFailure as failure:
            if on_error is OnError.FAIL:
                raise
            yield Result(result.record, error=failure.error)
            continue
        chosen = tuple(chosen_labels(output, multi_label, threshold))
        yield Result(result.record, LabelJudgement(chosen, gold, tuple(output.labels)))


@dataclass
class LabelReport:
    """Zero-shot figures: per label precision, recall and F1 (a label is predicted when it
    is chosen, and gold when the row's gold labels hold it), their macro mean, and micro
    figures over every (row, label); single-label also accuracy, balanced accuracy and the
    confusion (gold -> chosen, NONE for an abstention); multi-label the exact-match rate."""

    multi_label: bool = False
    rows: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    labels: dict[str, None] = field(default_factory=dict)  # every candidate seen, in order
    failed: int = 0
    unlabelled: int = 0
    groups: dict[str, LabelReport] = field(default_factory=dict)
    by: str | None = None

    def add_judged(self, judged: Result[LabelJudgement]) -> None:
        verdict = judged.output
        assert verdict is not None
        target = self
        if self.by is not None:
            name = group_of(judged.record, self.by)
            target = self.groups.setdefault(name, LabelReport(self.multi_label))
        for report in {id(self): self, id(target): target}.values():
            report.labels.update(dict.fromkeys(verdict.labels))
            if verdict.gold is None:
                report.unlabelled += 1
            else:
                report.rows.append((verdict.gold, verdict.chosen))

    def as_dict(self) -> dict:
        labels = list(self.labels)
        per_label = {}
        totals = np.zeros(3, int)  # true positives, chosen, gold, over every label
        for label in labels:
            tp = sum(label in gold and label in chosen for gold, chosen in self.rows)
            predicted = sum(label in chosen for _, chosen in self.rows)
            support = sum(label in gold for gold, _ in self.rows)
            totals += (tp, predicted, support)
            per_label[label] = _prf(tp, predicted, support)
        scored = len(self.rows)
        found: dict = {
            "multi_label": self.multi_label,
            "candidate_labels": labels,
            "per_label": per_label,
            "macro_f1": sum(v["f1"] for v in per_label.values()) / len(labels) if labels else 0.0,
            "micro": _prf(int(totals[0]), int(totals[1]), int(totals[2])),
        }
        exact = sum(set(gold) == set(chosen) for gold, chosen in self.rows)
        if self.multi_label:
            found["exact_match"] = exact / scored if scored else 0.0
        else:
            found["accuracy"] = exact / scored if scored else 0.0
            recalls = [v["recall"] for v in per_label.values() if v["support"]]
            found["balanced_accuracy"] = sum(recalls) / len(recalls) if recalls else 0.0
            columns = [*labels, NONE]
            matrix = {g: dict.fromkeys(columns, 0) for g in labels}
            for gold, chosen in self.rows:
                matrix[gold[0]][chosen[0] if chosen else NONE] += 1
            found["confusion"] = matrix
        found["counts"] = {
            "scored": scored,
            "correct": exact,
            "failed": self.failed,
            "unlabelled": self.unlabelled,
        }
        if self.by is not None:
            found["by"] = {
                "field": self.by,
                "groups": {name: self.groups[name].as_dict() for name in sorted(self.groups)},
            }
        return found


def _prf(tp: int, predicted: int, support: int) -> dict:
    precision = tp / predicted if predicted else 0.0
    recall = tp / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "predicted": predicted,
    }


def classified_rows(records: Iterable[Record]) -> Iterator[Result[ZeroShot]]:
    """classify's output rows read back (their `text`, `labels`, `scores`, `selected`), to
    evaluate without scoring again; a row without them is that row's error."""
    for record in records:
        if record.error or record.data is None:
            yield Result(record, error=RowError.of(record, record.error or "no row"))
            continue
        data = record.data
        labels, scores = data.get("labels"), data.get("scores")
        selected = data.get("selected")
        good = (
            isinstance(labels, list)
            and isinstance(scores, list)
            and len(labels) == len(scores)
            and all(isinstance(n, str) for n in labels)
            and all(isinstance(s, (int, float)) for s in scores)
            and (selected is None or isinstance(selected, list))
        )
        if not good:
            message = (
                "not a classify result: expected 'labels' and 'scores' lists of one length "
                "(squeezenli classify writes them)"
            )
            yield Result(record, error=RowError.of(record, message, "labels"))
            continue
        assert isinstance(labels, list) and isinstance(scores, list)
        text = data.get("text")
        output = ZeroShot(
            text if isinstance(text, str) else "",
            list(labels),
            [float(s) for s in scores],
            bool(data.get("truncated", False)),
            None if selected is None else [str(n) for n in selected],
        )
        yield Result(record, output)


RELIABILITY_BINS = 10
CURVE_POINTS = 400  # a ROC curve drawn from at most about this many points (its shape kept)


def curves(report: Report) -> dict:
    """What the report's charts draw, for entailment against the rest by P(entailment):
    the ROC curve (every distinct score a threshold), the best threshold's point on it, and
    the reliability of the probabilities (pairs binned by P(entailment): their mean and the
    share of them that were entailment)."""
    scores = np.array(report.entailment, np.float64)
    positive = np.array([gold == "entailment" for gold, _ in report.pairs], bool)
    found: dict = {"pairs": len(scores)}
    if positive.any() and (~positive).any():
        order = np.argsort(-scores, kind="mergesort")
        ranked, hits = scores[order], positive[order]
        last = np.r_[np.nonzero(np.diff(ranked))[0], len(ranked) - 1]  # each distinct score
        tpr = np.r_[0.0, np.cumsum(hits)[last] / hits.sum()]
        fpr = np.r_[0.0, np.cumsum(~hits)[last] / (~hits).sum()]
        keep = np.unique(np.r_[np.linspace(0, len(tpr) - 1, CURVE_POINTS).round(), len(tpr) - 1])
        _, threshold = best_threshold(scores, positive)
        said = scores >= threshold
        found["roc"] = {
            "fpr": fpr[keep.astype(int)].tolist(),
            "tpr": tpr[keep.astype(int)].tolist(),
            "auc": roc_auc(scores, positive),
            "threshold": threshold,
            "at": [float(said[~positive].mean()), float(said[positive].mean())],
        }
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    bins = np.clip(np.digitize(scores, edges[1:-1]), 0, RELIABILITY_BINS - 1)
    found["reliability"] = [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "pairs": int((bins == b).sum()),
            "mean": float(scores[bins == b].mean()) if (bins == b).any() else None,
            "entailment": float(positive[bins == b].mean()) if (bins == b).any() else None,
        }
        for b in range(RELIABILITY_BINS)
    ]
    return found
