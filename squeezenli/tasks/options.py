"""Each task's options as one frozen object: an option's name, default, type, range and help
are written here once, with the flag and the request field that set it. The CLI's flags
(cli/options.task_options), the server's decoders and OpenAPI document (serve/requests.py,
serve/openapi.py), the MCP tools' input schemas (serve/mcp.py), the --server client and
Ray's actors all read them from these classes, so an option added here appears in each.

Light to import (the CLI builds its flags from it before anything heavy loads): choices,
errors and the default template only.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any, ClassVar, TypeVar, Union

from squeezenli.choices import Aggregate, Evidence, LongInput, RowScore, choose
from squeezenli.errors import Fault, InputError
from squeezenli.models.labels import DEFAULT_TEMPLATE

_SPEC = "squeezenli"


@dataclass(frozen=True)
class Spec:
    """What the fields of an options class carry beside their default."""

    help: str
    wire: str | None = None  # its name in a request body and an MCP tool (else the field's)
    flag: str | None = None  # its flag (else --field-name)
    short: str | None = None  # a one-letter flag too
    minimum: float | None = None
    maximum: float | None = None
    names_field: bool = False  # names an input field: no MCP argument (tools take texts)
    cli: bool = True  # False: the command declares its own flag (it reads a list or a file)


def option(default: Any, help: str, **spec: Any) -> Any:
    """A field of an options class, with its Spec."""
    return field(default=default, metadata={_SPEC: Spec(help, **spec)})


def probability(default: float | None, help: str, **spec: Any) -> Any:
    return option(default, help, minimum=0.0, maximum=1.0, **spec)


@dataclass(frozen=True)
class Param:
    """One option as every layer sees it: the field, its value type and whether None is
    allowed (None: the option is not given), its default and its Spec."""

    name: str
    kind: type  # str, float, int, bool, an Enum, list (of strings) or dict (str -> str)
    optional: bool
    default: Any
    spec: Spec

    @property
    def wire(self) -> str:
        return self.spec.wire or self.name

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """The value as the option holds it (an Enum member, a float, a tuple of strings),
        or an InputError naming the parameter."""
        if value is None:
            if self.optional:
                return None
            raise InputError(f"`{self.name}` is required", self.name, Fault.REQUIRED)
        if issubclass(self.kind, Enum):
            return choose(self.kind, value, self.name)
        if self.kind is bool:
            if not isinstance(value, bool):
                raise self._wrong("true or false", value)
            return value
        if self.kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._wrong("a number" if self.kind is float else "an integer", value)
            if self.kind is int and not isinstance(value, int):
                raise self._wrong("an integer", value)
            return self._in_range(self.kind(value), value)
        if self.kind is list:
            if isinstance(value, str):
                return tuple(value.split(","))
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise self._wrong("a list of strings", value)
            return tuple(value)
        if self.kind is dict:
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise self._wrong("an object of strings", value)
            return dict(value)
        if not isinstance(value, str):
            raise self._wrong("a string", value)
        return value

    def _in_range(self, value: float, given: Any) -> float:
        low, high = self.spec.minimum, self.spec.maximum
        if (low, high) == (0.0, 1.0) and not 0.0 <= value <= 1.0:
            raise InputError(
                f"`{self.name}` must be a probability from 0 to 1, got {given}", self.name
            )
        if low is not None and value < low:
            raise InputError(f"`{self.name}` must be at least {low:g}, got {given}", self.name)
        if high is not None and value > high:
            raise InputError(f"`{self.name}` must be at most {high:g}, got {given}", self.name)
        return value

    def _wrong(self, wanted: str, value: Any) -> InputError:
        return InputError(f"`{self.name}` must be {wanted}, got {kind_of(value)}", self.name)

    def to_wire(self, value: Any) -> Any:
        """The value as JSON holds it."""
        if isinstance(value, Enum):
            return value.value
        return list(value) if isinstance(value, tuple) else value

    def json_schema(self) -> dict:
        """The option's JSON schema (OpenAPI, MCP), with its help and default."""
        found: dict[str, Any]
        if issubclass(self.kind, Enum):
            found = {"type": "string", "enum": [member.value for member in self.kind]}
        else:
            found = dict(_SCHEMAS[self.kind])
        if self.spec.minimum is not None:
            found["minimum"] = self.spec.minimum
        if self.spec.maximum is not None:
            found["maximum"] = self.spec.maximum
        found["description"] = self.spec.help
        if self.default is not None:
            found["default"] = self.to_wire(self.default)
        return found


_SCHEMAS: dict[type, dict] = {
    str: {"type": "string"},
    float: {"type": "number"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    list: {"type": "array", "items": {"type": "string"}},
    dict: {"type": "object", "additionalProperties": {"type": "string"}},
}


def kind_of(value: Any) -> str:
    """What a JSON value is, in words."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


OptionsT = TypeVar("OptionsT", bound="TaskOptions")


@dataclass(frozen=True)
class TaskOptions:
    """A task's options: checked (and made their types) when made, whoever makes them."""

    task: ClassVar[str]  # the task's name, as the server's route and the MCP tool know it

    def __post_init__(self) -> None:
        for param in params(type(self)):
            object.__setattr__(self, param.name, param.check(getattr(self, param.name)))
        self.validate()

    def validate(self) -> None:
        """The checks between options (a task's own)."""

    def result_names(self) -> list[str]:
        """The fields a result row gains (nested, as JSON holds them)."""
        return []

    @classmethod
    def of(cls: type[OptionsT], options: OptionsT | None = None, **changes: Any) -> OptionsT:
        """`options` (else the defaults) with `changes`: the library's keyword arguments."""
        unknown = [name for name in changes if name not in {p.name for p in params(cls)}]
        if unknown:
            raise TypeError(f"{cls.__name__} has no option {unknown[0]!r}")
        found = options if options is not None else cls()
        return replace(found, **changes) if changes else found

    @classmethod
    def split(cls, given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """`given` keyword arguments as (this task's options, the others)."""
        names = {p.name for p in params(cls)}
        return (
            {k: v for k, v in given.items() if k in names},
            {k: v for k, v in given.items() if k not in names},
        )

    @classmethod
    def from_wire(cls: type[OptionsT], body: Mapping[str, Any]) -> OptionsT:
        """The options a request body (or an MCP call) gives; JSON null is the default."""
        return cls(**{p.name: body[p.wire] for p in params(cls) if body.get(p.wire) is not None})

    def to_wire(self) -> dict[str, Any]:
        """The options as a request body holds them (for the --server client)."""
        return {p.wire: p.to_wire(getattr(self, p.name)) for p in params(type(self))}

    @classmethod
    def wire_name(cls, name: str | None) -> str | None:
        """The request field of a parameter (a name that is no option stays as it is)."""
        for param in params(cls):
            if param.name == name:
                return param.wire
        return name


_PARAMS: dict[type, tuple[Param, ...]] = {}


def params(cls: type[TaskOptions]) -> tuple[Param, ...]:
    """The options of a class, in order (read once per class)."""
    if cls in _PARAMS:
        return _PARAMS[cls]
    hints = typing.get_type_hints(cls)
    found = []
    for item in fields(cls):
        hint, optional = hints[item.name], False
        if typing.get_origin(hint) in (Union, types.UnionType):
            others = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            hint, optional = others[0], True
        kind = typing.get_origin(hint) or hint
        kind = list if kind is tuple else kind  # a list of strings, held as a tuple
        found.append(Param(item.name, kind, optional, item.default, item.metadata[_SPEC]))
    _PARAMS[cls] = tuple(found)
    return _PARAMS[cls]


@dataclass(frozen=True)
class PairOptions(TaskOptions):
    """Scoring pairs (tasks/scoring.py): `batch`, `score`, /score, score_pairs."""

    task: ClassVar[str] = "score"

    premise_field: str | None = option(
        None, "[default: premise, or sentence1, text]", names_field=True
    )
    hypothesis_field: str | None = option(
        None, "[default: hypothesis, or sentence2, text_pair]", names_field=True
    )
    long_input: LongInput = option(
        LongInput.TRUNCATE,
        "A pair longer than the model reads: truncate it (the result says so), fail "
        "(the row's error), or chunk (read the premise in windows of whole sentences).",
    )
    aggregate: Aggregate = option(
        Aggregate.ENTAILMENT,
        "With `long_input` chunk, the window that decides: the most likely to entail "
        "(entailment), the largest entailment minus contradiction (margin), or the most "
        "likely to contradict (contradiction).",
    )
    threshold: float | None = probability(
        None, "Add `entailed`: whether the entailment probability is at least this."
    )
    logits: bool = option(False, "Add the raw logits, named by the model's labels.")

    def result_names(self) -> list[str]:
        """The fields a scored row gains (nested, as JSON holds them)."""
        from squeezenli.tasks.rows import prediction_names

        return prediction_names(
            None,
            chunked=self.long_input is LongInput.CHUNK,
            entailed=self.threshold is not None,
            logits=self.logits,
        )


# The field of an input row that holds its own candidate labels (transformers' pipeline
# calls its argument so): a list, used instead of the global labels for that row.
LABELS_FIELD = "candidate_labels"


@dataclass(frozen=True)
class ZeroShotOptions(TaskOptions):
    """Zero-shot classification (tasks/zeroshot.py): `classify`, /classify, classify_text."""

    task: ClassVar[str] = "classify"

    labels: tuple[str, ...] | None = option(
        None, "Candidate labels (a list, or one comma-separated string).", cli=False
    )
    hypotheses: dict[str, str] | None = option(
        None,
        "Each label's own hypothesis (label -> hypothesis); its labels are the candidates "
        "unless `labels` names them.",
        cli=False,
    )
    template: str = option(
        DEFAULT_TEMPLATE, "Hypothesis for each label; {} is the label.", short="-t"
    )
    multi_label: bool = option(False, "Score each label on its own (entailment vs contradiction).")
    threshold: float | None = probability(
        None,
        "Select labels scoring at least this (multi-label: every one; else the top one, or "
        "none: abstain); adds `selected`.",
    )
    top_k: int | None = option(None, "Keep only the K best labels and scores.", minimum=1)
    none_label: str | None = option(None, "What an abstention selects (with `threshold`).")
    labels_field: str = option(
        LABELS_FIELD,
        "A row's own candidate labels (a list), used instead of `labels`.",
        names_field=True,
    )
    text_field: str = option("text", "The field holding the text.", names_field=True)

    def validate(self) -> None:
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(parse_labels(self.labels)))
        if self.hypotheses is not None:
            object.__setattr__(self, "hypotheses", check_hypotheses(self.hypotheses))
        if "{}" not in self.template:
            raise InputError(
                f"`template` must contain {{}} where the label goes, got {self.template!r}",
                "template",
            )
        if self.none_label is not None and self.threshold is None:
            raise InputError(
                "`none_label` is what a threshold abstains with: give `threshold`", "none_label"
            )

    def candidates(self) -> list[str] | None:
        """The labels every row without its own is classified against."""
        return list(self.labels or self.hypotheses or ()) or None

    def result_names(self) -> list[str]:
        from squeezenli.tasks.rows import zero_shot_names

        return zero_shot_names(text=self.text_field != "text", selected=self.threshold is not None)


@dataclass(frozen=True)
class CheckOptions(TaskOptions):
    """Claims against sources (tasks/claims.py): `check`, /check, check_claims."""

    task: ClassVar[str] = "check"

    source_field: str = option("source", "The field holding the source document.", names_field=True)
    text_field: str = option("text", "The field holding the text to check.", names_field=True)
    support: float = probability(
        0.5, "A claim is supported at or above this entailment probability."
    )
    contradict: float = probability(
        0.5, "...else contradicted when a window's contradiction probability reaches this."
    )
    row_score: RowScore = option(
        RowScore.MEAN,
        "The row's score: the mean or the min of its claims' entailment probabilities.",
        wire="score",
        flag="--score",
    )
    aggregate: Aggregate = option(
        Aggregate.ENTAILMENT,
        "The window that decides a claim: the most likely to entail (entailment), the largest "
        "entailment minus contradiction (margin), or the most likely to contradict "
        "(contradiction).",
    )
    evidence: Evidence = option(
        Evidence.SENTENCE,
        "What a claim cites: the fewest whole sentences of its window that carry its verdict "
        "(sentence), or the whole window that decided it (window).",
    )
    claims_field: str | None = option(
        None,
        "Check the claims this field lists (strings, or objects with text and id) as given, "
        "instead of the sentences of the text.",
        names_field=True,
    )

    def result_names(self) -> list[str]:
        from squeezenli.tasks.rows import CHECK_NAMES

        return list(CHECK_NAMES)


def parse_labels(labels: str | Sequence[str]) -> list[str]:
    """Candidate labels from a comma-separated string or a list; distinct and non-empty."""
    items = labels.split(",") if isinstance(labels, str) else list(labels)
    names = [name.strip() for name in items if name.strip()]
    if not names:
        raise InputError("`labels` needs at least one label, e.g. sports,politics", "labels")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"`labels` lists {', '.join(repeated)} more than once", "labels")
    return names


def check_hypotheses(per_label: Mapping[str, str]) -> dict[str, str]:
    """label -> hypothesis, each a non-empty string."""
    if not all(
        isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip()
        for k, v in per_label.items()
    ):
        raise InputError(
            "`hypotheses` must map each label to its hypothesis (non-empty strings)", "hypotheses"
        )
    return dict(per_label)


@dataclass(frozen=True)
class EvalOptions(TaskOptions):
    """What `eval` compares (tasks/evaluation.py): the gold label, and the groups."""

    task: ClassVar[str] = "eval"

    label_field: str = option("label", "The field holding the gold label.", names_field=True)
    by: str | None = option(
        None,
        "Every figure per value of this field too (genre, heuristic, dataset).",
        names_field=True,
    )


EVAL = EvalOptions()
OPTIONS: tuple[type[TaskOptions], ...] = (PairOptions, ZeroShotOptions, CheckOptions, EvalOptions)
