"""Crafted model files, written without torch: what an attacker would hand squeezenli."""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np


def _op(value) -> bytes:
    """The pickle opcodes that push one plain value (protocol 2, without header and STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


_ORDERED_DICT = b"ccollections\nOrderedDict\n)R"


def write_torch_zip(
    path: Path,
    tensors: dict[str, np.ndarray],
    views: dict[str, tuple[int, tuple[int, ...], tuple[int, ...]]] | None = None,
    *,
    compress: bool = False,
) -> Path:
    """A torch.save-style zip of float32 tensors; views overrides a tensor's (offset, size,
    stride) as the pickle states them, whatever its storage holds."""
    views = views or {}
    body = b"\x80\x02" + _ORDERED_DICT
    storages = {}
    for key, (name, array) in enumerate(tensors.items()):
        array = np.ascontiguousarray(array, np.float32)
        storages[str(key)] = array.tobytes()
        strides = tuple(s // 4 for s in array.strides)
        offset, size, stride = views.get(name, (0, array.shape, strides))
        storage = (
            (b"(" + _op("storage") + b"ctorch\nFloatStorage\n" + _op(str(key)) + _op("cpu"))
            + _op(array.size)
            + b"tQ"
        )
        args = _op(offset) + _op(tuple(size)) + _op(tuple(stride)) + _op(False) + _ORDERED_DICT
        body += _op(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + args + b"tRs"
    body += b"."
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr("archive/data.pkl", body)
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
    return path


def claim_member_size(path: Path, member: str, size: int) -> None:
    """Make the zip's central directory claim `size` bytes for a member (local header and
    data unchanged): a member that says it holds gigabytes."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = data.find(b"PK\x01\x02" + b"")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + name_length]) == name:
            struct.pack_into("<I", data, at + 24, size)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise KeyError(member)
