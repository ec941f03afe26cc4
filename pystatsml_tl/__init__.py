"""pystatsml-tl: transfer learning with PyTorch, taught with executable notebooks.

The notebooks import these helpers; they work on their own from Python too::

    from pystatsml_tl import load_data, make_model, train_val_model
"""
__version__ = "0.1.0"

from .data.datasets import DataLoaders, load_cifar10_pytorch, load_data, resolve_device  # noqa: E402
from .errors import ResourceUnavailableError  # noqa: E402
from .models import count_parameters, freeze_backbone, make_model, unfreeze_backbone  # noqa: E402
from .pretraining import pretrain  # noqa: E402
from .runs.lr_finder import LRFinderResult, lr_find  # noqa: E402
from .runs.parameters import EXPERIMENTS, PARAMETERS, PROFILES, profile_parameters, validate_parameters  # noqa: E402
from .training.loop import best_epoch, evaluate, train_val_model  # noqa: E402

__all__ = [
    "DataLoaders", "EXPERIMENTS", "LRFinderResult", "PARAMETERS", "PROFILES", "ResourceUnavailableError",
    "best_epoch", "count_parameters", "evaluate", "freeze_backbone", "load_cifar10_pytorch", "load_data", "lr_find",
    "make_model", "pretrain", "profile_parameters", "resolve_device", "train_val_model", "unfreeze_backbone",
    "validate_parameters",
]
