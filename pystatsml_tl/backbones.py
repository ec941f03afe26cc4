"""What the model factory, the recipes and offline pretraining share: torchvision's architecture
names, the names of weights, state-dict files, and where a model's classification layer is."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

NAMED_WEIGHTS = ("imagenet", "none", "synthetic")


def available_archs() -> list[str]:
    """Names of torchvision's classification models (``resnet18``, ``mobilenet_v3_small``, ...)."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def check_arch(arch: str) -> None:
    """Raise ``ValueError`` unless ``arch`` names a torchvision classification model."""
    if arch not in available_archs():
        raise ValueError(f"arch={arch!r}: expected a torchvision classification model such as resnet18, "
                         "resnet34, resnet50 or mobilenet_v3_small")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict saved with ``torch.save``; raise ``ValueError`` if the file holds anything else."""
    path = Path(path).expanduser()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean "not a state dict"
        reason = f"{type(error).__name__}: {error}"
        raise ValueError(f"weights={str(path)!r}: not a readable state dict ({reason})") from error
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights={str(path)!r}: expected a state dict (names -> tensors), got {type(state).__name__}")
    return state


def check_weights(weights: str) -> None:
    """Raise ``ValueError`` unless ``weights`` is a known name or an existing file."""
    if weights not in NAMED_WEIGHTS and not Path(weights).expanduser().is_file():
        raise ValueError(f"weights={weights!r}: expected imagenet, none, synthetic or the path of an existing "
                         "state dict file")


def head_name(model: nn.Module) -> str:
    """Return the qualified name of the model's classification layer (its last ``nn.Linear``)."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classification layer to replace")
    return names[-1]


def get_head(model: nn.Module) -> nn.Module:
    """Return the model's classification layer."""
    return model.get_submodule(head_name(model))


def set_head(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule called ``name`` (dotted) by ``module``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
