"""CIFAR-10 through torchvision's reader, in memory, with the package's offline message when it is missing."""
from __future__ import annotations

import os

from ..errors import ResourceUnavailableError
from ..storage import data_dir as resolve_data_dir
from .loaders import ImageArrayDataset

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def load_cifar10_arrays(root: str | os.PathLike | None = None, download: bool = True) -> dict[str, ImageArrayDataset]:
    """Load CIFAR-10 through ``torchvision.datasets.CIFAR10`` (downloading it on first use) as
    in-memory datasets keyed ``train`` and ``test``.

    Raises :class:`ResourceUnavailableError` with what to do when it is missing and cannot be downloaded.
    """
    from torchvision.datasets import CIFAR10

    root = resolve_data_dir(root)
    datasets = {}
    for split in ("train", "test"):
        try:
            raw = CIFAR10(root=str(root), train=split == "train", download=download)
        except OSError as error:  # urllib's URLError and socket errors are OSErrors
            raise ResourceUnavailableError(
                "The CIFAR-10 dataset", f"{root / CIFAR10.base_folder}",
                f"download {CIFAR10_URL} elsewhere and copy it into {root} (or extract it there), "
                f"or set data_dir (or $PYSTATSML_TL_DATA) to a folder that holds {CIFAR10.base_folder}.", error,
            ) from error
        datasets[split] = ImageArrayDataset.from_hwc(raw.data, raw.targets, raw.classes)
    return datasets
