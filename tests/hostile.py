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


def write_loop_export(folder: Path, source: Path, trips: int) -> Path:
    """A model folder (config and tokenizer from `source`) whose export runs a Loop of
    `trips` iterations per batch before giving logits [batch, 3]: a run that never ends."""
    import shutil

    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    for part in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / part, folder / part)
    scalar = {"bool": (T.BOOL, []), "float": (T.FLOAT, []), "int": (T.INT64, [])}
    body = h.make_graph(
        [
            h.make_node("Add", ["acc_in", "one"], ["acc_out"]),
            h.make_node("Identity", ["c"], ["c2"]),
        ],
        "body",
        [
            h.make_tensor_value_info(n, *scalar[t])
            for n, t in (("i", "int"), ("c", "bool"), ("acc_in", "float"))
        ],
        [
            h.make_tensor_value_info(n, *scalar[t])
            for n, t in (("c2", "bool"), ("acc_out", "float"))
        ],
        [h.make_tensor("one", T.FLOAT, [], [1.0])],
    )
    nodes = [  # the loop starts from the inputs, so no optimizer can fold it away
        h.make_node("Cast", ["input_ids"], ["ids"], to=T.FLOAT),
        h.make_node("ReduceSum", ["ids"], ["start"], keepdims=0),
        h.make_node("Loop", ["trips", "yes", "start"], ["acc"], body=body),
        h.make_node("Shape", ["input_ids"], ["shape"]),
        h.make_node("Slice", ["shape", "zero", "one_"], ["rows"]),
        h.make_node("Concat", ["rows", "three"], ["out_shape"], axis=0),
        h.make_node("Expand", ["acc", "out_shape"], ["wide"]),
        h.make_node("Mul", ["wide", "w"], ["logits"]),
    ]
    ids = ["batch", "sequence"]
    graph = h.make_graph(
        nodes,
        "loop",
        [h.make_tensor_value_info(n, T.INT64, ids) for n in ("input_ids", "attention_mask")],
        [h.make_tensor_value_info("logits", T.FLOAT, ["batch", 3])],
        [
            h.make_tensor("trips", T.INT64, [], [trips]),
            h.make_tensor("yes", T.BOOL, [], [True]),
            h.make_tensor("zero", T.INT64, [1], [0]),
            h.make_tensor("one_", T.INT64, [1], [1]),
            h.make_tensor("three", T.INT64, [1], [3]),
            h.make_tensor("w", T.FLOAT, [3], [1e-9, 2e-9, 3e-9]),
        ],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "onnx" / "model.onnx"))
    return folder
