"""Zero-shot classification by NLI, the method of transformers' zero-shot pipeline.

Each text is a premise; each candidate label, put into a template, is a hypothesis. With one
label per text (single-label), the scores are a softmax of the entailment logits across the
labels; with --multi-label each label is scored on its own, as a softmax of entailment against
contradiction. All text x label pairs go through the engine as one stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from squeezenli.errors import InputError, ModelError
from squeezenli.models.labels import DEFAULT_TEMPLATE, LabelMap
from squeezenli.records.readers import ColumnsError, Record, text_field
from squeezenli.runtime.engine import Pair, softmax
from squeezenli.runtime.model import NLIModel
from squeezenli.tasks.scoring import Result, score_scored


@dataclass(frozen=True)
class ZeroShot:
    """One text's labels, highest score first, shaped as the pipeline's output."""

    text: str
    labels: list[str]
    scores: list[float]
    truncated: bool = False  # the text was cut to fit beside a label's hypothesis


def parse_labels(labels: str | Sequence[str]) -> list[str]:
    """Candidate labels from a comma-separated string or a list; distinct and non-empty."""
    items = labels.split(",") if isinstance(labels, str) else list(labels)
    names = [name.strip() for name in items if name.strip()]
    if not names:
        raise InputError("`labels` needs at least one label, e.g. sports,politics")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"`labels` lists {', '.join(repeated)} more than once")
    return names


def hypotheses(labels: Sequence[str], template: str) -> list[str]:
    """The hypothesis for each label: the template with `{}` replaced by the label."""
    if "{}" not in template:
        raise InputError(f"`template` must contain {{}} where the label goes, got {template!r}")
    return [template.replace("{}", label) for label in labels]


class ZeroShotScorer:
    """Turns the logits of one text's label pairs into the pipeline's scores."""

    def __init__(self, mapping: LabelMap, labels: Sequence[str], multi_label: bool) -> None:
        names = mapping.names
        if "entailment" not in names:
            raise ModelError(
                f"zero-shot needs to know which output is entailment; {mapping.describe()}"
            )
        self.labels = list(labels)
        self.entailment = names.index("entailment")
        # As the pipeline: one label alone is always scored against contradiction.
        self.multi_label = multi_label or len(self.labels) == 1
        others = [n for n in ("contradiction", "not_entailment") if n in names]
        self.contradiction = names.index(others[0]) if others else None
        if self.multi_label and self.contradiction is None:
            raise ModelError(f"`multi_label` needs a contradiction output; {mapping.describe()}")

    def __call__(self, text: str, logits: np.ndarray, truncated: bool = False) -> ZeroShot:
        if self.multi_label:
            assert self.contradiction is not None  # checked in __init__
            pairs = logits[:, [self.contradiction, self.entailment]]
            scores = softmax(pairs)[:, 1]
        else:
            scores = softmax(logits[:, self.entailment])
        order = np.argsort(-scores, kind="stable")
        labels = [self.labels[i] for i in order]
        return ZeroShot(text, labels, [float(scores[i]) for i in order], truncated)


def classify(
    nli: NLIModel,
    texts: Iterable[str],
    labels: str | Sequence[str],
    *,
    template: str = DEFAULT_TEMPLATE,
    multi_label: bool = False,
) -> Iterator[ZeroShot]:
    """A ZeroShot per text, in input order, streamed."""
    records = (Record("<texts>", n, {"text": t}) for n, t in enumerate(texts, start=1))
    for outcome in classify_records(
        nli, records, labels, template=template, multi_label=multi_label
    ):
        assert outcome.output is not None
        yield outcome.output


def classify_records(
    nli: NLIModel,
    records: Iterable[Record],
    labels: str | Sequence[str],
    *,
    text_field_name: str = "text",
    template: str = DEFAULT_TEMPLATE,
    multi_label: bool = False,
    on_error: str = "fail",
    timely: bool = False,
) -> Iterator[Result[ZeroShot]]:
    """A Result per record, in input order; bad records as score_scored treats them."""
    names = parse_labels(labels)
    scorer = ZeroShotScorer(nli.labels, names, multi_label)
    label_hypotheses = hypotheses(names, template)

    seen_columns = False

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
        return [(text, hypothesis) for hypothesis in label_hypotheses]

    for done in score_scored(nli, records, pairs_of, on_error=on_error, timely=timely):
        if done.error:
            yield Result(done.record, error=done.error)
        else:
            assert done.logits is not None
            text = text_field(done.record, text_field_name)
            yield Result(done.record, scorer(text, done.logits, any(done.truncated)))
