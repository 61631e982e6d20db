"""Which int8 kernels onnxruntime may use here, so that int8 answers are the same bits on
every x86 CPU.

onnxruntime multiplies uint8 activations by int8 weights. With VNNI (vpdpbusd) the products
are summed exactly in 32 bits; without it (AVX2, AVX-512 before Cascade Lake), adjacent
pairs of products are first summed in 16 bits with saturation, so a large activation times a
large weight is clipped, and the same pair gets other scores on such a CPU (onnxruntime's
`session.x64quantprecision`; oneDNN's "Nuances of int8 computations"). On those CPUs the
session setting below makes onnxruntime store the weights as uint8 and run its exact u8u8
kernels: slower there, but the bits VNNI gives, so an int8 build measured on one machine
(a shared cache, a container image built elsewhere) answers the same on another. On a VNNI
CPU the setting changed nothing but speed (32% slower, identical bits), so it is left off.

The pairs are rows 2j and 2j + 1 of a [K, N] weight. A model in which each such pair has
|w_2j| + |w_2j+1| <= 128 cannot saturate: uint8 codes reach 255, and 255 * 128 = 32640 <
2**15, so the fast u8s8 kernels give the exact sums on every x86 CPU. squeezenli's own int8
builds are quantized so (quantize.py); only other int8 models (a variant a repo ships) need
the exact kernels, and only on CPUs without VNNI.
"""

from __future__ import annotations

import functools
import platform
import re
from pathlib import Path

import numpy as np

PRECISE_SETTING = "session.x64quantprecision"
CPUINFO = Path("/proc/cpuinfo")
EXACT_SUFFIX = "-u8u8"  # in the names of ready copies made with exact kernels
PAIR_BUDGET = 128  # the largest |w_2j| + |w_2j+1| whose pair of products fits in int16
# Operators that multiply integers on onnxruntime's x86 kernels, and where their weight is.
# The other operand is uint8 (codes up to 255), or int8 moved to uint8 by the kernel.
_WEIGHT_INPUT = {
    "ConvInteger": 1,
    "DynamicQuantizeMatMul": 1,
    "MatMulInteger": 1,
    "MatMulIntegerToFloat": 1,
    "QAttention": 1,
    "QGemm": 3,
    "QLinearConv": 3,
    "QLinearMatMul": 3,
}
# Those whose weight is always [K, N]; for the others any two weights may meet in a pair.
_K_FIRST = {"DynamicQuantizeMatMul", "MatMulInteger", "MatMulIntegerToFloat", "QLinearMatMul"}
_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}
_EXACT_FLAGS = re.compile(r"\b(avx512_vnni|avx_vnni|amx_int8)\b")


@functools.cache
def needs_exact_kernels() -> bool:
    """True on an x86 CPU that lacks VNNI, or whose flags cannot be read (not Linux)."""
    if not _is_x86():
        return False  # the setting only concerns x86 kernels
    try:
        flags = CPUINFO.read_text(errors="replace")
    except OSError:
        return True
    return _EXACT_FLAGS.search(flags) is None


@functools.cache
def cpu_name() -> str:
    """What a speed measured here is a speed of: the CPU model, whether it has VNNI, the
    cores this process may use and the onnxruntime version."""
    import onnxruntime

    from squeezenli.defaults import cpus_available

    try:
        found = re.search(r"^model name\s*:\s*(.+)$", CPUINFO.read_text(errors="replace"), re.M)
        model = found[1].strip() if found else platform.processor() or platform.machine()
    except OSError:
        model = platform.processor() or platform.machine()
    kind = "no VNNI" if needs_exact_kernels() else "VNNI" if _is_x86() else platform.machine()
    return f"{model} ({kind}), {cpus_available()} cores, onnxruntime {onnxruntime.__version__}"


def saturates(model) -> bool:
    """Whether some integer product of an onnx.ModelProto may saturate on u8s8 kernels
    without VNNI: an int8 weight with a pair of rows over PAIR_BUDGET (module docstring), or
    one that is not a constant (its range is unknown). uint8 weights run exact u8u8 kernels."""
    from onnx import TensorProto, numpy_helper

    constants = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            constants.update(
                (out, a.t) for a in node.attribute if a.name == "value" for out in node.output
            )
    for node in model.graph.node:
        position = _WEIGHT_INPUT.get(node.op_type)
        if position is None or len(node.input) <= position:
            continue
        weight = constants.get(node.input[position])
        if weight is None:
            return True
        if weight.data_type == TensorProto.UINT8:
            continue
        if weight.data_type != TensorProto.INT8:
            return True
        if largest_pair(numpy_helper.to_array(weight), node.op_type in _K_FIRST) > PAIR_BUDGET:
            return True
    return False


def largest_pair(weight: np.ndarray, k_first: bool = True) -> int:
    """The largest |w_2j| + |w_2j+1| over a weight's pairs of rows (k_first: a [K, N]
    matrix), else twice its largest magnitude (any two may meet)."""
    magnitude = np.abs(weight.astype(np.int32))
    if magnitude.size == 0:
        return 0
    if not k_first or magnitude.ndim != 2:
        return 2 * int(magnitude.max())
    padded = np.vstack([magnitude, np.zeros((magnitude.shape[0] % 2, magnitude.shape[1]), int)])
    return int((padded[0::2] + padded[1::2]).max())


def _is_x86() -> bool:
    return platform.machine().lower() in _X86


def settings(exact: bool) -> dict[str, str]:
    """onnxruntime session config entries: the exact kernels, or the default ones."""
    return {PRECISE_SETTING: "1"} if exact else {}
