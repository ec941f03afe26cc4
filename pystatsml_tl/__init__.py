"""pystatsml-tl: transfer learning with PyTorch, taught with executable notebooks.

The notebooks import these helpers; they work on their own from Python too::

    from pystatsml_tl import load_data, make_model, train_val_model

Each name is imported from its module when first used, so that reading the registries or
rebuilding a report does not load torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "DATASETS": ".data.registry",
    "EXPERIMENTS": ".runs.registry",
    "PARAMETERS": ".runs.parameters",
    "PROFILES": ".runs.parameters",
    "DataLoaders": ".data.datasets",
    "Dataset": ".data.registry",
    "Experiment": ".runs.registry",
    "LRFinderResult": ".runs.lr_finder",
    "Params": ".runs.parameters",
    "ResourceUnavailableError": ".errors",
    "best_epoch": ".training.loop",
    "count_parameters": ".models",
    "evaluate": ".training.loop",
    "freeze_backbone": ".models",
    "load_cifar10_pytorch": ".data.datasets",
    "load_data": ".data.datasets",
    "lr_find": ".runs.lr_finder",
    "make_model": ".models",
    "pretrain": ".pretraining",
    "profile_parameters": ".runs.parameters",
    "register_dataset": ".data.registry",
    "register_experiment": ".runs.registry",
    "resolve_device": ".devices",
    "train_val_model": ".training.loop",
    "unfreeze_backbone": ".models",
    "validate_parameters": ".runs.parameters",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted({*globals(), *_EXPORTS})
