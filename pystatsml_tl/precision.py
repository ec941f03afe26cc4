"""The arithmetic a network runs in: fp32, or bfloat16 autocast where the hardware has bf16 units.

``auto`` picks per capability, from measurements (``benchmarks/training.py``, ``benchmarks/README.md``):
bf16 on CUDA; on a CPU with AVX-512 BF16 but no AMX, bf16 (ResNet18 training 1.31x at 32 px and
1.85x at 128 px, extraction 1.7x); fp32 on other CPUs (with AMX, bf16 extraction was no faster;
without bf16 units, fp32 as before: not measured faster). Under autocast the weights, gradients and optimizer
state stay fp32: only the matrix products and convolutions run in bfloat16.
"""
from __future__ import annotations

import functools
from contextlib import nullcontext
from pathlib import Path

import torch

from .checks import one_of

PRECISIONS = ("auto", "fp32", "bf16")


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


def auto_precision(device: torch.device, flags: frozenset[str] | None = None) -> str:
    """The precision ``auto`` means on ``device`` (``flags``: the CPU's, read when not given)."""
    if device.type == "cuda":
        return "bf16"
    flags = cpu_flags() if flags is None else flags
    return "bf16" if "avx512_bf16" in flags and "amx_bf16" not in flags else "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: ``precision`` itself, or what ``auto`` means on ``device``."""
    check_precision(precision)
    return auto_precision(device) if precision == "auto" else precision


def autocast(device: torch.device, precision: str):
    """The context a forward pass runs in: bfloat16 autocast for ``bf16``, nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
