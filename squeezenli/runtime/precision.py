"""Which precision answers: int8 only where it is measured to agree with fp32 on these weights.

With `onnx_file` naming a variant a repo ships (onnx/model_quantized.onnx, ...) beside its
fp32 export, the variant is the int8 and the export the fp32: measured and chosen the same way.

Random weights cannot say how a real model quantizes, and neither can a user beforehand, so
when an int8 model is built, the calibration pairs shipped in the package (512 MultiNLI
dev-mismatched pairs, data/README.md) are scored in fp32 and int8 and the agreement is stored
beside the build. int8 is also timed against fp32 on those pairs, on this kind of CPU (its
speed is the CPU's, not the build's: int8 ran ~1.5x fp32 on a VNNI CPU and ~1.1x with the
exact kernels of a CPU without VNNI). `auto` runs int8 only when it agrees and is faster by
MIN_SPEEDUP; otherwise fp32.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import orjson

from squeezenli.choices import Precision
from squeezenli.errors import InputError, ModelError
from squeezenli.models.atomic import atomic_path
from squeezenli.models.build import (
    build_lock,
    build_locked,
    drop_builds,
    kernel_settings,
    log,
    measurement_path,
    verify_model,
)
from squeezenli.models.hub import ModelFiles
from squeezenli.models.int8_kernels import cpu_name
from squeezenli.models.packaged import packaged_rows
from squeezenli.runtime.engine import (
    Engine,
    Pair,
    create_session,
    softmax,
)
from squeezenli.runtime.tokenizer import PairTokenizer

# auto runs int8 only at or above this label agreement and at or below this largest
# probability difference, on the calibration pairs.
MIN_AGREEMENT = 0.995
MAX_DIFFERENCE = 0.05
# ... and only if a pair's scores do not depend on its batch: the first BATCH_CHECK pairs
# are scored alone too, and may move by no more than float rounding (squeezenli's int8
# moves by 0.0; a per-tensor quantized model a repo ships, by up to ~0.1 on real weights).
BATCH_CHECK = 64
MAX_BATCH_DIFFERENCE = 1e-6
# ... and only if it takes at most 1/MIN_SPEEDUP of fp32's CPU time on this CPU. Labels may
# differ on up to 0.5% of pairs; that is worth a clear gain, not one inside the timing's
# noise (interleaved runs on these machines spread by ~5%, one-off runs by far more).
MIN_SPEEDUP = 1.2
SPEED_ROUNDS = 4  # the calibration pairs are timed in this many slices, fp32 and int8 in turn


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
class Speed:
    """int8 and fp32 timed on the calibration pairs on one kind of CPU (cpu)."""

    cpu: str
    pairs: int
    fp32_cpu_s: float  # process CPU time, every thread
    int8_cpu_s: float
    fp32_pairs_per_s: float  # wall clock
    int8_pairs_per_s: float

    @property
    def speedup(self) -> float:
        """fp32's CPU time over int8's: how many times fewer CPU seconds int8 takes."""
        return self.fp32_cpu_s / max(self.int8_cpu_s, 1e-9)

    @property
    def pays(self) -> bool:
        return self.speedup >= MIN_SPEEDUP

    def describe(self, fast: str = "int8", exact: str = "fp32") -> str:
        return (
            f"{fast} takes 1/{self.speedup:.2f} of {exact}'s CPU time on this CPU "
            f"({self.int8_pairs_per_s:.0f} against {self.fp32_pairs_per_s:.0f} pairs/s; auto "
            f"needs {MIN_SPEEDUP}x)"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "speedup": self.speedup, "pays": self.pays}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a model runs in, and the measurements behind it (None when not made)."""

    requested: Precision
    precision: str
    agreement: Agreement | None
    speed: Speed | None = None


def calibration_pairs() -> list[Pair]:
    rows = packaged_rows("calibration.jsonl", ("premise", "hypothesis"))
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


def stored_speed(files: ModelFiles) -> Speed | None:
    """The speeds stored for these files on this kind of CPU, if any (nothing is built)."""
    return _read(_speed_path(files), Speed)


def _speed_path(files: ModelFiles) -> Path:
    """Speeds are the CPU's: one file per CPU model and onnxruntime version (int8_kernels)."""
    cpu = hashlib.sha256(cpu_name().encode()).hexdigest()[:12]
    return measurement_path(files, "int8", f"speed-{cpu}")


def _read(path: Path, kind=Agreement):
    """A stored measurement; one that is damaged or lies (not an object of the right fields,
    a figure missing, not a number or out of its range, as a cache file edited, cut short or
    written by another version may be) is not there: a warning says so, and the next
    measurement replaces it."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as err:
        return _ignored(path, f"unreadable ({err})")
    if not isinstance(data, dict):
        return _ignored(path, "not a JSON object")
    derived = {"passes", "pays", "speedup"}
    try:
        found = kind(**{k: v for k, v in data.items() if k not in derived})
    except TypeError:
        return _ignored(path, "not the fields of a measurement")
    for item in fields(kind):
        value = getattr(found, item.name)
        if item.name == "cpu":
            if not isinstance(value, str):
                return _ignored(path, "`cpu` is not a name")
        elif value is None and item.default is None:
            continue  # a figure older versions did not take
        elif type(value) not in (int, float) or not 0 <= value < float("inf"):
            return _ignored(path, f"`{item.name}` is not a number of at least 0")
        elif item.name == "label_agreement" and value > 1:
            return _ignored(path, "`label_agreement` is over 1")
    return found


def _ignored(path: Path, why: str) -> None:
    log.warning(
        "ignoring the stored measurement %s: %s (taken again when int8 is next measured: "
        "squeezenli model download)",
        path,
        why,
    )
    return None


def measure(files: ModelFiles, tokenizer: PairTokenizer) -> tuple[Agreement, Speed, bool]:
    """Score the calibration pairs in fp32 and int8 once per build, and time them once per
    kind of CPU, in one pass when both are missing (_time); the figures are stored. Also says
    whether this call measured anything."""
    found = _read(measurement_path(files, "int8", "agreement")), stored_speed(files)
    if found[0] is not None and found[1] is not None:
        return found[0], found[1], False
    with build_lock(files.build_dir):  # held while the builds are read (build.build_locked)
        agreement, speed = _read(measurement_path(files, "int8", "agreement")), stored_speed(files)
        if agreement is not None and speed is not None:
            return agreement, speed, False
        built = {precision: build_locked(files, precision) for precision in ("fp32", "int8")}
        pairs = calibration_pairs()
        fast, exact = _names(files)
        for model in built.values():
            verify_model(model, files.build_dir)
        engines = {
            p: Engine(
                create_session(path, settings=kernel_settings(path, files.build_dir)), tokenizer
            )
            for p, path in built.items()
        }
        what = "measuring" if speed is not None else "measuring and timing"
        log.info("%s %s against %s on %d calibration pairs (once)", what, fast, exact, len(pairs))
        try:
            if speed is None:
                speed, logits = _time(engines, pairs)
                with atomic_path(_speed_path(files)) as tmp:
                    tmp.write_bytes(orjson.dumps(speed.as_dict()))
            else:
                logits = {p: engine.logits(pairs) for p, engine in engines.items()}
            if agreement is None:
                alone = [engines["int8"].logits([pair]) for pair in pairs[:BATCH_CHECK]]
                agreement = _agreement(logits, np.concatenate(alone), (fast, exact))
                with atomic_path(measurement_path(files, "int8", "agreement")) as tmp:
                    tmp.write_bytes(orjson.dumps(agreement.as_dict()))
        except InputError as err:
            raise ModelError(f"{files.folder}: cannot score the calibration pairs: {err}") from None
        drop_builds(files, ready_only=True)  # what later runs open is there already
    return agreement, speed, True


def _agreement(logits: dict[str, np.ndarray], alone: np.ndarray, names) -> Agreement:
    """compare() of the two precisions' logits, once they are known to be one classifier."""
    fp32, int8 = logits["fp32"], logits["int8"]
    if fp32.shape[1] != int8.shape[1]:
        raise ModelError(
            f"{names[0]} gives {int8.shape[1]} logits per pair and {names[1]} "
            f"{fp32.shape[1]}: they are not the same classifier (give --onnx-file a variant "
            "of this export, or --precision fp32)"
        )
    return compare(softmax(fp32), softmax(int8), softmax(alone))


def _time(engines: dict[str, Engine], pairs: list[Pair]) -> tuple[Speed, dict[str, np.ndarray]]:
    """CPU and wall time of each precision over the pairs, in interleaved slices (fp32, int8,
    then int8, fp32, ...) so that a machine's drift within the run falls on both; each
    engine warms up on a slice first. The logits come too: a pair's do not depend on its
    batch, so the slices' are the agreement's (the first run is the shorter by one pass)."""
    cpu = dict.fromkeys(engines, 0.0)
    wall = dict.fromkeys(engines, 0.0)
    logits: dict[str, list[np.ndarray]] = {p: [] for p in engines}
    size = -(-len(pairs) // SPEED_ROUNDS)
    slices = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    for engine in engines.values():
        engine.logits(slices[0])
    for turn, piece in enumerate(slices):
        for precision in ("fp32", "int8") if turn % 2 == 0 else ("int8", "fp32"):
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            logits[precision].append(engines[precision].logits(piece))
            cpu[precision] += time.process_time() - cpu_start
            wall[precision] += time.perf_counter() - wall_start
    speed = Speed(
        cpu=cpu_name(),
        pairs=len(pairs),
        fp32_cpu_s=round(cpu["fp32"], 4),
        int8_cpu_s=round(cpu["int8"], 4),
        fp32_pairs_per_s=round(len(pairs) / max(wall["fp32"], 1e-9), 2),
        int8_pairs_per_s=round(len(pairs) / max(wall["int8"], 1e-9), 2),
    )
    return speed, {p: np.concatenate(parts) for p, parts in logits.items()}


def _names(files: ModelFiles) -> tuple[str, str]:
    """What int8 and fp32 are for these files: a repo's variant and its fp32 export, or
    squeezenli's two precisions."""
    if files.reference_name is None:
        return "int8", "fp32"
    return files.weights_name, files.reference_name


def choose(
    files: ModelFiles, requested: Precision, tokenizer: PairTokenizer, measure_now: bool = False
) -> PrecisionChoice:
    """auto: int8 if it was measured to agree with fp32 on these weights and to be faster on
    this kind of CPU, else fp32. Measuring (quantizing, scoring the calibration pairs in
    both, timing them) takes tens of seconds, so auto does it only when asked (`measure_now`:
    `model download`), never in front of a first answer: until then it runs fp32. A variant
    file asked for (--onnx-file) is measured at once: it must be checked against its export
    before it may run. int8 runs when asked, measured first, with a warning if it did not
    agree."""
    stored = stored_agreement(files), stored_speed(files)
    unmeasured = stored[0] is None or stored[1] is None
    later = unmeasured and not measure_now and files.reference_name is None
    if requested is Precision.FP32 or (requested is Precision.AUTO and later):
        return PrecisionChoice(requested, "fp32", *stored)
    agreement, speed, fresh = measure(files, tokenizer)
    names = _names(files)
    if requested is Precision.INT8:
        if not agreement.passes:
            log.warning(
                "%s: %s may change answers; %s does not", agreement.describe(*names), *names
            )
        return PrecisionChoice(requested, "int8", agreement, speed)
    runs_int8 = agreement.passes and speed.pays
    variant = files.reference_name is not None
    if fresh or (variant and not runs_int8):  # a file asked for and not run: say so
        used = names[0] if runs_int8 else names[1]
        log.warning(
            "precision auto: %s; %s; using %s",
            agreement.describe(*names),
            speed.describe(*names),
            used,
        )
    return PrecisionChoice(requested, "int8" if runs_int8 else "fp32", agreement, speed)
