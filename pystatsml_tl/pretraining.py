"""Pretrain a backbone on a source task, save it with a JSON card, and find it again by its key.

Offline, the source task is the synthetic ``source`` task (22 classes, disjoint from the 10 target
classes but drawn from the same shapes and colours): ImageNet -> CIFAR-10 in miniature.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .data import load_data
from .models import check_arch, read_state_dict
from .storage import cache_dir as resolve_cache_dir
from .storage import file_lock, torch_save_atomic, write_json_atomic
from .training import best_epoch, train_val_model

DEFAULT_SOURCE = "synthetic-source"
DEFAULT_RECIPE: dict[str, Any] = {"epochs": 4, "batch_size": 50, "lr": 1e-3, "train_size": 4400,
                                  "test_size": 1100, "seed": 0}
"""Source-task training settings of the default offline backbone (about two minutes on 2 CPU cores)."""


@dataclass
class PretrainedBackbone:
    """A saved backbone: its state dict file and its card."""

    path: Path
    card: dict[str, Any]


def _source_name(source: str) -> str:
    return source if source in ("cifar10", DEFAULT_SOURCE) else str(Path(source).expanduser().resolve())


def backbone_key(arch: str, source: str, recipe: dict[str, Any]) -> str:
    """The key a pretrained backbone is saved and found under: arch, source and training settings."""
    text = json.dumps({"arch": arch, "source": _source_name(source), **recipe}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def backbone_path(arch: str = "resnet18", source: str = DEFAULT_SOURCE, recipe: dict[str, Any] | None = None,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the backbone for (arch, source, recipe) is kept; its card is the same path with ``.json``."""
    recipe = DEFAULT_RECIPE | (recipe or {})
    label = source if source in ("cifar10", DEFAULT_SOURCE) else Path(source).name
    return resolve_cache_dir(cache_dir) / "pretrained" / f"{arch}-{label}-{backbone_key(arch, source, recipe)}.pt"


def load_card(path: str | os.PathLike) -> dict[str, Any] | None:
    """Return the card of a saved backbone if it and its state dict are both readable, else None."""
    path = Path(path)
    try:
        card = json.loads(path.with_suffix(".json").read_text())
        read_state_dict(path)
    except (OSError, ValueError):
        return None
    return card


def pretrain(arch: str = "resnet18", source: str = DEFAULT_SOURCE, *, epochs: int | None = None,
             batch_size: int | None = None, lr: float | None = None, train_size: int | None = None,
             test_size: int | None = None, seed: int | None = None, data_dir: str | os.PathLike | None = None,
             cache_dir: str | os.PathLike | None = None, device: str = "auto", force: bool = False,
             progress: bool = True) -> PretrainedBackbone:
    """Train ``arch`` from random weights on ``source`` and save it, or reuse the saved one.

    ``source``: ``synthetic-source`` (default), ``cifar10`` or an image folder. Unset settings
    take :data:`DEFAULT_RECIPE`. The state dict and a JSON card (arch, source, classes, epochs,
    seed, source accuracy, package version) are written atomically into the cache directory;
    a later call with the same key finds them and returns at once (``force=True`` retrains).
    """
    check_arch(arch)
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "train_size": train_size,
             "test_size": test_size, "seed": seed}
    recipe = DEFAULT_RECIPE | {k: v for k, v in given.items() if v is not None}
    for name in ("epochs", "batch_size", "train_size", "test_size"):
        if not isinstance(recipe[name], int) or recipe[name] <= 0:
            raise ValueError(f"{name}={recipe[name]!r}: expected a positive integer")
    if not recipe["lr"] > 0:
        raise ValueError(f"lr={recipe['lr']!r}: expected a positive number")
    path = backbone_path(arch, source, recipe, cache_dir)
    with file_lock(path.with_suffix(".lock")):  # a second process waits, then reuses what the first saved
        if not force and (card := load_card(path)) is not None:
            return PretrainedBackbone(path, card)
        return _pretrain_and_save(arch, source, recipe, path, data_dir, device, progress)


def _pretrain_and_save(arch: str, source: str, recipe: dict[str, Any], path: Path, data_dir, device: str,
                       progress: bool) -> PretrainedBackbone:
    data = load_data(source, data_dir=data_dir, batch_size=recipe["batch_size"], val_fraction=0.0,
                     train_subset=recipe["train_size"], test_subset=recipe["test_size"], seed=recipe["seed"],
                     device=device)
    import torchvision

    torch.manual_seed(recipe["seed"])
    model = torchvision.models.get_model(arch, weights=None, num_classes=data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    print(f"Pretraining {arch} on {source} ({data.num_classes} classes, {data.sizes['train']} images, "
          f"{recipe['epochs']} epochs); saved to {path} for reuse", file=sys.stderr)
    started = time.time()
    model, _, accuracies = train_val_model(model, nn.CrossEntropyLoss(), optimizer, data, recipe["epochs"],
                                           device=device, seed=recipe["seed"], progress=progress)
    card = {"arch": arch, "source": _source_name(source), "classes": data.classes, **recipe,
            "source_test_acc": accuracies["test"][best_epoch(accuracies)],
            "seconds": round(time.time() - started, 1), "package_version": __version__, "key": path.stem}
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch_save_atomic(state, path)
    write_json_atomic(path.with_suffix(".json"), card)
    return PretrainedBackbone(path, card)


def pretrained_backbone_path(arch: str = "resnet18", progress: bool = True) -> Path:
    """Path of the default offline backbone for ``arch`` (weights="synthetic"), pretraining it on first use."""
    return pretrain(arch, DEFAULT_SOURCE, progress=progress).path
