"""The data-set registry and the checks of every data argument, written once.

A named data set is one :class:`Dataset` entry: its name, the function that loads its ``train``
and ``test`` images into memory, its classes, its images' native size and what a run needs
fetched before it can work offline. :func:`~pystatsml_tl.data.datasets.load_data` serves every
entry (and any image folder); the parameter table checks ``dataset`` with :func:`check_dataset`,
so both accept exactly the same names. This module imports no torch: the built-in loaders
import their modules when called.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import checks
from .normalization import check_normalize


@dataclass(frozen=True)
class LoadRequest:
    """What a data set's loader may use: where data sets are stored, the seed, and the subset
    sizes (a generated set renders only as many images as they keep)."""

    data_dir: str | None = None
    seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None


@dataclass(frozen=True)
class Dataset:
    """One named data set. ``load(request)`` returns ``{"train": ..., "test": ...}`` as
    :class:`~pystatsml_tl.data.loaders.ImageArrayDataset` (in memory); ``subsets_at_source``: the
    loader already kept only ``request``'s subset sizes; ``prefetch(data_dir)``, when given,
    fetches what the set needs before runs start (a download), raising the package's offline
    message when it cannot."""

    name: str
    load: Callable[[LoadRequest], dict[str, Any]]
    classes: int
    image_size: int
    description: str = ""
    subsets_at_source: bool = False
    prefetch: Callable[[str | None], None] | None = None


DATASETS: dict[str, Dataset] = {}
"""Every named data set, by name, in registration order."""


def register_dataset(entry: Dataset) -> Dataset:
    """Add ``entry`` to the registry and return it (a name that is an existing folder still means the entry)."""
    checks.expect(isinstance(entry.name, str) and entry.name and "/" not in entry.name, "name", entry.name,
                  "a data-set name without '/'")
    DATASETS[entry.name] = entry
    return entry


def check_dataset(name: str, value: Any) -> None:
    """A registered data set's name or the path of an existing image folder."""
    checks.expect(isinstance(value, str) and (value in DATASETS or Path(value).expanduser().is_dir()), name, value,
                  ", ".join(DATASETS) + " or an existing image folder")


DATA_CHECKS: dict[str, checks.Check] = {
    "dataset": check_dataset,
    "batch_size": checks.positive_int,
    "val_fraction": checks.interval(0, 1, "[)", noun="a fraction"),
    "train_subset": checks.positive_int_or_none,
    "test_subset": checks.positive_int_or_none,
    "image_size": checks.positive_int,
    "normalize": check_normalize,
    "num_workers": checks.non_negative_int,
}
"""The one check of each data argument: :func:`~pystatsml_tl.data.datasets.load_data` and the
parameter table both call these."""


def check_data_arguments(**arguments: Any) -> None:
    """Check each given data argument with its :data:`DATA_CHECKS` entry (``ValueError`` naming it)."""
    for name, value in arguments.items():
        DATA_CHECKS[name](name, value)


def _cifar10(request: LoadRequest) -> dict[str, Any]:
    from .cifar10 import load_cifar10_arrays

    return load_cifar10_arrays(request.data_dir)


def _prefetch_cifar10(data_dir: str | None) -> None:
    from .cifar10 import load_cifar10_arrays

    load_cifar10_arrays(data_dir)


def _digits(request: LoadRequest) -> dict[str, Any]:
    from .digits import load_digits_arrays

    return load_digits_arrays()


def _synthetic(task: str) -> Callable[[LoadRequest], dict[str, Any]]:
    def load(request: LoadRequest) -> dict[str, Any]:
        from .synthetic import SYNTHETIC_SIZES, load_synthetic_arrays

        # generating is the costly part: make only as many images as the subsets keep
        return load_synthetic_arrays(task, request.train_subset or SYNTHETIC_SIZES["train"],
                                     request.test_subset or SYNTHETIC_SIZES["test"], seed=request.seed)

    return load


def _fractals(request: LoadRequest) -> dict[str, Any]:
    from .formulas import FRACTAL_CLASSES, FRACTAL_SIZES, load_fractal_arrays

    return load_fractal_arrays(request.train_subset or FRACTAL_SIZES["train"],
                               request.test_subset or FRACTAL_SIZES["test"], seed=request.seed,
                               num_classes=FRACTAL_CLASSES)


for _entry in (
    Dataset("cifar10", _cifar10, 10, 32, "CIFAR-10, downloaded on first use into data_dir",
            prefetch=_prefetch_cifar10),
    Dataset("digits", _digits, 10, 8, "scikit-learn's handwritten digits as 32 px RGB (offline)"),
    Dataset("synthetic", _synthetic("target"), 10, 32, "the offline 10-class target task", subsets_at_source=True),
    Dataset("synthetic-source", _synthetic("source"), 22, 32, "the offline 22-class source task",
            subsets_at_source=True),
    Dataset("fractals", _fractals, 40, 32, "the formula-driven source task of the offline backbone",
            subsets_at_source=True),
):
    register_dataset(_entry)
