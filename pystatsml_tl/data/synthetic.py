"""Seeded synthetic image tasks, CIFAR-shaped (32x32 RGB), built from one family of image factors.

A class is a (shape, colour) pair drawn on a noisy, tinted background at a random position and
scale. The 8 shapes x 4 colours give 32 classes, split once into two disjoint tasks:

- ``target``: 10 classes, the offline stand-in for CIFAR-10;
- ``source``: the other 22 classes, used to pretrain a backbone offline.

Every target shape and colour also occurs in the source task (in other pairs), so features
learned on the source help on the target, as ImageNet features help on CIFAR-10.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .loaders import ImageArrayDataset, generated_splits

SHAPES = ("disk", "square", "diamond", "ring", "cross", "triangle", "crescent", "stripes")
COLOURS = {"red": (0.85, 0.15, 0.15), "green": (0.15, 0.75, 0.2), "blue": (0.2, 0.3, 0.9), "yellow": (0.9, 0.85, 0.1)}
ALL_CLASSES = [(s, c) for s in range(len(SHAPES)) for c in range(len(COLOURS))]
_TARGET_IDS = (0, 6, 9, 15, 16, 23, 26, 29, 31, 12)  # fixed: every shape and colour is also in the source
TASKS = {
    "target": [ALL_CLASSES[i] for i in _TARGET_IDS],
    "source": [c for i, c in enumerate(ALL_CLASSES) if i not in _TARGET_IDS],
}
CHUNK = 1000  # images drawn per seeded chunk: the first n images do not depend on the total size
IMAGE_SIZE = 32


def class_names(task: str) -> list[str]:
    """Return readable class names (``"red disk"``) of a synthetic task."""
    colour_names = list(COLOURS)
    return [f"{colour_names[c]} {SHAPES[s]}" for s, c in _task_classes(task)]


def _task_classes(task: str) -> list[tuple[int, int]]:
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {', '.join(TASKS)}")
    return TASKS[task]


def _shape_masks(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Return the boolean mask of each image's shape, from its centred, scaled coordinates u, v."""
    radius = torch.sqrt(u * u + v * v)
    candidates = torch.stack([
        radius <= 1.0,                                                     # disk
        torch.maximum(u.abs(), v.abs()) <= 0.8,                            # square
        u.abs() + v.abs() <= 1.0,                                          # diamond
        (radius <= 1.0) & (radius >= 0.55),                                # ring
        ((u.abs() <= 0.3) & (v.abs() <= 1.0)) | ((v.abs() <= 0.3) & (u.abs() <= 1.0)),  # cross
        (v <= 0.7) & (v >= 1.8 * u.abs() - 1.0),                          # triangle
        (radius <= 1.0) & ((u - 0.55) ** 2 + v * v > 0.55),               # crescent
        (torch.maximum(u.abs(), v.abs()) <= 0.9) & (torch.sin(u * 3.5 * math.pi) > 0),  # stripes
    ])  # (shapes, n, H, W)
    return candidates[shape, torch.arange(u.shape[0])]


def _render_chunk(labels: torch.Tensor, classes: list[tuple[int, int]], gen: torch.Generator) -> torch.Tensor:
    n, size = labels.numel(), IMAGE_SIZE
    table = torch.tensor(classes)
    shape, colour_id = table[labels, 0], table[labels, 1]

    def uniform(low: float, high: float, *shape_: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape_, generator=gen)

    centre = uniform(10.0, 22.0, n, 2)
    scale = uniform(6.0, 11.0, n)
    angle = uniform(-0.35, 0.35, n)
    axis = torch.arange(size, dtype=torch.float32) + 0.5
    dy = (axis.view(1, size, 1) - centre[:, 1].view(n, 1, 1)) / scale.view(n, 1, 1)
    dx = (axis.view(1, 1, size) - centre[:, 0].view(n, 1, 1)) / scale.view(n, 1, 1)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    mask = _shape_masks(shape, u, v).unsqueeze(1).float()  # (n, 1, H, W)

    palette = torch.tensor(list(COLOURS.values()))
    colour = (palette[colour_id] + 0.08 * torch.randn(n, 3, generator=gen)).view(n, 3, 1, 1)
    tint = uniform(0.15, 0.6, n, 1) + 0.12 * torch.randn(n, 3, generator=gen)
    gradient = uniform(-0.15, 0.15, n, 1, 1, 1) * (axis.view(1, 1, 1, size) / size - 0.5)
    background = tint.view(n, 3, 1, 1) + gradient
    image = background * (1 - mask) + colour * mask + 0.1 * torch.randn(n, 3, size, size, generator=gen)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def make_synthetic(task: str, n: int, seed: int = 0, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` images of a synthetic ``task`` (``target`` or ``source``).

    Returns ``(images, labels)``: uint8 array (n, 32, 32, 3) as CIFAR-10 stores it, and int64 labels.
    The same (task, seed, split) always gives the same images; a smaller ``n`` gives a prefix.
    """
    classes = _task_classes(task)
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n={n!r}: expected a positive number of images")
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected train or test")
    task_id, split_id = list(TASKS).index(task), ("train", "test").index(split)
    images = torch.empty(n, IMAGE_SIZE, IMAGE_SIZE, 3, dtype=torch.uint8)  # filled chunk by chunk: no second copy
    labels = torch.empty(n, dtype=torch.int64)
    for chunk in range(math.ceil(n / CHUNK)):
        gen = torch.Generator().manual_seed(((seed * 7919 + task_id) * 104729 + split_id) * 1_000_003 + chunk)
        start = chunk * CHUNK
        count = min(CHUNK, n - start)  # draw a whole chunk, keep a prefix: prefixes stay stable
        chunk_labels = torch.randint(len(classes), (CHUNK,), generator=gen)
        images[start:start + count] = _render_chunk(chunk_labels, classes, gen)[:count].permute(0, 2, 3, 1)
        labels[start:start + count] = chunk_labels[:count]
    return images.numpy(), labels.numpy()


SYNTHETIC_SIZES = {"train": 50_000, "test": 10_000}
"""The default sizes of the synthetic tasks' splits."""


def load_synthetic_arrays(task: str = "target", train_size: int = SYNTHETIC_SIZES["train"],
                          test_size: int = SYNTHETIC_SIZES["test"], seed: int = 0) -> dict[str, ImageArrayDataset]:
    """Generate a synthetic task (see :mod:`pystatsml_tl.data.synthetic`) as datasets keyed ``train`` and ``test``."""
    return generated_splits(lambda size, split: make_synthetic(task, size, seed=seed, split=split),
                             class_names(task), train_size, test_size)
