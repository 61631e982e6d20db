"""Build the ONNX model for a resolved model once, and cache it beside the download.

A build is keyed by the weights' hash, the converter version and the precision, so a new
revision with new weights or a new converter never picks up a stale file; it is written to a
temporary file and renamed, so an interrupted build never leaves a file that later loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .atomic import atomic_path
from .config import parse_config, read_config
from .convert import CONVERTER_VERSION
from .errors import DamagedDownloadError, DamagedModelError, InputError, ModelError
from .hub import CONFIG, ModelFiles

PRECISIONS = ("fp32", "int8")
log = logging.getLogger("squeezenli")
_BLOB = re.compile(r"^[0-9a-f]{40,64}$")


def _cached_blob(path: Path) -> Path | None:
    """The blob a Hugging Face cache link points to (named by its hash), or None elsewhere."""
    real = Path(os.path.realpath(path))
    return real if real.parent.name == "blobs" and _BLOB.match(real.name) else None


def weights_key(path: Path) -> str:
    """A short hash identifying a weights file's content.

    Files in the Hugging Face cache are blobs named by their sha256 (their ETag), so the name
    is the hash. Elsewhere, hashing a 200 MB file at every start would cost more than the
    scoring, so the key is a hash of the path, size and modification time.
    """
    blob = _cached_blob(path)
    if blob is not None:
        return blob.name[:16]
    real = Path(os.path.realpath(path))
    stat = real.stat()
    return hashlib.sha256(f"{real}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def verify_blob(path: Path, name: str) -> None:
    """A cached large file is named by its sha256: check the content still matches before
    building from it (once per build, not per start), so a torn or rotten download is fetched
    again instead of converted. (Small files' blobs are named by a 40-digit git hash of a
    header and the content: not checked.)"""
    blob = _cached_blob(path)
    if blob is None or len(blob.name) != 64:
        return
    digest = hashlib.sha256()
    with open(blob, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != blob.name:
        raise DamagedDownloadError(f"{path}: cached download does not match its sha256", name)


def built_path(files: ModelFiles, precision: str) -> Path:
    key = weights_key(files.files[files.weights_name])
    return files.build_dir / f"{key}-c{CONVERTER_VERSION}-{precision}.onnx"


def is_export(files: ModelFiles) -> bool:
    return files.weights_name.endswith(".onnx")


@contextlib.contextmanager
def build_lock(build_dir: Path) -> Iterator[None]:
    """Held while building: of several processes starting together on a cold cache, one
    builds and the others wait, then find the finished file."""
    from filelock import FileLock

    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(build_dir / ".build.lock"))
        lock.acquire()
    except OSError as err:
        raise ModelError(
            f"cannot write to the cache folder {build_dir} ({err.strerror or err}); "
            "point HF_HOME or HF_HUB_CACHE at a writable folder"
        ) from None
    try:
        yield
    finally:
        lock.release()


def ensure_onnx(files: ModelFiles, precision: str = "fp32") -> Path:
    """Path of a ready ONNX model for these files and precision, building it if needed."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if is_export(files):
        fp32 = files.files[files.weights_name]
        if precision == "fp32":
            return fp32
    else:
        fp32 = built_path(files, "fp32")
        if precision == "fp32" and fp32.exists():
            return fp32
    target = built_path(files, precision)
    if target.exists():
        return target
    with build_lock(files.build_dir):
        if not fp32.exists():  # another process may have built it while we waited
            log.info("building the fp32 ONNX model from %s (once)", files.weights_name)
            _build_fp32(files, fp32)
        if precision != "fp32" and not target.exists():
            log.info("quantizing it to %s (once)", precision)
            _quantize(fp32, target)
    return target


def _build_fp32(files: ModelFiles, target: Path) -> None:
    import onnx

    from .convert import build_model
    from .weights import load_weights

    config = parse_config(read_config(files.files[CONFIG]), origin=str(files.files[CONFIG]))
    verify_blob(files.files[files.weights_name], files.weights_name)
    tensors = load_weights(files.files[files.weights_name])
    model = build_model(config, tensors)
    del tensors
    try:
        with atomic_path(target) as tmp:
            onnx.save_model(model, str(tmp))
    except OSError as err:
        raise ModelError(f"cannot write the built model to {target.parent}: {err}") from None


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMuls with constant weights (design.md)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it warns on the root logger about optional pre-processing
    try:
        with atomic_path(target) as tmp:
            quantize_dynamic(
                str(source),
                str(tmp),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                extra_options={"MatMulConstBOnly": True},
            )
    except OSError as err:
        raise ModelError(f"cannot write the quantized model to {target.parent}: {err}") from None
    except Exception as err:  # onnx's DecodeError and friends: the fp32 model is damaged
        raise DamagedModelError(f"{source}: cannot read ONNX model: {err}") from None
    finally:
        root.setLevel(level)


def ready_path(built: Path, build_dir: Path) -> Path:
    """Where the onnxruntime-ready copy of a model lives: named by the model's own key (a
    downloaded export is not named by its content) and by the onnxruntime version that
    optimized it, which is the only one that may load it."""
    import onnxruntime

    return build_dir / f"{built.stem}-{weights_key(built)[:8]}.ort{onnxruntime.__version__}.onnx"


def ensure_ready(built: Path, build_dir: Path) -> Path:
    """A copy of a built model as onnxruntime optimizes it, with its weights in a side file
    that the next start maps from disk instead of parsing and copying: creating the session
    drops from ~0.26 s to ~0.06 s (int8) and ~0.11 s (fp32) on the full-size model. The side
    file is renamed into place before the model that names it, so a crash leaves no model
    whose weights are missing."""
    target = ready_path(built, build_dir)
    if target.exists():
        return target
    with build_lock(build_dir):
        if not target.exists():
            _write_ready(built, build_dir, target)
            _prune_stale(build_dir)
    return target


def _prune_stale(build_dir: Path) -> None:
    """After an upgrade, builds by older converters and ready copies made by other
    onnxruntime versions are dead weight (hundreds of MB): remove them."""
    import onnxruntime

    converter = f"-c{CONVERTER_VERSION}-"
    runtime = f".ort{onnxruntime.__version__}.onnx"
    for path in build_dir.glob("*-c*-*.onnx*"):
        old_converter = converter not in path.name
        old_runtime = ".ort" in path.name and runtime not in path.name
        if old_converter or old_runtime:
            path.unlink(missing_ok=True)


def _write_ready(built: Path, build_dir: Path, target: Path) -> None:
    import shutil
    import tempfile

    import onnxruntime as ort

    data_name = target.name + ".data"
    try:
        scratch = Path(tempfile.mkdtemp(prefix=".ready-", dir=build_dir))
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.optimized_model_filepath = str(scratch / target.name)
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", data_name
            )
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
            )
            try:
                ort.InferenceSession(str(built), options, providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime's own Fail/InvalidProtobuf types
                raise DamagedModelError(f"{built}: cannot load ONNX model: {err}") from None
            # No side file when no weight is big enough to go there.
            names = [n for n in (data_name, target.name) if (scratch / n).exists()]
            for name in names:
                with open(scratch / name, "rb+") as handle:
                    os.fsync(handle.fileno())
            for name in names:
                os.replace(scratch / name, build_dir / name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    except OSError as err:
        raise ModelError(f"cannot write the optimized model to {build_dir}: {err}") from None


def discard_ready(ready: Path) -> None:
    """Remove a ready copy and its side file (the next start makes them again)."""
    for path in (ready, ready.with_name(ready.name + ".data")):
        path.unlink(missing_ok=True)


def discard_builds(files: ModelFiles) -> None:
    """Remove every model built from these weights by this converter, ready copies included."""
    if is_export(files):
        return
    stem = built_path(files, "fp32").name.removesuffix("-fp32.onnx")
    with build_lock(files.build_dir):
        for path in files.build_dir.glob(f"{stem}-*"):
            path.unlink(missing_ok=True)
