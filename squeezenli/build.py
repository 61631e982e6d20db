"""Build the ONNX model for a resolved model once, and cache it beside the download.

A build is keyed by the weights' hash, the converter version and the precision, so a new
revision with new weights or a new converter never picks up a stale file; it is written to a
temporary file and renamed, so an interrupted build never leaves a file that later loads.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .atomic import atomic_path
from .config import parse_config, read_config
from .convert import CONVERTER_VERSION
from .errors import InputError, ModelError
from .hub import CONFIG, ModelFiles

PRECISIONS = ("fp32", "int8")
_BLOB = re.compile(r"^[0-9a-f]{40,64}$")


def weights_key(path: Path) -> str:
    """A short hash identifying a weights file's content.

    Files in the Hugging Face cache are blobs named by their sha256 (their ETag), so the name
    is the hash. Elsewhere, hashing a 200 MB file at every start would cost more than the
    scoring, so the key is a hash of the path, size and modification time.
    """
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs" and _BLOB.match(real.name):
        return real.name[:16]
    stat = real.stat()
    return hashlib.sha256(f"{real}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def built_path(files: ModelFiles, precision: str) -> Path:
    key = weights_key(files.files[files.weights_name])
    return files.build_dir / f"{key}-c{CONVERTER_VERSION}-{precision}.onnx"


def is_export(files: ModelFiles) -> bool:
    return files.weights_name.endswith(".onnx")


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
        if not fp32.exists():
            _build_fp32(files, fp32)
        if precision == "fp32":
            return fp32
    target = built_path(files, precision)
    if not target.exists():
        _quantize(fp32, target)
    return target


def _build_fp32(files: ModelFiles, target: Path) -> None:
    import onnx

    from .convert import build_model
    from .weights import load_weights

    config = parse_config(read_config(files.files[CONFIG]), origin=str(files.files[CONFIG]))
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
    finally:
        root.setLevel(level)
