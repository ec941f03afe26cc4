"""Frozen-backbone features, computed once per split and kept on disk.

A fixed feature extractor gives the same features every epoch, so the new head can be trained on
them directly: one forward pass over the data instead of one per epoch. An entry on disk is keyed
by everything that determines it (arch, the backbone's weights, the images and labels, the input
transform); an entry that is corrupt or does not match its key is recomputed, never trusted.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import DataLoaders, resolve_device
from .loaders import TensorLoader
from .models import get_head, head_name, set_head
from .storage import cache_dir as resolve_cache_dir
from .storage import torch_save_atomic

FORMAT_VERSION = 1


@dataclass
class FeatureCacheInfo:
    """Where cached features live, whether they were reused, and their size."""

    path: str | None
    reused: bool
    bytes: int


def _hash_tensor(digest, tensor: torch.Tensor) -> None:
    digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
    digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def backbone_fingerprint(model: nn.Module) -> str:
    """A hash of every parameter and buffer outside the classification layer: the weights' identity."""
    head = head_name(model) + "."
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        if not name.startswith(head):
            digest.update(name.encode())
            _hash_tensor(digest, tensor)
    return digest.hexdigest()


def data_fingerprint(loader) -> str:
    """A hash of what a loader serves: its tensors, or the files and labels of an image folder."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(loader, TensorLoader):
        _hash_tensor(digest, loader.inputs)
        _hash_tensor(digest, loader.labels)
        return digest.hexdigest()
    dataset, indices = loader.dataset, None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, list(dataset.indices)
    samples = dataset.samples if indices is None else [dataset.samples[i] for i in indices]
    for path, label in samples:
        stat = os.stat(path)
        digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def in_order(loader):
    """The same loader without shuffling: features must line up with the dataset's order."""
    if isinstance(loader, TensorLoader):
        ordered = copy.copy(loader)
        ordered.shuffle = False
        return ordered
    return torch.utils.data.DataLoader(loader.dataset, batch_size=loader.batch_size, shuffle=False,
                                       num_workers=loader.num_workers, pin_memory=loader.pin_memory)


@torch.no_grad()
def extract_features(model: nn.Module, loader, device: str | torch.device = "auto",
                     progress: bool = False, desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` without its classification layer, in eval mode, over ``loader`` in dataset order.

    Returns (features float32 (N, D), labels int64 (N,)) on the CPU.
    """
    device = resolve_device(device)
    name, head = head_name(model), get_head(model)
    was_training = model.training
    set_head(model, name, nn.Identity())
    try:
        model.to(device=device, memory_format=torch.channels_last).eval()
        features, labels = [], []
        with tqdm(total=len(loader), desc=desc, disable=not progress, leave=False) as bar:
            for x, y in in_order(loader):
                bar.update()
                x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                features.append(model(x).float().flatten(1).cpu())
                labels.append(y.cpu())
    finally:
        set_head(model, name, head)
        model.train(was_training)
    return torch.cat(features), torch.cat(labels).long()


def _feature_key(model: nn.Module, dataloaders: dict, description: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "backbone": backbone_fingerprint(model),
            "data": {split: data_fingerprint(loader) for split, loader in dataloaders.items()},
            **description}


def _read_entry(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The cached entry at ``path`` if it is readable, complete and made for ``key``; else None."""
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if json.loads(entry["key"]) != key:
            return None
        for split in key["data"]:
            features, labels = entry["features"][split], entry["labels"][split]
            if features.ndim != 2 or features.shape[0] != labels.shape[0]:
                return None
        return entry
    except Exception:  # a truncated or foreign file: recompute rather than trust it
        return None


def cached_feature_loaders(model: nn.Module, dataloaders: DataLoaders, *, description: dict[str, Any] | None = None,
                           cache: bool = True, cache_dir: str | os.PathLike | None = None,
                           device: str | torch.device = "auto",
                           progress: bool = False) -> tuple[DataLoaders, FeatureCacheInfo]:
    """Compute (or reuse from disk) the frozen backbone's features of every split, and return
    loaders over them with the same batch size and shuffling, plus where the cache is.

    ``description`` adds readable facts (arch, dataset, image size ...) to the key; ``cache=False``
    computes in memory and writes nothing.
    """
    key = _feature_key(model, dataloaders, description or {})
    name = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=12).hexdigest()
    path = resolve_cache_dir(cache_dir) / "features" / f"{name}.pt"
    entry = _read_entry(path, key) if cache else None
    reused = entry is not None
    if entry is None:
        entry = {"key": json.dumps(key), "features": {}, "labels": {}}
        for split, loader in dataloaders.items():
            entry["features"][split], entry["labels"][split] = extract_features(
                model, loader, device, progress, desc=f"features {split}")
        if cache:
            torch_save_atomic(entry, path)
    loaders = {
        split: TensorLoader(entry["features"][split], entry["labels"][split], loader.batch_size,
                            shuffle=_shuffles(loader), device=resolve_device(device))
        for split, loader in dataloaders.items()
    }
    size = path.stat().st_size if cache and path.is_file() else sum(t.numel() * 4 for t in entry["features"].values())
    return (DataLoaders(loaders, dataloaders.classes, dataloaders.name),
            FeatureCacheInfo(str(path) if cache else None, reused, size))


def _shuffles(loader) -> bool:
    if isinstance(loader, TensorLoader):
        return loader.shuffle
    return isinstance(loader.sampler, torch.utils.data.RandomSampler)
