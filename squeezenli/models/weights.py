"""Read model weights into numpy arrays, without torch and without running any code.

safetensors files are plain data. pytorch_model.bin is a zip holding a pickle; we unpickle it
with an allow-list that knows only how to rebuild tensors and ordered dicts, so a pickle that
names anything else (os.system, eval, builtins...) is refused before it can run.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np

from squeezenli.errors import ModelError, UnsafeModelFileError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file or a torch zip checkpoint, by name."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return load_file(str(path))
        if path.suffix == ".bin":
            return load_torch_zip(path)
    except (ModelError, OSError):
        raise
    except Exception as err:  # a corrupt file raises whatever its parser raises
        raise ModelError(f"{path}: cannot read weights: {err}") from None
    raise ModelError(f"{path}: unknown weights format (expected .safetensors or .bin)")


class _StorageType:
    """Stands in for torch.FloatStorage and friends inside the pickle."""

    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _BadTensor(Exception):
    """A tensor whose view does not fit its storage (named with the file by the caller)."""


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """A tensor's view of its storage, checked to lie inside the storage before any memory
    is touched: numpy's as_strided has no bounds check, so a crafted size, stride or offset
    would otherwise copy the process's own memory (or crash it) into the weights."""
    if not isinstance(storage, np.ndarray):
        raise _BadTensor(f"a tensor's storage is {type(storage).__name__}, not data")
    if not (_is_index(offset) and _is_indices(size) and _is_indices(stride)):
        raise _BadTensor("a tensor has a malformed offset, size or stride")
    if len(size) != len(stride):
        raise _BadTensor("a tensor's size and stride differ in length")
    count = math.prod(size)
    last = offset + sum((n - 1) * step for n, step in zip(size, stride)) if count else offset
    if count and (last >= storage.size or count > storage.size):
        raise _BadTensor(
            f"a tensor of shape {tuple(size)} (offset {offset}, stride {tuple(stride)}) "
            f"reaches past its storage of {storage.size} elements"
        )
    if not count:
        return np.zeros(tuple(size), storage.dtype)
    flat = storage[offset:]
    strides = [step * flat.itemsize for step in stride]
    return np.lib.stride_tricks.as_strided(flat, shape=tuple(size), strides=strides).copy()


def _is_index(value) -> bool:
    return type(value) is int and value >= 0


def _is_indices(values) -> bool:
    return isinstance(values, tuple) and all(_is_index(v) for v in values)


def _rebuild_parameter(tensor, *_ignored):
    return tensor


class _TensorUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, origin: Path) -> None:
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._origin = origin

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeModelFileError(
            f"{self._origin}: refused to load: the pickle references {module}.{name}, "
            "which is not a tensor (this file may try to run code)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeModelFileError(f"{self._origin}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or not str(key).isalnum():
            raise UnsafeModelFileError(f"{self._origin}: unexpected storage {pid!r}")
        if type(numel) is not int or numel < 0:
            raise UnsafeModelFileError(f"{self._origin}: storage {key} has a bad size {numel!r}")
        member = f"{self._prefix}/data/{key}"
        raw = _read_member(self._archive, member, self._origin)
        array = np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder("<"))
        if array.size < numel:
            raise ModelError(f"{self._origin}: storage {key} is truncated")
        return array[:numel]


def _read_member(archive: zipfile.ZipFile, name: str, origin: Path) -> bytes:
    """A member's bytes, its size checked against the file first: torch writes members
    uncompressed, so a member that claims more than the file holds (or is compressed, a
    zip bomb's way to claim gigabytes) is refused before anything is allocated."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelError(f"{origin}: the archive lacks {name}") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise UnsafeModelFileError(f"{origin}: {name} is compressed (torch never does that)")
    if info.file_size > origin.stat().st_size:
        raise UnsafeModelFileError(
            f"{origin}: {name} claims {info.file_size} bytes, more than the file holds"
        )
    return archive.read(name)


def load_torch_zip(path: Path) -> dict[str, np.ndarray]:
    """Tensors of a torch.save zip archive (the format since torch 1.6)."""
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{path}: not a zip checkpoint (legacy torch pickles are not supported: "
            "convert it to safetensors)"
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ModelError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("/data.pkl")]
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ModelError(f"{path}: big-endian checkpoints are not supported")
        data = io.BytesIO(_read_member(archive, pickles[0], Path(path)))
        try:
            state = _TensorUnpickler(data, archive, prefix, Path(path)).load()
        except _BadTensor as err:
            raise UnsafeModelFileError(f"{path}: refused to load: {err}") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
