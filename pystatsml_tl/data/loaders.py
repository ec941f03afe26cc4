"""Tensor-resident batches: images held once as a uint8 tensor, transformed a whole batch at a time."""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..distributed import RankBatchSampler, rank_batches
from .normalization import NORMALIZATION_STATS, check_normalize


def is_every_row(index: torch.Tensor, size: int) -> bool:
    """True when ``index`` is 0, 1, ..., ``size`` - 1: every row of a ``size``-row tensor, in order."""
    index = torch.as_tensor(index)
    return index.ndim == 1 and len(index) == size and torch.equal(index, torch.arange(size))


def take_rows(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[index]``, without the copy when ``index`` is every row in order (:func:`is_every_row`)."""
    return tensor if is_every_row(index, len(tensor)) else tensor[index]


class ImageArrayDataset(torch.utils.data.Dataset):
    """An in-memory image dataset: ``images`` uint8 (N, 3, H, W), ``targets`` and ``classes``.

    ``data`` shows the images as CIFAR-10 stores them, (N, H, W, 3), so code written for
    ``torchvision.datasets.CIFAR10`` (``dataset.data.shape``, ``dataset.targets``) keeps working.
    """

    def __init__(self, images: torch.Tensor, targets: Sequence[int], classes: Sequence[str]):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected a uint8 tensor (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)

    @classmethod
    def from_hwc(cls, array: np.ndarray, targets: Sequence[int], classes: Sequence[str]) -> ImageArrayDataset:
        """Build from a uint8 array (N, H, W, 3), the layout of CIFAR-10's ``data``."""
        return cls(torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous(), targets, classes)

    @property
    def data(self) -> np.ndarray:
        """The images as a uint8 array (N, H, W, 3)."""
        return self.images.permute(0, 2, 3, 1).cpu().numpy()

    def subset(self, indices: torch.Tensor) -> ImageArrayDataset:
        """Return a new dataset holding the images at ``indices`` (sharing them when that is all, in order)."""
        targets = torch.as_tensor(self.targets)[indices].tolist()
        return ImageArrayDataset(take_rows(self.images, indices), targets, self.classes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.targets[index]


class BatchTransform:
    """Turns a uint8 batch into the network's input: optional flip and pad-and-crop (training only),
    resize to ``image_size``, scale to [0, 1], normalize."""

    def __init__(self, normalize: str = "tutorial", image_size: int = 32, augment: bool = False):
        check_normalize("normalize", normalize)
        mean, std = NORMALIZATION_STATS[normalize]
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.image_size = image_size
        self.augment = augment

    def __call__(self, batch: torch.Tensor, train: bool = False) -> torch.Tensor:
        x = batch.float().div_(255)
        if self.augment and train:
            x = random_flip_and_crop(x)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return x.sub_(mean).div_(std)


def random_flip_and_crop(x: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2, then crop it at a random offset from a
    reflection-padded copy; all on the batch, no per-image Python loop."""
    n, c, h, w = x.shape
    flip = torch.rand(n, device=x.device) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, channel, rows, cols]


class TensorLoader:
    """Iterate over tensors ``inputs`` and ``labels`` in batches, like a DataLoader but without
    per-sample work: shuffling draws one permutation from torch's global generator, and
    ``transform`` (if any) is applied to whole batches.

    ``dataset`` is what the batches come from (an :class:`ImageArrayDataset` for images);
    ``origin`` = (a larger dataset, the positions of ``inputs`` in it), when they were drawn from one.
    """

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                 transform: BatchTransform | None = None, train: bool = False, device: str | torch.device = "cpu",
                 dataset=None, origin: tuple[ImageArrayDataset, torch.Tensor] | None = None):
        if batch_size <= 0:
            raise ValueError(f"batch_size={batch_size!r}: expected a positive integer")
        device = torch.device(device)
        self.inputs = inputs.to(device)  # moved once: on a GPU the whole set lives there
        self.labels = labels.to(device=device, dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.transform = transform
        self.train = train
        self.device = device
        self.dataset = dataset if dataset is not None else torch.utils.data.TensorDataset(inputs, labels)
        self.origin = origin
        self.rank, self.world = 0, 1

    def shard(self, rank: int, world: int) -> TensorLoader:
        """A copy that serves rank ``rank``'s share (of ``world``) of every batch (see
        :func:`~pystatsml_tl.distributed.rank_batches`); ``batch_size`` stays the global batch."""
        sharded = copy.copy(self)
        sharded.rank, sharded.world = rank, world
        return sharded

    def __len__(self) -> int:
        return math.ceil(self.labels.shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in rank_batches(self.labels.shape[0], self.batch_size, self.shuffle, self.rank, self.world):
            if not self.shuffle:  # in order: a slice, not a copy
                x, y = self.inputs[index[0]:index[-1] + 1], self.labels[index[0]:index[-1] + 1]
            else:
                index = index.to(self.device)
                x, y = self.inputs[index], self.labels[index]
            if self.transform is not None:
                x = self.transform(x, train=self.train)
            yield x, y


# What the feature cache and data-parallel runs ask of a loader, for the package's TensorLoader and
# for a user's torch DataLoader (an image folder): one function each, one implementation per type.

@functools.singledispatch
def in_order(loader: torch.utils.data.DataLoader) -> torch.utils.data.DataLoader:
    """The same loader without shuffling: features must line up with the dataset's order."""
    return torch.utils.data.DataLoader(loader.dataset, batch_size=loader.batch_size, shuffle=False,
                                       num_workers=loader.num_workers, pin_memory=loader.pin_memory)


@in_order.register
def _(loader: TensorLoader) -> TensorLoader:
    ordered = copy.copy(loader)
    ordered.shuffle = False
    return ordered


@functools.singledispatch
def shuffles(loader: torch.utils.data.DataLoader) -> bool:
    """True if the loader draws its batches in a new random order each pass."""
    return isinstance(loader.sampler, torch.utils.data.RandomSampler)


@shuffles.register
def _(loader: TensorLoader) -> bool:
    return loader.shuffle


@functools.singledispatch
def shard(loader: torch.utils.data.DataLoader, rank: int, world: int) -> torch.utils.data.DataLoader:
    """The loader of rank ``rank`` (of ``world``) in a data-parallel run: its share of every global
    batch (:func:`~pystatsml_tl.distributed.rank_batches`), in a new order each pass if ``loader`` shuffles."""
    sampler = RankBatchSampler(len(loader.dataset), loader.batch_size, shuffles(loader), rank, world)
    return torch.utils.data.DataLoader(loader.dataset, batch_sampler=sampler, num_workers=loader.num_workers,
                                       pin_memory=loader.pin_memory)


@shard.register
def _(loader: TensorLoader, rank: int, world: int) -> TensorLoader:
    return loader.shard(rank, world)


def generated_splits(render: Callable[[int, str], tuple[np.ndarray, np.ndarray]], names: list[str],
                      train_size: int, test_size: int) -> dict[str, ImageArrayDataset]:
    """``train`` and ``test`` datasets from a generator ``render(size, split) -> (images, labels)``."""
    return {split: ImageArrayDataset.from_hwc(*render(size, split), names)
            for split, size in (("train", train_size), ("test", test_size))}
