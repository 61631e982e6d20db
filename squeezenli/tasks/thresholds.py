"""Thresholds fitted by evaluation and used by the tasks: `eval --save-threshold FILE`
writes the entailment probability at which `score >= t` had the best balanced accuracy on
the user's labelled rows, with the model, revision and precision that made the scores and
the data it was fitted on; `check --threshold-from FILE` (and `batch`) uses it, and refuses
a file fitted on another model or precision (a probability means nothing across models).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from squeezenli.errors import InputError

if TYPE_CHECKING:
    from squeezenli.runtime.model import NLIModel

FORMAT = "squeezenli-threshold"
VERSION = 1


class ModelIdentity(NamedTuple):
    """What makes a model's probabilities what they are: its repo or folder, its revision
    and the precision that ran."""

    model: str
    revision: str | None
    precision: str


@dataclass(frozen=True)
class FittedThreshold:
    threshold: float
    balanced_accuracy: float
    roc_auc: float | None
    model: str
    revision: str | None
    precision: str
    fitted_on: list[str]
    rows: int
    squeezenli: str

    @classmethod
    def from_report(
        cls, report: dict, identity: ModelIdentity, fitted_on: list[str]
    ) -> FittedThreshold:
        """The threshold an evaluation report found, or an InputError when it found none
        (it needs two-class gold labels)."""
        from squeezenli import __version__

        best = report.get("best_threshold")
        if not best:
            raise InputError(
                "no threshold to save: `save_threshold` needs two-class gold labels "
                "(entailment and not_entailment, or consistent and inconsistent)",
                "save_threshold",
            )
        return cls(
            threshold=best["threshold"],
            balanced_accuracy=best["balanced_accuracy"],
            roc_auc=report.get("roc_auc"),
            model=identity.model,
            revision=identity.revision,
            precision=identity.precision,
            fitted_on=fitted_on,
            rows=report["counts"]["scored"],
            squeezenli=__version__,
        )

    def save(self, path: Path) -> None:
        """Written to a temporary name and renamed: never a torn file."""
        body = {"format": FORMAT, "version": VERSION, **asdict(self)}
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(body, indent=1) + "\n")
            temporary.replace(path)
        except OSError as err:
            temporary.unlink(missing_ok=True)
            raise InputError(f"cannot write {path}: {err.strerror}", "save_threshold") from None

    @classmethod
    def load(cls, path: Path) -> FittedThreshold:
        """A file `save` wrote, checked field by field, or an InputError naming the file."""
        try:
            body = json.loads(path.read_bytes())
        except OSError as err:
            raise InputError(f"cannot read {path}: {err.strerror}", "threshold_from") from None
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise InputError(
                f"{path} is not a threshold file: write one with eval --save-threshold",
                "threshold_from",
            )
        if body.get("version") != VERSION:
            raise InputError(
                f"{path}: threshold file version {body.get('version')!r}, this squeezenli "
                f"reads {VERSION}",
                "threshold_from",
            )
        try:
            found = cls(**{name: body[name] for name in cls.__dataclass_fields__})
        except (KeyError, TypeError) as err:
            raise InputError(
                f"{path}: a damaged threshold file ({err})", "threshold_from"
            ) from None
        found._check(path)
        return found

    def _check(self, path: Path) -> None:
        wrong = _wrong(self.threshold, 0, 1) or _wrong(self.balanced_accuracy, 0, 1)
        kinds = isinstance(self.model, str) and isinstance(self.precision, str)
        if wrong or not kinds or not isinstance(self.revision, (str, type(None))):
            raise InputError(f"{path}: a damaged threshold file", "threshold_from")

    def refuse_other(self, identity: ModelIdentity, path: Path) -> None:
        """Refuse scores of another model, revision or precision than the file's."""
        fitted = ModelIdentity(self.model, self.revision, self.precision)
        if fitted != identity:
            raise InputError(
                f"{path} was fitted on {_name(fitted)}, and this run scores with "
                f"{_name(identity)}: fit it again with eval --save-threshold on this model",
                "threshold_from",
            )


def identity_of(nli: NLIModel) -> ModelIdentity:
    """A loaded model's identity."""
    return ModelIdentity(nli.files.source, nli.files.revision, nli.precision)


def _wrong(value: Any, low: float, high: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return not (math.isfinite(value) and low <= value <= high)


def _name(identity: ModelIdentity) -> str:
    at = f"@{identity.revision[:12]}" if identity.revision else ""
    return f"{identity.model}{at} ({identity.precision})"
