"""Zero-shot classification by NLI, the method of transformers' zero-shot pipeline.

Each text is a premise; each candidate label, put into a template, is a hypothesis. With one
label per text (single-label), the scores are a softmax of the entailment logits across the
labels; with --multi-label each label is scored on its own, as a softmax of entailment against
contradiction. All text x label pairs go through the engine as one stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from squeezenli.choices import OnError
from squeezenli.errors import InputError, ModelError
from squeezenli.models.labels import LabelMap
from squeezenli.records.readers import ColumnsError, Record, RowError, RowFailure, text_field
from squeezenli.runtime.engine import Pair, softmax
from squeezenli.runtime.model import NLIModel
from squeezenli.tasks.options import ZeroShotOptions, parse_labels
from squeezenli.tasks.results import Result, ZeroShot
from squeezenli.tasks.scoring import score_scored


@dataclass(frozen=True)
class Decision:
    """The step after the scores. threshold: multi-label, every label scoring at least it
    is selected; single-label, the top label is, if it scores at least it (else none is:
    abstaining). none_label: what an abstention selects (else nothing). top_k: keep only the
    K best labels and scores in the result, and select among those (at most K). Scores are
    comparable to a threshold as the docs say: single-label ones share 1 across the labels,
    multi-label ones are each label's entailment against contradiction. Checked as ZeroShotOptions
    checks them."""

    threshold: float | None = None
    top_k: int | None = None
    none_label: str | None = None

    def __post_init__(self) -> None:
        ZeroShotOptions(threshold=self.threshold, top_k=self.top_k, none_label=self.none_label)

    @classmethod
    def of(cls, options: ZeroShotOptions) -> Decision:
        return cls(options.threshold, options.top_k, options.none_label)

    def apply(self, result: ZeroShot, multi_label: bool) -> ZeroShot:
        k = self.top_k or len(result.labels)
        labels, scores = result.labels[:k], result.scores[:k]
        selected = None
        if self.threshold is not None:  # among the labels shown: never one the row lacks
            chosen = [n for n, v in zip(labels, scores) if v >= self.threshold]
            selected = chosen if multi_label else chosen[:1]
            if not selected and self.none_label is not None:
                selected = [self.none_label]
        return replace(result, labels=labels, scores=scores, selected=selected)


def hypotheses(
    labels: Sequence[str], template: str, per_label: Mapping[str, str] | None = None
) -> list[str]:
    """The hypothesis for each label: its own (per_label, as --hypotheses gives them), else
    the template with `{}` replaced by the label."""
    per_label = per_label or {}
    return [per_label.get(label) or template.replace("{}", label) for label in labels]


def load_hypotheses(path: Path) -> dict[str, str]:
    """label -> hypothesis from a JSON object, or a CSV/TSV with `label` and `hypothesis`
    columns (labels may hold commas there); refused with the file and line at fault."""
    import csv
    import io
    import json

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeError) as err:
        raise InputError(f"cannot read `hypotheses` {path}: {err}") from None
    if path.suffix.lower() == ".json":
        try:
            found = json.loads(text)
        except ValueError as err:
            raise InputError(f"{path}: not JSON ({err})") from None
        if not isinstance(found, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip()
            for k, v in found.items()
        ):
            raise InputError(f"{path}: expected an object of label -> hypothesis text")
        return {k.strip(): v for k, v in found.items()}
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not {"label", "hypothesis"} <= set(reader.fieldnames or ()):
        raise InputError(
            f"{path}: expected 'label' and 'hypothesis' columns, got {reader.fieldnames}"
        )
    mapping: dict[str, str] = {}
    for row in reader:
        label, hypothesis = (row.get("label") or "").strip(), row.get("hypothesis") or ""
        if not label or not hypothesis.strip():
            raise InputError(f"{path}:{reader.line_num}: empty label or hypothesis")
        if label in mapping:
            raise InputError(f"{path}:{reader.line_num}: label {label!r} given twice")
        mapping[label] = hypothesis
    if not mapping:
        raise InputError(f"{path}: no labels")
    return mapping


class ZeroShotScorer:
    """Turns the logits of one text's label pairs into the pipeline's scores."""

    def __init__(self, mapping: LabelMap, multi_label: bool) -> None:
        names = mapping.names
        if "entailment" not in names:
            raise ModelError(
                f"zero-shot needs to know which output is entailment; {mapping.describe()}"
            )
        self.entailment = names.index("entailment")
        self.requested_multi_label = multi_label
        others = [n for n in ("contradiction", "not_entailment") if n in names]
        self.contradiction = names.index(others[0]) if others else None
        self._mapping = mapping
        if multi_label:
            self.check_multi_label()

    def multi_label(self, labels: Sequence[str]) -> bool:
        """As the pipeline: one label alone is always scored against contradiction."""
        return self.requested_multi_label or len(labels) == 1

    def check_multi_label(self) -> None:
        if self.contradiction is None:
            raise ModelError(
                f"`multi_label` needs a contradiction output; {self._mapping.describe()}"
            )

    def __call__(
        self, text: str, labels: Sequence[str], logits: np.ndarray, truncated: bool = False
    ) -> ZeroShot:
        if self.multi_label(labels):
            self.check_multi_label()
            assert self.contradiction is not None
            pairs = logits[:, [self.contradiction, self.entailment]]
            scores = softmax(pairs)[:, 1]
        else:
            scores = softmax(logits[:, self.entailment])
        order = np.argsort(-scores, kind="stable")
        ranked = [labels[i] for i in order]
        return ZeroShot(text, ranked, [float(scores[i]) for i in order], truncated)


def classify(
    nli: NLIModel,
    texts: Iterable[str],
    labels: str | Sequence[str] | None,
    *,
    decision: Decision | None = None,
    **options: Any,
) -> Iterator[ZeroShot]:
    """A ZeroShot per text, in input order, streamed (with the labels a decision selects);
    `options` are ZeroShotOptions' (template, multi_label, hypotheses, ...)."""
    if decision is not None:
        options.update(
            threshold=decision.threshold, top_k=decision.top_k, none_label=decision.none_label
        )
    records = (Record("<texts>", n, {"text": t}) for n, t in enumerate(texts, start=1))
    for outcome in classify_records(nli, records, labels, **options):
        assert outcome.output is not None
        yield outcome.output


def classify_records(
    nli: NLIModel,
    records: Iterable[Record],
    labels: str | Sequence[str] | None = None,
    options: ZeroShotOptions | None = None,
    *,
    on_error: OnError | str = OnError.SKIP,
    timely: bool = False,
    **changes: Any,
) -> Iterator[Result[ZeroShot]]:
    """A Result per record, in input order; bad records as score_scored treats them. Labels:
    a row's own `labels_field` list, else `labels`, else the labels of `hypotheses` (label ->
    hypothesis, the template serving labels it lacks). With a threshold, each result carries
    the labels it selects (and only its top_k). `changes`: ZeroShotOptions fields."""
    if labels is not None:
        changes["labels"] = labels
    options = ZeroShotOptions.of(options, **changes)
    names = options.candidates()
    scorer = ZeroShotScorer(nli.labels, options.multi_label)
    decision = Decision.of(options)
    template, per_label = options.template, options.hypotheses
    text_field_name, labels_field = options.text_field, options.labels_field

    seen_columns = False

    def row_labels(record: Record) -> list[str]:
        assert record.data is not None
        own = record.data.get(labels_field)
        if labels_field in record.data:
            if not isinstance(own, list) or not all(isinstance(n, str) for n in own):
                raise RowFailure(
                    RowError.of(record, f"'{labels_field}' must be a list of labels", labels_field)
                )
            try:
                return parse_labels(own)
            except InputError as err:
                message = f"'{labels_field}': {err}"
                raise RowFailure(RowError.of(record, message, labels_field)) from None
        if names is None:
            message = f"no labels: give `labels`, or a '{labels_field}' list in each row"
            raise RowFailure(RowError.of(record, message, labels_field))
        return names

    def pairs_of(record: Record) -> list[Pair]:
        nonlocal seen_columns
        assert record.data is not None
        # The first good record decides whether the source has the column at all.
        if not seen_columns and text_field_name not in record.data:
            raise ColumnsError(
                f"{record.where}: no '{text_field_name}' field; columns present: "
                f"{', '.join(record.data) or 'none'}; use `text_field`"
            )
        seen_columns = True
        text = text_field(record, text_field_name)
        return [(text, h) for h in hypotheses(row_labels(record), template, per_label)]

    for done in score_scored(nli, records, pairs_of, on_error=on_error, timely=timely):
        if done.error:
            yield Result(done.record, error=done.error)
        else:
            assert done.logits is not None
            text = text_field(done.record, text_field_name)
            row = row_labels(done.record)
            found = scorer(text, row, done.logits, any(done.truncated))
            yield Result(done.record, decision.apply(found, scorer.multi_label(row)))
