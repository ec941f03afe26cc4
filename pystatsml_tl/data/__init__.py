"""Images in, batches out: CIFAR-10, image folders, the synthetic tasks and the formula-driven
fractals (``datasets``), the in-memory loaders (``loaders``) and the two generators
(``synthetic``, ``formulas``). :func:`load_data` is the entry point."""
from ..devices import resolve_device
from .datasets import DataLoaders, load_cifar10_pytorch, load_data

__all__ = ["DataLoaders", "load_cifar10_pytorch", "load_data", "resolve_device"]
