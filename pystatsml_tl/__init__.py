"""pystatsml-tl: transfer learning with PyTorch, taught with executable notebooks.

The notebooks import these helpers; they work on their own from Python too::

    from pystatsml_tl import load_data, make_model, train_val_model
"""
__version__ = "0.1.0"

from .data.datasets import DataLoaders, load_cifar10_pytorch, load_data
from .devices import resolve_device
from .errors import ResourceUnavailableError
from .models import count_parameters, freeze_backbone, make_model, unfreeze_backbone
from .pretraining import pretrain
from .runs.lr_finder import LRFinderResult, lr_find
from .runs.parameters import EXPERIMENTS, PARAMETERS, PROFILES, profile_parameters, validate_parameters
from .training.loop import best_epoch, evaluate, train_val_model

__all__ = [
    "EXPERIMENTS",
    "PARAMETERS",
    "PROFILES",
    "DataLoaders",
    "LRFinderResult",
    "ResourceUnavailableError",
    "best_epoch",
    "count_parameters",
    "evaluate",
    "freeze_backbone",
    "load_cifar10_pytorch",
    "load_data",
    "lr_find",
    "make_model",
    "pretrain",
    "profile_parameters",
    "resolve_device",
    "train_val_model",
    "unfreeze_backbone",
    "validate_parameters",
]
