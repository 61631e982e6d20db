"""Result rows, shaped once for every interface (the CLI's JSON lines and CSV/TSV, Ray's
columns, the server's responses): which fields a task adds to its input row, under which
names, and the rule that they never overwrite an input field unasked.

Each task has one function that turns its output into the fields it adds (nested, as JSON
holds them; or flat, one cell a column, for CSV/TSV) and one that lists their names before
any row is scored, so a header, a schema or a collision is known up front.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from squeezenli.errors import InputError
from squeezenli.models.labels import LabelMap
from squeezenli.records.readers import Record, RowError, RowFailure
from squeezenli.runtime.prediction import Prediction


def parse_renames(text: str | None) -> dict[str, str]:
    """ "prediction=label,scores=probs" -> {"prediction": "label", "scores": "probs"}."""
    renamed: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        old, sep, new = (part.strip() for part in item.partition("="))
        if not sep or not old or not new:
            raise InputError(f"`output_fields` takes NAME=NEW pairs, got {item.strip()!r}")
        if old in renamed:
            raise InputError(f"`output_fields` renames {old!r} twice ({renamed[old]!r}, {new!r})")
        renamed[old] = new
    return renamed


class ResultFields:
    """The fields a task adds (`own`, in order), each named `prefix` + its rename. A row
    whose input holds one of those names is that row's error: output never overwrites an
    input field unasked."""

    def __init__(
        self,
        own: Sequence[str],
        prefix: str = "",
        renames: Mapping[str, str] | str | None = None,
    ) -> None:
        renamed = parse_renames(renames) if isinstance(renames, str) or renames is None else renames
        unknown = [name for name in renamed if name not in own]
        if unknown:
            raise InputError(
                f"`output_fields` renames the result's fields ({', '.join(own)}), "
                f"got {unknown[0]!r}"
            )
        self.names = {name: prefix + renamed.get(name, name) for name in own}
        self.fields = list(self.names.values())
        if len(set(self.fields)) != len(self.fields):
            raise InputError(f"`output_fields` gives two result fields one name: {self.fields}")

    def collision(self, names: Iterable[str]) -> str | None:
        """Why a row with these input fields cannot take the result (None: it can)."""
        present = set(names)
        taken = [name for name in self.fields if name in present]
        if not taken:
            return None
        return (
            f"input field '{taken[0]}' would be overwritten by the result; pass a prefix "
            "(--prefix new_) or rename the result's fields (--output-fields)"
        )

    def refuse(self, columns: Iterable[str], where: str) -> None:
        """Refuse, before any row, input columns known up front (a CSV header, a schema)."""
        problem = self.collision(columns)
        if problem:
            raise InputError(f"{where}: {problem}")

    def named(self, added: Mapping[str, object]) -> dict:
        """The result's fields under their output names (fields this run does not add are
        left out)."""
        return {self.names[k]: v for k, v in added.items() if k in self.names}

    def row(self, record: Record, added: Mapping[str, object]) -> dict:
        """The input row with the result's fields after it; a collision is the row's
        RowFailure, naming the field."""
        assert record.data is not None
        problem = self.collision(record.data)
        if problem:
            raise RowFailure(RowError.of(record, problem, problem.split("'")[1]))
        return {**record.data, **self.named(added)}


def prediction_names(
    labels: LabelMap | None,
    *,
    flat: bool = False,
    chunked: bool = False,
    entailed: bool = False,
    logits: bool = False,
) -> list[str]:
    """What scoring a pair adds: prediction, scores (flat: a column per class), truncated;
    chunked: evidence (flat: evidence_start, evidence_end) and windows; a threshold:
    entailed; logits: logits (flat: logit_<class>)."""
    classes = [] if labels is None else [labels.names[i] for i in labels.ordered()]
    if flat and labels is None:
        raise ValueError("flat result fields name the model's labels")
    own = ["prediction", *(classes if flat else ["scores"]), "truncated"]
    if chunked:
        own += ["evidence_start", "evidence_end", "windows"] if flat else ["evidence", "windows"]
    own += ["entailed"] if entailed else []
    if logits:
        own += [f"logit_{name}" for name in classes] if flat else ["logits"]
    return own


def prediction_fields(prediction: Prediction, flat: bool = False) -> dict:
    """A Prediction's fields, nested (Prediction.fields) or flat (CSV/TSV cells)."""
    found = prediction.fields()
    if not flat:
        return found
    cells = {"prediction": prediction.label, **found["scores"]}
    cells["truncated"] = str(prediction.truncated).lower()
    if "evidence" in found:
        cells["evidence_start"] = found["evidence"]["start"]
        cells["evidence_end"] = found["evidence"]["end"]
        cells["windows"] = found["windows"]
    if "entailed" in found:
        cells["entailed"] = str(found["entailed"]).lower()
    for name, value in (found.get("logits") or {}).items():
        cells[f"logit_{name}"] = value
    return cells


def zero_shot_names(text: bool = False, selected: bool = False) -> list[str]:
    """What classifying a text adds (ZeroShot.fields): labels, scores, truncated (and `text`
    when the text came from another field, `selected` with a threshold)."""
    return [*(["text"] if text else []), "labels", "scores", "truncated"] + (
        ["selected"] if selected else []
    )


# What checking a text adds (Check.fields).
CHECK_NAMES = ["claims", "score", "supported_text", "windows"]


def every_result_name() -> list[str]:
    """Every field a task may add, nested (what Ray's error rows are stripped of)."""
    found = prediction_names(None, chunked=True, entailed=True, logits=True)
    found += zero_shot_names(text=True, selected=True) + CHECK_NAMES
    return list(dict.fromkeys(found))
