"""Frozen-backbone features, computed once per split and kept on disk.

A fixed feature extractor gives the same features every epoch, so the new head can be trained on
them directly: one forward pass over the data instead of one per epoch. An entry on disk is keyed
by everything that determines it (arch, the backbone's weights, the images and labels, the input
transform); an entry that is corrupt or does not match its key is recomputed, never trusted.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .backbones import get_head, head_name, set_head
from .data.datasets import DataLoaders
from .data.loaders import TensorLoader, in_order, is_every_row, shuffles, take_rows
from .devices import resolve_device
from .distributed import gather_objects, is_main_process, rank_and_world, synchronize
from .inference import inference_model
from .precision import autocast, resolve_precision
from .storage import cache_dir as resolve_cache_dir
from .storage import file_lock, torch_save_atomic

FORMAT_VERSION = 3  # 2: one entry per image set, filled as images are needed; 3: the backbone prepared for inference


@dataclass
class FeatureCacheInfo:
    """Where cached features live (one file per image set; none when not kept on disk), whether
    they were all reused, how many images had to be run through the backbone, and the size."""

    paths: list[str]
    reused: bool
    computed: int
    bytes: int


def _hash_tensor(digest, tensor: torch.Tensor) -> None:
    digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
    digest.update(memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))  # no copy


def backbone_fingerprint(model: nn.Module) -> str:
    """A hash of every parameter and buffer outside the classification layer: the weights' identity."""
    head = head_name(model) + "."
    digest = hashlib.sha256()  # SHA extensions of recent CPUs make it the fastest for large tensors
    for name, tensor in sorted(model.state_dict().items()):
        if not name.startswith(head):
            digest.update(name.encode())
            _hash_tensor(digest, tensor)
    return digest.hexdigest()


def _tensors_fingerprint(inputs: torch.Tensor, labels: torch.Tensor) -> str:
    digest = hashlib.sha256()
    _hash_tensor(digest, inputs)
    _hash_tensor(digest, torch.as_tensor(labels))
    return digest.hexdigest()


def _samples_fingerprint(samples: list[tuple[str, int]]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for path, label in samples:
        stat = os.stat(path)
        digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dataclass
class ImageSource:
    """The image set a split's loader draws from: its fingerprint and size, the positions of the
    split's images in it, and a way to build an ordered loader over any positions of it.

    The features of an image do not depend on the split it falls in, so splits, subsets and seeds
    drawn from one image set share one cache entry."""

    fingerprint: str
    size: int
    index: torch.Tensor
    loader_for: Callable[[torch.Tensor], Any]


@functools.singledispatch
def image_source(loader: torch.utils.data.DataLoader) -> ImageSource:
    """The :class:`ImageSource` behind a loader: for an image-folder DataLoader, the folder behind
    its Subset; for a tensor loader, its origin when :func:`load_data` recorded one, else its own tensors."""
    dataset = loader.dataset
    base, index = (dataset.dataset, torch.as_tensor(dataset.indices)) if isinstance(dataset, torch.utils.data.Subset) \
        else (dataset, torch.arange(len(dataset)))

    def folder_loader(positions: torch.Tensor):
        return torch.utils.data.DataLoader(torch.utils.data.Subset(base, positions.tolist()),
                                           batch_size=loader.batch_size, shuffle=False,
                                           num_workers=loader.num_workers, pin_memory=loader.pin_memory)

    return ImageSource(_samples_fingerprint(base.samples), len(base), index, folder_loader)


@image_source.register
def _(loader: TensorLoader) -> ImageSource:
    if loader.origin is not None:
        base, index = loader.origin
        inputs, labels = base.images, torch.as_tensor(base.targets)
    else:
        inputs, labels, index = loader.inputs, loader.labels, torch.arange(len(loader.labels))

    def tensor_loader(positions: torch.Tensor) -> TensorLoader:
        return TensorLoader(take_rows(inputs, positions), take_rows(labels, positions), loader.batch_size,
                            transform=loader.transform, train=False, device=loader.device)

    return ImageSource(_tensors_fingerprint(inputs, labels), len(labels), index, tensor_loader)


@torch.no_grad()
def extract_features(model: nn.Module, loader, device: str | torch.device = "auto",
                     progress: bool = False, desc: str = "features",
                     precision: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` without its classification layer, in eval mode, over ``loader`` in dataset order.

    The backbone runs as a copy prepared for inference (:func:`~pystatsml_tl.inference.inference_model`:
    BatchNorm folded into the convolutions; features equal to the plain model's up to float
    rounding); ``model`` keeps its own layers and mode. ``precision="bf16"`` runs it under bfloat16
    autocast (tensor cores on GPUs, bf16 units on some CPUs): the features differ from fp32 in their
    last digits (bfloat16 keeps 8 bits of mantissa); ``auto`` (the default) picks per device
    (:func:`~pystatsml_tl.precision.auto_precision`). Returns (features float32 (N, D), labels
    int64 (N,)) on the CPU.
    """
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    name, head = head_name(model), get_head(model)
    was_training = model.training
    set_head(model, name, nn.Identity())
    try:
        backbone = inference_model(model, device)
        features, labels = [], []
        with tqdm(total=len(loader), desc=desc, disable=not progress, leave=False) as bar:
            for x, y in in_order(loader):
                bar.update()
                x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                with autocast(device, precision):
                    features.append(backbone(x).float().flatten(1).cpu())
                labels.append(y.cpu())
    finally:
        set_head(model, name, head)
        model.train(was_training)
    return torch.cat(features), torch.cat(labels).long()


def _feature_key(model: nn.Module, source: ImageSource, description: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "backbone": backbone_fingerprint(model), "images": source.fingerprint,
            "size": source.size, **description}


def _empty_entry(key: dict[str, Any]) -> dict[str, Any]:
    return {"key": json.dumps(key), "features": None, "labels": torch.zeros(key["size"], dtype=torch.long),
            "done": torch.zeros(key["size"], dtype=torch.bool)}


def _read_entry(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The cached entry at ``path`` if it is readable, consistent and made for ``key``; else None."""
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if json.loads(entry["key"]) != key:
            return None
        features, labels, done = entry["features"], entry["labels"], entry["done"]
        if features.ndim != 2 or not features.shape[0] == labels.shape[0] == done.shape[0] == key["size"]:
            return None
        return entry
    except Exception:  # noqa: BLE001 - a truncated or foreign file: recompute rather than trust it
        return None


def _complete(entry: dict[str, Any], model: nn.Module, source: ImageSource, needed: torch.Tensor, device,
              progress: bool, desc: str, precision: str) -> int:
    """Compute the features of the ``needed`` positions that ``entry`` lacks; return how many."""
    missing = needed[~entry["done"][needed]]
    if missing.numel():
        rank, world = rank_and_world()
        mine = missing[rank::world]  # a data-parallel run shares the work out, then every rank gets all of it
        computed = extract_features(model, source.loader_for(mine), device, progress, desc, precision) if len(mine) \
            else (torch.zeros(0, 0), torch.zeros(0, dtype=torch.long))
        parts = gather_objects((mine, *computed))
        order = torch.cat([positions for positions, _, _ in parts])
        features = torch.cat([f for _, f, _ in parts if len(f)])
        labels = torch.cat([y for _, _, y in parts])
        missing = order
        if entry["features"] is None and is_every_row(missing, source.size):
            entry["features"], entry["labels"] = features, labels
        else:
            if entry["features"] is None:
                entry["features"] = torch.zeros(source.size, features.shape[1])
            entry["features"][missing], entry["labels"][missing] = features, labels
        entry["done"][missing] = True
    return int(missing.numel())


def cached_feature_loaders(model: nn.Module, dataloaders: DataLoaders, *, description: dict[str, Any] | None = None,
                           cache: bool = True, cache_dir: str | os.PathLike | None = None,
                           device: str | torch.device = "auto", progress: bool = False,
                           precision: str = "auto") -> tuple[DataLoaders, FeatureCacheInfo]:
    """Compute (or reuse from disk) the frozen backbone's features of every split, and return
    loaders over them with the same batch size and shuffling, plus where the cache is.

    Features are kept per image set, not per split: every split, subset and seed drawn from the
    same images (CIFAR-10's 50000 training images, say) reuses one entry, and only images not yet
    in it are run through the backbone. ``description`` adds readable facts (arch, image size ...)
    to the key; ``cache=False`` computes in memory and writes nothing; ``precision`` (auto, fp32
    or bf16, see :func:`extract_features`; what it resolves to on the device) is part of the key.
    Processes sharing the cache take turns on an entry, so the second one reuses what the first
    computed; the workers of a data-parallel run share the extraction out and rank 0 writes the entry.
    """
    precision = resolve_precision(precision, resolve_device(device))
    sources = {split: image_source(loader) for split, loader in dataloaders.items()}
    by_images: dict[str, list[str]] = {}
    for split, source in sources.items():
        by_images.setdefault(source.fingerprint, []).append(split)
    features, labels, paths, computed, size = {}, {}, [], 0, 0
    for splits in by_images.values():
        source = sources[splits[0]]
        key = _feature_key(model, source, (description or {}) | {"precision": precision})
        name = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=12).hexdigest()
        path = resolve_cache_dir(cache_dir) / "features" / f"{name}.pt"
        needed = torch.cat([sources[split].index for split in splits]).unique()
        with file_lock(path.with_suffix(".lock")) if cache and is_main_process() else nullcontext():
            synchronize()  # every rank reads the entry while rank 0 holds the lock: they see the same one
            entry = (_read_entry(path, key) if cache else None) or _empty_entry(key)
            added = _complete(entry, model, source, needed, device, progress, f"features {'+'.join(splits)}",
                              precision)
            if cache and added and is_main_process():
                torch_save_atomic(entry, path)
            synchronize()
        computed += added
        for split in splits:
            index = sources[split].index
            features[split], labels[split] = take_rows(entry["features"], index), take_rows(entry["labels"], index)
        if cache:
            paths.append(str(path))
            size += path.stat().st_size
        else:
            size += sum(features[split].numel() * 4 for split in splits)
    loaders = {
        split: TensorLoader(features[split], labels[split], loader.batch_size, shuffle=shuffles(loader),
                            device=resolve_device(device))
        for split, loader in dataloaders.items()
    }
    return (DataLoaders(loaders, dataloaders.classes, dataloaders.name, dataloaders.fingerprint),
            FeatureCacheInfo(paths, computed == 0, computed, size))

