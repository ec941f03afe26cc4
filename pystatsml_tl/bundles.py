"""Pretrained backbones that ship inside the package, so that the offline lesson starts at once.

A bundle holds what pretraining learned or measured, not what it drew at random: the blocks that
:mod:`~pystatsml_tl.pretraining` puts back to seeded random weights are left out, and drawn again
from their seed when the bundle is installed (a ResNet18 with ``layer4`` put back is 11 MB
instead of 45; the default backbone keeps a share of its trained ``layer4``, so its bundle is the
whole state dict). Its card is the pretraining card plus the names of the tensors left out and a
digest of the whole state dict, so that an install that does not rebuild it bit for bit is noticed.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from .backbones import read_state_dict
from .storage import torch_save_atomic, write_json_atomic

BUNDLE_DIR = Path(__file__).parent / "bundled_weights"
"""Where the package keeps its bundles: ``<key>.pt`` (the learned tensors) and ``<key>.json`` (the card)."""


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """A digest of a state dict: every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def find_bundle(key: str, folder: str | os.PathLike | None = None) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The learned tensors and the card of the bundle saved under ``key``, or None when there is none."""
    path = Path(folder or BUNDLE_DIR) / f"{key}.pt"
    try:
        card = json.loads(path.with_suffix(".json").read_text())
        return read_state_dict(path), card
    except (OSError, ValueError):
        return None


def write_bundle(state: dict[str, torch.Tensor], card: dict[str, Any], redrawn: list[str],
                 folder: str | os.PathLike | None = None) -> Path:
    """Save ``state`` without its ``redrawn`` tensors as the bundle of ``card["key"]`` in ``folder``
    (default: the package's own), with the card, the names left out and the digest of ``state``."""
    unknown = sorted(set(redrawn) - set(state))
    if unknown:
        raise ValueError(f"redrawn={unknown[:3]}: expected names of tensors in the state dict")
    path = Path(folder or BUNDLE_DIR) / f"{card['key']}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch_save_atomic({name: tensor for name, tensor in state.items() if name not in redrawn}, path)
    write_json_atomic(path.with_suffix(".json"),
                      card | {"redrawn": sorted(redrawn), "state_digest": state_digest(state)})
    return path
