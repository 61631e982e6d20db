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
"""

from __future__ import annotations

import functools
import platform
import re
from pathlib import Path

PRECISE_SETTING = "session.x64quantprecision"
CPUINFO = Path("/proc/cpuinfo")
EXACT_SUFFIX = "-u8u8"  # in the names of ready copies made with exact kernels
_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}
_EXACT_FLAGS = re.compile(r"\b(avx512_vnni|avx_vnni|amx_int8)\b")


@functools.cache
def needs_exact_kernels() -> bool:
    """True on an x86 CPU that lacks VNNI, or whose flags cannot be read (not Linux)."""
    if platform.machine().lower() not in _X86:
        return False  # the setting only concerns x86 kernels
    try:
        flags = CPUINFO.read_text(errors="replace")
    except OSError:
        return True
    return _EXACT_FLAGS.search(flags) is None


def session_settings() -> dict[str, str]:
    """onnxruntime session config entries for this CPU (module docstring)."""
    return {PRECISE_SETTING: "1"} if needs_exact_kernels() else {}


def ready_suffix() -> str:
    """Part of a ready copy's name: one optimized with exact kernels holds uint8 weights and
    is a different file from one that holds int8 weights."""
    return EXACT_SUFFIX if needs_exact_kernels() else ""
