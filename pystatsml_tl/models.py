"""Model factory: a torchvision backbone by name, its weights, a new classification head, and
freezing as an explicit state of the model (:class:`Freezing`)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .backbones import check_arch, check_weights, get_head, head_name, read_state_dict, set_head
from .errors import ResourceUnavailableError
from .pretraining import pretrained_backbone_path

ALL = "all"
"""The ``trainable`` value of :func:`make_model` that trains every layer."""


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


HEAD = "head"
"""In ``trainable``, the name that stands for the model's classification layer, whatever its path."""


@dataclass(frozen=True)
class Freezing:
    """The freezing state of a model (``model.freezing``): the paths of the blocks that train (the
    head's among them) and of the frozen top-level blocks. Frozen parameters have
    ``requires_grad=False`` and frozen blocks are put in eval mode before every forward pass, so
    their BatchNorm statistics never move, whatever ``model.train()`` said."""

    trainable: tuple[str, ...]
    frozen: tuple[str, ...]
    head: str

    @property
    def only_head_trains(self) -> bool:
        """Whether everything but the classification layer is frozen (a fixed feature extractor,
        whose features can be computed once)."""
        return self.trainable == (self.head,)


def _set_frozen_to_eval(module: nn.Module, trainable: tuple[str, ...], prefix: str = "") -> None:
    """Put every submodule of ``module`` that is neither a trainable block nor on the path to one in eval mode."""
    for name, child in module.named_children():
        path = prefix + name
        if path in trainable:
            continue
        if any(block.startswith(path + ".") for block in trainable):
            _set_frozen_to_eval(child, trainable, path + ".")
        else:
            child.eval()


def _keep_frozen_in_eval(model: nn.Module, args: tuple) -> None:
    """Forward pre-hook of a frozen model: its frozen blocks run in eval mode."""
    freezing = getattr(model, "freezing", None)
    if freezing is not None and model.training:
        _set_frozen_to_eval(model, freezing.trainable)


def freeze(model: nn.Module, trainable: tuple[str, ...] = (HEAD,)) -> nn.Module:
    """Freeze every parameter outside the ``trainable`` blocks (module paths such as ``"layer4"``;
    ``"head"`` is the classification layer) and keep the frozen blocks in eval mode; record the
    state as ``model.freezing`` (a :class:`Freezing`). Returns ``model``."""
    head = head_name(model)
    paths = tuple(dict.fromkeys(head if block == HEAD else block for block in trainable))
    modules = dict(model.named_modules())
    for path in paths:
        if path not in modules:
            raise ValueError(f"trainable={trainable!r}: {path!r} is not a block of {type(model).__name__} "
                             f"(its top-level blocks: {', '.join(n for n, _ in model.named_children())})")
    for name, param in model.named_parameters():
        param.requires_grad = any(name.startswith(path + ".") for path in paths)
    frozen = tuple(name for name, _ in model.named_children()
                   if name not in paths and not any(path.startswith(name + ".") for path in paths))
    if _keep_frozen_in_eval not in model._forward_pre_hooks.values():
        model.register_forward_pre_hook(_keep_frozen_in_eval)
    model.freezing = Freezing(paths, frozen, head)
    if model.training:
        _set_frozen_to_eval(model, paths)
    return model


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Freeze every parameter but the classification layer's, and keep the frozen part in eval mode
    (its BatchNorm statistics never move): :func:`freeze` with only the head trainable."""
    return freeze(model, (HEAD,))


def unfreeze_backbone(model: nn.Module) -> nn.Module:
    """Undo :func:`freeze`: every parameter trains again and ``model.train()`` puts every layer,
    BatchNorm included, in train mode (its running statistics move again)."""
    for param in model.parameters():
        param.requires_grad = True
    model.freezing = None
    model.train(model.training)
    return model


def freezing_of(model: nn.Module) -> Freezing | None:
    """The freezing state of ``model`` (:func:`freeze`), or None when every layer trains."""
    return getattr(model, "freezing", None)


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
               trainable: str | tuple[str, ...] = ALL, *, seed: int | None = None, progress: bool = True) -> nn.Module:
    """Build a torchvision ``arch`` with ``weights`` (see :func:`pretrained_model`), its classifier
    replaced by a new ``nn.Linear(in_features, num_classes)``.

    ``trainable``: ``"all"`` (every layer trains) or the blocks that train, the rest frozen and in
    eval mode (:func:`freeze`): ``("head",)`` for a fixed feature extractor. ``seed`` seeds the
    random initialisation.
    """
    if trainable != ALL and not (isinstance(trainable, tuple) and trainable):
        raise ValueError(f"trainable={trainable!r}: expected 'all' or a tuple of block names such as ('head',)")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r}: expected an integer >= 2")
    if seed is not None:
        torch.manual_seed(seed)
    model = pretrained_model(arch, weights, progress=progress)
    name = head_name(model)
    set_head(model, name, nn.Linear(get_head(model).in_features, num_classes))
    if trainable != ALL:
        freeze(model, trainable)
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Return the number of trainable and total parameters."""
    return {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total": sum(p.numel() for p in model.parameters())}
