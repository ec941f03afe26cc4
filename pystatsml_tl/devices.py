"""Where tensors go: the device a name means. The names and their check need no torch; torch is
imported when a name is resolved."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
"""Device names a user may give: ``auto`` (CUDA, then Apple's ``mps``, then the CPU), or one of them
(``cuda:N`` also names one CUDA device)."""


def mps_available() -> bool:
    """Whether Apple's Metal GPU backend (``mps``) is available to torch on this machine."""
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_device(name: str, value: Any) -> None:
    """Refuse a device name outside :data:`DEVICES` (and ``cuda:N``), in one line naming the parameter."""
    if not isinstance(value, str) or (value not in DEVICES and not value.startswith("cuda:")):
        raise ValueError(f"{name}={value!r}: expected {' | '.join(DEVICES)} (or cuda:N)")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return the torch device for ``device``: ``auto`` picks CUDA when present, then Apple's GPU
    (``mps``), else the CPU; a named GPU that is not there is refused in one line."""
    import torch

    if isinstance(device, torch.device):
        return device
    check_device("device", device)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: no CUDA device is available here; use device='auto' or 'cpu'")
    if device == "mps" and not mps_available():
        raise ValueError("device='mps': Apple's GPU backend is not available here (it needs a Mac with Apple "
                         "silicon or an AMD GPU and a torch built for it); use device='auto' or 'cpu'")
    return torch.device(device)
