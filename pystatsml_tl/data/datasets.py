"""Loaders over the registered data sets (:mod:`pystatsml_tl.data.registry`: CIFAR-10, handwritten
digits, the synthetic tasks, formula-driven fractals) and over image folders.

:func:`load_data` returns a :class:`DataLoaders` dict keyed ``"train"``, ``"val"`` (when
``val_fraction > 0``) and ``"test"``. In-memory datasets (CIFAR-10, synthetic) are served by a
:class:`~pystatsml_tl.data.loaders.TensorLoader`; image folders by a ``torch.utils.data.DataLoader``.
"""
from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..devices import resolve_device
from .cifar10 import load_cifar10_arrays
from .formulas import FRACTAL_CLASSES, FRACTAL_SIZES, load_fractal_arrays
from .loaders import BatchTransform, ImageArrayDataset, TensorLoader, shard
from .normalization import NORMALIZATION_STATS
from .registry import DATA_CHECKS, DATASETS, LoadRequest, check_data_arguments

EVAL_BATCH_SIZE = 100
"""The smallest batch of the validation and test loaders. Evaluation keeps no gradients, so it can
take larger batches than training: a few large batches cost less time than many small ones (at
batch 5, a ResNet18 at 32 px spends most of each pass on fixed costs), and in eval mode the
predictions do not depend on how the images are batched."""


def split_batch_size(split: str, batch_size: int) -> int:
    """The batch size of ``split``'s loader: ``batch_size`` for ``train``, at least
    :data:`EVAL_BATCH_SIZE` for ``val`` and ``test``."""
    return batch_size if split == "train" else max(batch_size, EVAL_BATCH_SIZE)


class DataLoaders(dict):
    """Loaders keyed by split (``train``, ``val``, ``test``), with what a user needs to know about them."""

    def __init__(self, loaders: dict[str, Any], classes: list[str], name: str, fingerprint: str = ""):
        super().__init__(loaders)
        self.classes = list(classes)
        self.name = name
        self.fingerprint = fingerprint  # of the whole image set the splits come from (see image_set_fingerprint)

    def description(self) -> dict[str, Any]:
        """What identifies the images of a run: the set's name, its splits' sizes and its fingerprint."""
        return {"name": self.name, "sizes": self.sizes, "fingerprint": self.fingerprint}

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def sizes(self) -> dict[str, int]:
        """Number of images in each split."""
        return {split: len(loader.dataset) for split, loader in self.items()}

    def training_loaders(self) -> DataLoaders:
        """The loaders that training sees: ``train`` and ``val``, without ``test`` (kept for the one
        final test). Without a validation split, ``test`` stays: it then selects the epoch, the
        tutorial's protocol (``val_fraction=0``)."""
        kept = {split: loader for split, loader in self.items() if split != "test" or "val" not in self}
        return DataLoaders(kept, self.classes, self.name, self.fingerprint)


def image_set_fingerprint(*parts: ImageArrayDataset | list[tuple[str, int]]) -> str:
    """The first 16 hex digits of a SHA-256 over an image set: the pixels and labels of in-memory
    datasets, or the (relative file name, file size) and label of each file of an image folder."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, ImageArrayDataset):
            digest.update(part.images.contiguous().numpy().tobytes())
            digest.update(np.asarray(part.targets, dtype=np.int64).tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()[:16]


def _folder_entries(folder, root: Path) -> list[tuple[str, int, int]]:
    return [(str(Path(path).relative_to(root)), Path(path).stat().st_size, label) for path, label in folder.samples]


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into seeded (train, val) index tensors; ``val`` holds ``round(n * val_fraction)``."""
    n_val = round(n * val_fraction)
    if val_fraction > 0 and not 0 < n_val < n:
        raise ValueError(f"val_fraction={val_fraction}: leaves no image in train or val out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:].sort().values, order[:n_val].sort().values


def subset_indices(n: int, size: int | None, seed: int) -> torch.Tensor | None:
    """Return ``size`` seeded random indices out of ``n`` (sorted), or None to keep everything."""
    if size is None or size >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values


def _tensor_loaders(datasets: dict[str, ImageArrayDataset], name: str, batch_size: int, val_fraction: float,
                    train_subset: int | None, test_subset: int | None, normalize: str, image_size: int,
                    augment: bool, seed: int, device: torch.device) -> DataLoaders:
    train, test = datasets["train"], datasets["test"]
    pool = subset_indices(len(train), train_subset, seed)
    pool = torch.arange(len(train)) if pool is None else pool
    test_index = subset_indices(len(test), test_subset, seed + 1)
    positions = {"train": (train, pool)}
    if val_fraction > 0:
        train_index, val_index = split_indices(len(pool), val_fraction, seed)
        positions = {"train": (train, pool[train_index]), "val": (train, pool[val_index])}
    positions["test"] = (test, torch.arange(len(test)) if test_index is None else test_index)
    transform = BatchTransform(normalize, image_size, augment)
    loaders = {}
    for split, (base, index) in positions.items():
        ds = base.subset(index)
        loaders[split] = TensorLoader(ds.images, torch.as_tensor(ds.targets), split_batch_size(split, batch_size),
                                      shuffle=split == "train", transform=transform, train=split == "train",
                                      device=device, dataset=ds, origin=(base, index))
    return DataLoaders(loaders, train.classes, name, image_set_fingerprint(train, test))


def _folder_split(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _verify_images(folder) -> None:
    for path, _ in folder.samples:
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as error:  # PIL raises many types for a bad file
            raise ValueError(f"dataset: unreadable image {path} ({type(error).__name__}: {error})") from error


def _image_folder_loaders(root: Path, batch_size: int, val_fraction: float, train_subset: int | None,
                          test_subset: int | None, normalize: str, image_size: int, augment: bool, seed: int,
                          num_workers: int, device: torch.device) -> DataLoaders:
    from torchvision import datasets, transforms

    train_dir = _folder_split(root, ("train",))
    test_dir = _folder_split(root, ("test", "val"))
    if train_dir is None or test_dir is None:
        raise ValueError(f"dataset={str(root)!r}: expected an image folder with train/ and test/ (or val/) "
                         "subfolders, each holding one subfolder of images per class")
    mean, std = NORMALIZATION_STATS[normalize]
    base = [transforms.Resize((image_size, image_size)), transforms.ToTensor(), transforms.Normalize(mean, std)]
    extra = [transforms.RandomHorizontalFlip(), transforms.RandomCrop(image_size, padding=4, padding_mode="reflect")]
    train_tf = transforms.Compose(base[:1] + (extra if augment else []) + base[1:])
    eval_tf = transforms.Compose(base)
    try:
        train_set = datasets.ImageFolder(str(train_dir), transform=train_tf)
        train_eval_set = datasets.ImageFolder(str(train_dir), transform=eval_tf)
        test_set = datasets.ImageFolder(str(test_dir), transform=eval_tf)
    except FileNotFoundError as error:
        raise ValueError(f"dataset={str(root)!r}: {error}; expected one subfolder of images per class") from error
    if test_set.classes != train_set.classes:
        raise ValueError(f"dataset={str(root)!r}: the classes of {test_dir.name}/ {test_set.classes} differ from "
                         f"those of train/ {train_set.classes}")
    for folder in (train_set, test_set):
        _verify_images(folder)
    pool = subset_indices(len(train_set), train_subset, seed)
    pool = torch.arange(len(train_set)) if pool is None else pool
    splits = {"train": torch.utils.data.Subset(train_set, pool.tolist())}
    if val_fraction > 0:
        train_index, val_index = split_indices(len(pool), val_fraction, seed)
        splits = {"train": torch.utils.data.Subset(train_set, pool[train_index].tolist()),
                  "val": torch.utils.data.Subset(train_eval_set, pool[val_index].tolist())}
    test_index = subset_indices(len(test_set), test_subset, seed + 1)
    splits["test"] = test_set if test_index is None else torch.utils.data.Subset(test_set, test_index.tolist())
    loaders = {
        split: torch.utils.data.DataLoader(ds, batch_size=split_batch_size(split, batch_size), shuffle=split == "train",
                                           num_workers=num_workers, pin_memory=device.type == "cuda",
                                           persistent_workers=num_workers > 0)
        for split, ds in splits.items()
    }
    fingerprint = image_set_fingerprint(_folder_entries(train_set, root), _folder_entries(test_set, root))
    return DataLoaders(loaders, train_set.classes, str(root), fingerprint)


def load_data(dataset: str = "cifar10", *, data_dir: str | os.PathLike | None = None, batch_size: int = 100,
              val_fraction: float = 0.1, train_subset: int | None = None, test_subset: int | None = None,
              image_size: int = 32, normalize: str = "tutorial", augment: bool = False, seed: int = 0,
              device: str | torch.device = "cpu", num_workers: int = 0) -> DataLoaders:
    """Load a dataset and return its loaders keyed ``train``, ``val`` (if ``val_fraction > 0``) and ``test``.

    ``dataset`` is the name of a registered data set (:data:`~pystatsml_tl.data.registry.DATASETS`:
    ``cifar10``, downloaded on first use into ``data_dir``; ``digits``, scikit-learn's handwritten
    digits as 32 px RGB; ``synthetic`` and ``synthetic-source``, the offline tasks; ``fractals``,
    the formula-driven source task of the offline backbone; and any set registered with
    :func:`~pystatsml_tl.data.registry.register_dataset`) or the path of an image folder with
    ``train/`` and ``test/`` (or ``val/``) subfolders of class folders.
    The validation split is drawn from the training set with ``seed``; ``train_subset`` and
    ``test_subset`` keep that many seeded random images. Only training batches are augmented;
    the validation and test loaders take batches of at least :data:`EVAL_BATCH_SIZE` images.
    """
    check_data_arguments(dataset=dataset, batch_size=batch_size, val_fraction=val_fraction,
                         train_subset=train_subset, test_subset=test_subset, image_size=image_size,
                         normalize=normalize, num_workers=num_workers)
    device = resolve_device(device)
    common = dict(batch_size=batch_size, val_fraction=val_fraction, train_subset=train_subset,
                  test_subset=test_subset, normalize=normalize, image_size=image_size, augment=augment, seed=seed)
    if dataset in DATASETS:
        entry = DATASETS[dataset]
        arrays = entry.load(LoadRequest(None if data_dir is None else str(data_dir), seed, train_subset, test_subset))
        if entry.subsets_at_source:
            common |= {"train_subset": None, "test_subset": None}
        return _tensor_loaders(arrays, dataset, device=device, **common)
    return _image_folder_loaders(Path(dataset).expanduser(), num_workers=num_workers, device=device, **common)


def load_fractals(num_classes: int = FRACTAL_CLASSES, *, train_subset: int | None = None,
                  test_subset: int | None = None, seed: int = 0, device: str | torch.device = "cpu",
                  **settings) -> DataLoaders:
    """The formula-driven source task with ``num_classes`` systems as loaders (``fractals`` of
    :func:`load_data` with another number of classes; ``settings``: :func:`load_data`'s other
    keywords, at its defaults when not given): only as many images are rendered as ``train_subset``
    and ``test_subset`` keep (default :data:`~pystatsml_tl.data.formulas.FRACTAL_SIZES`)."""
    defaults = {name: p.default for name, p in inspect.signature(load_data).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY
                and name not in ("data_dir", "num_workers", "device", "train_subset", "test_subset")}
    common = defaults | {"seed": seed} | settings
    check_data_arguments(**{k: v for k, v in common.items() if k in DATA_CHECKS})
    arrays = load_fractal_arrays(train_subset or FRACTAL_SIZES["train"], test_subset or FRACTAL_SIZES["test"],
                                 seed=seed, num_classes=num_classes)
    return _tensor_loaders(arrays, "fractals", train_subset=None, test_subset=None, device=resolve_device(device),
                           **common)


def shard_loaders(data: DataLoaders, rank: int, world: int) -> DataLoaders:
    """The loaders of one rank of a data-parallel run: each serves its share of every global batch
    (``batch_size`` stays the global batch; see :func:`~pystatsml_tl.distributed.rank_batches`)."""
    if world == 1:
        return data
    sharded = {split: shard(loader, rank, world) for split, loader in data.items()}
    return DataLoaders(sharded, data.classes, data.name, data.fingerprint)


def load_cifar10_pytorch(dirname: str | os.PathLike | None = None, batch_size_train: int = 100,
                         batch_size_test: int = 100) -> tuple[DataLoaders, list[str]]:
    """The tutorial's loader: CIFAR-10 as ``({"train": ..., "test": ...}, classes)``, mean = std = 0.5,
    no validation split, so the tutorial's own code runs with only its import changed."""
    datasets = load_cifar10_arrays(dirname)
    transform = BatchTransform("tutorial", 32, augment=False)
    loaders = {
        split: TensorLoader(ds.images, torch.as_tensor(ds.targets), size, shuffle=split == "train",
                            transform=transform, train=split == "train", dataset=ds)
        for (split, ds), size in zip(datasets.items(), (batch_size_train, batch_size_test))
    }
    return DataLoaders(loaders, datasets["train"].classes, "cifar10"), datasets["train"].classes
