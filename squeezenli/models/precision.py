"""Which precision answers: int8 only where it is measured to agree with fp32 on these weights.

With `onnx_file` naming a variant a repo ships (onnx/model_quantized.onnx, ...) beside its
fp32 export, the variant is the int8 and the export the fp32: measured and chosen the same way.

Random weights cannot say how a real model quantizes, and neither can a user beforehand, so
when an int8 model is built, the calibration pairs shipped in the package (512 MultiNLI
dev-mismatched pairs, data/README.md) are scored in fp32 and int8 and the agreement is stored
beside the build. `auto` then runs int8 only when it passed; otherwise fp32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import orjson

from squeezenli.errors import InputError
from squeezenli.models.atomic import atomic_path
from squeezenli.models.build import build_lock, ensure_onnx, log, measurement_path, verify_model
from squeezenli.models.hub import ModelFiles
from squeezenli.runtime.engine import Pair, reference_logits, reference_scores, softmax
from squeezenli.runtime.tokenizer import PairTokenizer

CHOICES = ("auto", "fp32", "int8")
# auto runs int8 only at or above this label agreement and at or below this largest
# probability difference, on the calibration pairs.
MIN_AGREEMENT = 0.995
MAX_DIFFERENCE = 0.05
# ... and only if a pair's scores do not depend on its batch: the first BATCH_CHECK pairs
# are scored alone too, and may move by no more than float rounding (squeezenli's int8
# moves by 0.0; a per-tensor quantized model a repo ships, by up to ~0.1 on real weights).
BATCH_CHECK = 64
MAX_BATCH_DIFFERENCE = 1e-6


@dataclass(frozen=True)
class Agreement:
    """int8 against fp32 on the calibration pairs."""

    pairs: int
    label_agreement: float  # share of pairs whose label is the same
    max_difference: float  # largest absolute probability difference, over pairs and labels
    mean_difference: float  # mean over pairs of each pair's largest difference
    # Largest probability change of a pair scored alone instead of in its batch (int8);
    # None in measurements stored before it was taken.
    batch_difference: float | None = None

    @property
    def passes(self) -> bool:
        return (
            self.label_agreement >= MIN_AGREEMENT
            and self.max_difference <= MAX_DIFFERENCE
            and (self.batch_difference or 0.0) <= MAX_BATCH_DIFFERENCE
        )

    def describe(self, fast: str = "int8", exact: str = "fp32") -> str:
        moved = ""
        if (self.batch_difference or 0.0) > MAX_BATCH_DIFFERENCE:
            moved = (
                f"; its scores depend on the batch: a pair scored alone moves by up to "
                f"{self.batch_difference:.3f}"
            )
        return (
            f"{fast} agrees with {exact} on {self.label_agreement:.1%} of {self.pairs} calibration "
            f"labels, largest probability difference {self.max_difference:.3f}{moved} (auto "
            f"needs {MIN_AGREEMENT:.1%}, {MAX_DIFFERENCE} and scores that do not depend on the "
            "batch)"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "passes": self.passes}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a model runs in, and the measurement behind it (None when not measured)."""

    requested: str
    precision: str
    agreement: Agreement | None


def calibration_pairs() -> list[Pair]:
    text = resources.files("squeezenli").joinpath("data/calibration.jsonl").read_bytes()
    rows = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    return [(r["premise"], r["hypothesis"]) for r in rows]


def compare(fp32: np.ndarray, int8: np.ndarray, int8_alone: np.ndarray) -> Agreement:
    """Agreement of two [pairs, labels] probability arrays, and how far batching moves
    int8's (int8_alone: its first pairs, each scored in a batch of its own)."""
    differences = np.abs(fp32 - int8).max(axis=1)
    moved = float(np.abs(int8[: len(int8_alone)] - int8_alone).max(initial=0.0))
    return Agreement(
        pairs=len(fp32),
        label_agreement=float((fp32.argmax(axis=1) == int8.argmax(axis=1)).mean()),
        max_difference=float(differences.max()),
        mean_difference=float(differences.mean()),
        batch_difference=moved,
    )


def stored_agreement(files: ModelFiles) -> Agreement | None:
    """The measurement stored for these files, if any (nothing is built)."""
    return _read(measurement_path(files, "int8", "agreement"))


def _read(path: Path) -> Agreement | None:
    try:
        data = orjson.loads(path.read_bytes())
        return Agreement(**{k: v for k, v in data.items() if k != "passes"})
    except (OSError, orjson.JSONDecodeError, TypeError):
        return None


def measure(files: ModelFiles, tokenizer: PairTokenizer) -> tuple[Agreement, bool]:
    """Score the calibration pairs in fp32 and int8 once per build; the figures are stored.
    Also says whether this call made the measurement (else it was stored)."""
    path = measurement_path(files, "int8", "agreement")
    found = _read(path)
    if found is not None:
        return found, False
    built = {precision: ensure_onnx(files, precision) for precision in ("fp32", "int8")}
    with build_lock(files.build_dir):  # not reentrant: builds are made before it is taken
        found = _read(path)
        if found is not None:
            return found, False
        pairs = calibration_pairs()
        fast, exact = _names(files)
        log.info("measuring %s against %s on %d calibration pairs (once)", fast, exact, len(pairs))
        for model in built.values():
            verify_model(model, files.build_dir)
        what = "the calibration pairs"
        fp32 = reference_logits(built["fp32"], tokenizer, pairs, what)
        int8, alone = reference_scores(built["int8"], tokenizer, pairs, what, BATCH_CHECK)
        agreement = compare(softmax(fp32), softmax(int8), softmax(alone))
        with atomic_path(path) as tmp:
            tmp.write_bytes(orjson.dumps(agreement.as_dict()))
    return agreement, True


def _names(files: ModelFiles) -> tuple[str, str]:
    """What int8 and fp32 are for these files: a repo's variant and its fp32 export, or
    squeezenli's two precisions."""
    if files.reference_name is None:
        return "int8", "fp32"
    return files.weights_name, files.reference_name


def choose(files: ModelFiles, requested: str, tokenizer: PairTokenizer) -> PrecisionChoice:
    """auto: int8 if it passed its measurement, else fp32; int8 runs, with a warning if not."""
    if requested not in CHOICES:
        raise InputError(f"`precision` {requested!r} is unknown (choose from {', '.join(CHOICES)})")
    if requested == "fp32":
        return PrecisionChoice(requested, "fp32", stored_agreement(files))
    agreement, fresh = measure(files, tokenizer)
    names = _names(files)
    if requested == "int8":
        if not agreement.passes:
            log.warning(
                "%s: %s may change answers; %s does not", agreement.describe(*names), *names
            )
        return PrecisionChoice(requested, "int8", agreement)
    precision = "int8" if agreement.passes else "fp32"
    variant = files.reference_name is not None
    if fresh or (variant and not agreement.passes):  # a file asked for and not run: say so
        used = names[0] if agreement.passes else names[1]
        log.warning("precision auto: %s; using %s", agreement.describe(*names), used)
    return PrecisionChoice(requested, precision, agreement)
