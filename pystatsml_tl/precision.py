"""The arithmetic a network runs in: fp32, or bfloat16 autocast where the hardware has bf16 units.

``auto`` picks per device: bf16 on CUDA (what training on GPUs always used), fp32 on CPUs. On
CPUs bf16 is selectable; ``benchmarks/README.md`` has the measurements per capability: without
bf16 units (AVX2 only) bf16 training runs emulated at a seventh of fp32's speed; with AMX, bf16
extraction measured no faster; with AVX-512 BF16 and no AMX, a side-by-side ResNet18 step ran
1.31x faster at 32 px and 1.85x at 128 px, the candidate for bf16 by default once
``benchmarks/training.py`` has run on such a CPU (:data:`BF16_CPU_FLAGS` names the capability it
prints). Under autocast the weights, gradients and optimizer state stay fp32: only the matrix
products and convolutions run in bfloat16.
"""
from __future__ import annotations

import functools
from contextlib import nullcontext
from pathlib import Path

import torch

from .checks import one_of

PRECISIONS = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""The CPU flags of bfloat16 units (AVX-512 BF16 instructions, AMX tiles), reported by the benchmarks."""


def check_precision(precision: str) -> None:
    """Refuse a precision other than auto, fp32 and bf16."""
    one_of(PRECISIONS)("precision", precision)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo is not there)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def auto_precision(device: torch.device) -> str:
    """The precision ``auto`` means on ``device``: bf16 on CUDA, fp32 on CPUs."""
    return "bf16" if device.type == "cuda" else "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: ``precision`` itself, or what ``auto`` means on ``device``."""
    check_precision(precision)
    return auto_precision(device) if precision == "auto" else precision


def autocast(device: torch.device, precision: str):
    """The context a forward pass runs in: bfloat16 autocast for ``bf16``, nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
