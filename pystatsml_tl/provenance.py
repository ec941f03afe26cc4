"""Where a result came from: date, host, hardware, versions and the package's git commit."""
from __future__ import annotations

import datetime
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


def versions() -> dict[str, str]:
    """Versions of what produced a result."""
    return {"pystatsml_tl": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def provenance() -> dict[str, str | int]:
    """Date and time (UTC), host, CPU model and threads, GPU (or none), versions and git commit."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "host": socket.gethostname(), "cpu": cpu_model(), "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count() or 0, "gpu": gpu, "git_commit": git_commit(), **versions()}


def provenance_line(record: dict[str, str | int]) -> str:
    """:func:`provenance` as one readable line."""
    return (f"{record['date']} on {record['host']}: {record['cpu']} ({record['cpu_threads']} threads), GPU "
            f"{record['gpu']}; pystatsml-tl {record['pystatsml_tl']} (commit {record['git_commit']}), torch "
            f"{record['torch']}, torchvision {record['torchvision']}, numpy {record['numpy']}, Python "
            f"{record['python']}")
