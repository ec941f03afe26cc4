"""Model factory: a torchvision backbone by name, its weights, a new classification head, freezing."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import MethodType

import torch
from torch import nn

from .backbones import check_arch, check_weights, get_head, head_name, read_state_dict, set_head
from .errors import ResourceUnavailableError
from .pretraining import pretrained_backbone_path

STRATEGIES = ("finetune", "extractor")


def _imagenet_unavailable(arch: str, weights, error: OSError) -> ResourceUnavailableError:
    filename = os.path.basename(weights.url)
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    return ResourceUnavailableError(
        f"The ImageNet weights of {arch} ({filename})", str(checkpoints / filename),
        f"download {weights.url} elsewhere and copy it to {checkpoints}/ (or set $TORCH_HOME).", error)


def fetch_imagenet_weights(arch: str, progress: bool = False) -> None:
    """Make sure torchvision's default ImageNet weights of ``arch`` are in its cache (download them if not)."""
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        weights.get_state_dict(progress=progress, check_hash=True)
    except OSError as error:  # urllib's URLError and socket errors are OSErrors
        raise _imagenet_unavailable(arch, weights, error) from error


def _imagenet_model(arch: str, progress: bool) -> nn.Module:
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        return torchvision.models.get_model(arch, weights=weights, progress=progress)
    except OSError as error:  # urllib's URLError and socket errors are OSErrors
        raise _imagenet_unavailable(arch, weights, error) from error


def load_backbone_weights(model: nn.Module, path: str | os.PathLike, arch: str) -> None:
    """Load a saved backbone into ``model``, ignoring its classification layer.

    Refuses (``ValueError``) a file made for another arch: by its JSON card when it has one
    (``<file>.json``), and in any case when the tensors' names or shapes do not fit.
    """
    path = Path(path).expanduser()
    card_path = path.with_suffix(".json")
    if card_path.is_file():
        card_arch = json.loads(card_path.read_text()).get("arch")
        if card_arch not in (None, arch):
            raise ValueError(f"weights={str(path)!r}: pretrained for arch={card_arch!r}, not arch={arch!r}")
    state = read_state_dict(path)
    head = head_name(model) + "."
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    given = {k: v for k, v in state.items() if not k.startswith(head)}
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(given) if expected[k].shape != given[k].shape)
    if missing or unexpected or misshapen:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", misshapen)) if keys)
        raise ValueError(f"weights={str(path)!r}: does not fit arch={arch!r} ({detail})")
    model.load_state_dict(given, strict=False)


def _train_keeping_backbone_frozen(self: nn.Module, mode: bool = True) -> nn.Module:
    type(self).train(self, mode)
    _set_frozen_to_eval(self, self.head_name)
    return self


def _set_frozen_to_eval(module: nn.Module, head: str) -> None:
    """Put every submodule of ``module`` outside the path to ``head`` in eval mode."""
    first, _, rest = head.partition(".")
    for name, child in module.named_children():
        if name != first:
            child.eval()
        elif rest:
            _set_frozen_to_eval(child, rest)


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Freeze every parameter but the classification layer's, and keep the frozen part in eval mode
    even when ``model.train()`` is called, so that its BatchNorm statistics never move."""
    model.head_name = head_name(model)
    head_params = {id(p) for p in get_head(model).parameters()}
    for param in model.parameters():
        param.requires_grad = id(param) in head_params
    model.train = MethodType(_train_keeping_backbone_frozen, model)
    model.train(model.training)
    return model


def unfreeze_backbone(model: nn.Module) -> nn.Module:
    """Undo :func:`freeze_backbone`: every parameter trains again and ``model.train()`` puts every
    layer, BatchNorm included, in train mode (its running statistics move again)."""
    for param in model.parameters():
        param.requires_grad = True
    vars(model).pop("train", None)
    vars(model).pop("head_name", None)
    return model


def is_frozen(model: nn.Module) -> bool:
    """True if ``model`` was made by :func:`freeze_backbone` (a fixed feature extractor)."""
    return isinstance(getattr(model, "head_name", None), str) and "train" in vars(model)


def pretrained_model(arch: str = "resnet18", weights: str = "imagenet", *, progress: bool = True) -> nn.Module:
    """A torchvision ``arch`` with ``weights``, its own classification layer kept (1000 ImageNet classes).

    ``weights``: ``imagenet`` (torchvision's default weights, through its cache and download, as
    ``resnet18(weights=ResNet18_Weights.DEFAULT)``), ``none`` (random init), ``synthetic`` (the
    offline backbone pretrained on formula-drawn images, shipped with the package) or the path of a saved
    state dict. Seed torch first for a reproducible random init.
    """
    check_arch(arch)
    check_weights(weights)
    import torchvision

    if weights == "imagenet":
        return _imagenet_model(arch, progress)
    model = torchvision.models.get_model(arch, weights=None)
    if weights != "none":
        path = pretrained_backbone_path(arch, progress=progress) if weights == "synthetic" else weights
        load_backbone_weights(model, path, arch)
    return model


def make_model(arch: str = "resnet18", weights: str = "imagenet", num_classes: int = 10,
               strategy: str = "finetune", *, seed: int | None = None, progress: bool = True) -> nn.Module:
    """Build a torchvision ``arch`` with ``weights`` (see :func:`pretrained_model`), its classifier
    replaced by a new ``nn.Linear(in_features, num_classes)``.

    ``strategy``: ``finetune`` (every layer trains) or ``extractor`` (only the new layer trains;
    the rest is frozen and stays in eval mode). ``seed`` seeds the random initialisation.
    """
    check_arch(arch)
    check_weights(weights)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r}: expected an integer >= 2")
    if seed is not None:
        torch.manual_seed(seed)
    model = pretrained_model(arch, weights, progress=progress)
    name = head_name(model)
    set_head(model, name, nn.Linear(get_head(model).in_features, num_classes))
    if strategy == "extractor":
        freeze_backbone(model)
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Return the number of trainable and total parameters."""
    return {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total": sum(p.numel() for p in model.parameters())}
