"""The arithmetic a network runs in: fp32, or bfloat16 autocast where the hardware runs it faster.

``auto`` picks per capability (``benchmarks/README.md`` has the measurements: training and
extraction side by side with fp32, accuracy over paired seeds): bf16 on CPUs with AVX-512 BF16
instructions and no AMX (ResNet18 training 1.4x faster at 32 px and 2.0x at 128 and 224 px there,
extraction 1.5x); fp32 on CPUs with AMX (bf16 extraction measured no faster) and on CPUs without
bf16 units (bf16 runs emulated, at a seventh of fp32's speed); bf16 on CUDA, what training on GPUs
always used (not yet measured by ``benchmarks/gpu.py``); fp32 on Apple's GPUs (``mps``), where
bf16 has not been measured. Under autocast the weights, gradients and
optimizer state stay fp32; convolutions and matrix products run in bfloat16, and so do the
activations between them. ``fp32`` and ``bf16`` are selectable everywhere.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path

import torch

from .checks import one_of

PRECISIONS = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""The CPU flags of bfloat16 units (AVX-512 BF16 instructions, AMX tiles), reported by the benchmarks."""
AUTO_PRECISION = {"cuda": "bf16", "mps": "fp32", "avx512_bf16": "bf16", "amx": "fp32", "none": "fp32"}
"""What ``auto`` means on each capability (:func:`capability`), as measured in ``benchmarks/README.md``."""


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


def cpu_capability(flags: Iterable[str]) -> str:
    """The bf16 units among a CPU's ``flags``: ``amx``, ``avx512_bf16`` or ``none``."""
    flags = set(flags)
    if "amx_bf16" in flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else "none"


def capability(device: torch.device) -> str:
    """``cuda`` or ``mps`` for those GPUs, else the bf16 units of this machine's CPU (:func:`cpu_capability`)."""
    if device.type in ("cuda", "mps"):
        return device.type
    return cpu_capability(cpu_flags())


def auto_precision(device: torch.device) -> str:
    """The precision ``auto`` means on ``device``: :data:`AUTO_PRECISION` of its :func:`capability`."""
    return AUTO_PRECISION[capability(device)]


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: ``precision`` itself, or what ``auto`` means on ``device``."""
    check_precision(precision)
    return auto_precision(device) if precision == "auto" else precision


def autocast(device: torch.device, precision: str):
    """The context a forward pass runs in: bfloat16 autocast for ``bf16``, nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
