"""Real images offline: scikit-learn's handwritten digits, written as 32 px RGB like CIFAR-10.

scikit-learn ships 1797 scans of handwritten digits (8x8 pixels, 17 grey levels, 10 classes) in
its installed files: no network needed. Each scan is scaled to 0-255, enlarged to 32x32 with
bilinear interpolation and repeated over three channels. The split is fixed, not seeded: within
each digit, every third scan (in the order scikit-learn stores them) is a test image, so about
two thirds train and one third test, and every seed sees the same test set.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .loaders import ImageArrayDataset

DIGITS_SIZE = 32
DIGIT_CLASSES = [str(d) for d in range(10)]


def require_scikit_learn(purpose: str):
    """Import scikit-learn, or raise ``ImportError`` in one line naming what needs it and how to install it."""
    try:
        import sklearn
    except ImportError as error:
        raise ImportError(f"{purpose} needs scikit-learn: install it with `pip install scikit-learn`") from error
    return sklearn


@lru_cache(maxsize=2)
def digit_images(size: int = DIGITS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 RGB images (N, size, size, 3) and their labels (N,), made once
    per process (read-only arrays: the datasets copy them)."""
    require_scikit_learn("dataset='digits'")
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = (digits.images * (255 / 16)).clip(0, 255).astype(np.uint8)
    enlarged = np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR)) for image in grey])
    images, labels = np.repeat(enlarged[..., None], 3, axis=3), digits.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def digits_split(labels: np.ndarray) -> np.ndarray:
    """True for the test images: every third scan of each digit, in scikit-learn's order."""
    rank = np.zeros(len(labels), dtype=int)
    for digit in np.unique(labels):
        where = np.flatnonzero(labels == digit)
        rank[where] = np.arange(len(where))
    return rank % 3 == 2


def load_digits_arrays(size: int = DIGITS_SIZE) -> dict[str, ImageArrayDataset]:
    """The digits as in-memory datasets keyed ``train`` (1201 images) and ``test`` (596)."""
    images, labels = digit_images(size)
    is_test = digits_split(labels)
    return {split: ImageArrayDataset.from_hwc(images[mask], labels[mask].tolist(), DIGIT_CLASSES)
            for split, mask in (("train", ~is_test), ("test", is_test))}
