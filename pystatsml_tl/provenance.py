"""Where a result came from: date, host, hardware, versions, the package's git commit and the
constraints file its environment was installed from."""
from __future__ import annotations

import datetime
import hashlib
import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torchvision

from . import __version__
from .precision import cpu_capability, cpu_flags

CONSTRAINTS_FILE = Path(__file__).resolve().parents[1] / ".ci" / "constraints.txt"
"""The pinned versions ``make install`` installs with (``make constraints`` rewrites it)."""


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux, else what the platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The git commit of the package's checkout (with ``+changes`` when its files differ from it),
    or ``not a git checkout`` for an installed wheel."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"{commit}+changes" if dirty else commit


@lru_cache(maxsize=1)
def constraints_fingerprint() -> str:
    """``sha256:`` and the first 12 hex digits of the checkout's constraints file, or ``no constraints
    file`` (an installed wheel)."""
    try:
        return "sha256:" + hashlib.sha256(CONSTRAINTS_FILE.read_bytes()).hexdigest()[:12]
    except OSError:
        return "no constraints file"


def versions() -> dict[str, str]:
    """Versions of what produced a result."""
    return {"pystatsml_tl": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def provenance() -> dict[str, str | int]:
    """Date and time (UTC), host, CPU model, its bf16 units and threads, GPU (or none), versions, git
    commit and the constraints file's fingerprint."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "host": socket.gethostname(), "cpu": cpu_model(),
            "cpu_bf16_units": cpu_capability(cpu_flags()), "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count() or 0, "gpu": gpu, "git_commit": git_commit(),
            "constraints": constraints_fingerprint(), **versions()}


def provenance_line(record: dict[str, str | int]) -> str:
    """:func:`provenance` as one readable line."""
    return (f"{record['date']} on {record['host']}: {record['cpu']} ({record['cpu_threads']} threads, bf16 units: "
            f"{record.get('cpu_bf16_units', 'not recorded')}), GPU "
            f"{record['gpu']}; pystatsml-tl {record['pystatsml_tl']} (commit {record['git_commit']}), torch "
            f"{record['torch']}, torchvision {record['torchvision']}, numpy {record['numpy']}, Python "
            f"{record['python']}; constraints {record.get('constraints', 'not recorded')}")
