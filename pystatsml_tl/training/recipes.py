"""What practitioners add to the lesson: optimizers with weight decay, discriminative learning
rates over a backbone's blocks, and learning-rate schedules stepped where they are meant to be.

- :func:`parameter_blocks` cuts any torchvision classifier into blocks from the stem to the head;
  :func:`discriminative_groups` gives each block its own rate, shrinking towards the stem
  (ULMFiT's discriminative fine-tuning, fastai's ``slice`` of rates).
- :func:`make_optimizer` builds SGD or Adam over parameter groups;
- :func:`make_scheduler` builds the lesson's StepLR (stepped once per epoch) or a per-batch
  schedule (cosine, one-cycle, or step with a linear warm-up); :func:`scheduler_interval` says
  which, for :func:`~pystatsml_tl.training.loop.train_val_model`'s ``scheduler_interval``.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..backbones import get_head
from ..checks import below_epochs, one_of, rate_factor

OPTIMIZERS = ("sgd", "adam")
SCHEDULERS = ("step", "cosine", "onecycle")


def _parameters(module: nn.Module, excluded: set[int]) -> list[nn.Parameter]:
    return [p for p in module.parameters() if id(p) not in excluded]


def parameter_blocks(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The model's parameters cut into blocks, ordered from the stem to the classification layer.

    Blocks are the top-level children that hold parameters (ResNet: stem, layer1..layer4; VGG,
    MobileNet, EfficientNet: features, classifier); consecutive top-level leaf layers are one
    block (ResNet's conv1 and bn1: the stem). While there are fewer than three blocks besides the
    head, the largest is split into its own children (MobileNet's ``features`` into its stages).
    The classification layer is the last block, named ``head``.
    """
    head = get_head(model)
    head_ids = {id(p) for p in head.parameters()}
    blocks: list[tuple[str, list[nn.Module]]] = []
    leaves: list[tuple[str, nn.Module]] = []

    def flush() -> None:
        if leaves:
            blocks.append(("+".join(name for name, _ in leaves), [module for _, module in leaves]))
            leaves.clear()

    for name, child in model.named_children():
        if child is head or not _parameters(child, head_ids):
            continue
        if next(child.children(), None) is None:
            leaves.append((name, child))
        else:
            flush()
            blocks.append((name, [child]))
    flush()
    while len(blocks) < 3:
        sizes = [sum(p.numel() for m in modules for p in _parameters(m, head_ids)) for _, modules in blocks]
        index = max(range(len(blocks)), key=sizes.__getitem__)
        name, modules = blocks[index]
        parts = [(f"{name}.{child_name}", [child])
                 for module in modules for child_name, child in module.named_children()
                 if child is not head and _parameters(child, head_ids)]
        if len(modules) != 1 or len(parts) < 2:
            break
        blocks[index:index + 1] = parts
    result = [(name, [p for m in modules for p in _parameters(m, head_ids)]) for name, modules in blocks]
    return [*result, ("head", list(head.parameters()))]


def discriminative_groups(model: nn.Module, lr: float, lr_decay: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups, one per block of :func:`parameter_blocks`: the head trains at
    ``lr`` and each block closer to the stem at ``lr_decay`` times the rate of the block after it."""
    rate_factor("lr_decay", lr_decay)
    blocks = parameter_blocks(model)
    return [{"params": params, "lr": lr * lr_decay ** (len(blocks) - 1 - i), "name": name}
            for i, (name, params) in enumerate(blocks)]


def make_optimizer(name: str, groups: Iterable[dict[str, Any]] | Iterable[nn.Parameter], lr: float,
                   momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD (with ``momentum``) or Adam over parameters or parameter groups; ``weight_decay`` is
    torch's L2 penalty of either."""
    one_of(OPTIMIZERS)("optimizer", name)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int, steps_per_epoch: int,
                   step_size: int = 7, gamma: float = 0.1, warmup_epochs: int = 0):
    """The learning-rate schedule ``name`` over ``epochs`` of ``steps_per_epoch`` batches.

    ``step`` without warm-up is the lesson's ``StepLR(step_size, gamma)``, stepped once per epoch.
    Everything else is stepped after every batch (:func:`scheduler_interval` says which): ``cosine``
    anneals each group's rate to 0 over the steps after the warm-up; ``onecycle`` is torch's
    ``OneCycleLR`` with each group's rate as its peak (its rise lasts the warm-up when one is
    given, else 30 % of the steps); ``step`` with warm-up counts ``step_size`` in epochs of batches.
    A warm-up rises linearly from 1/(warm-up steps) of the rate to the full rate over ``warmup_epochs``.
    """
    check_schedule(name, epochs, warmup_epochs)
    schedulers = torch.optim.lr_scheduler
    if name == "step" and warmup_epochs == 0:
        return schedulers.StepLR(optimizer, step_size=step_size, gamma=gamma)
    total, warm = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    if name == "onecycle":
        scheduler = schedulers.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                          total_steps=total, pct_start=warm / total if warm else 0.3)
    else:
        main = (schedulers.CosineAnnealingLR(optimizer, T_max=total - warm) if name == "cosine"
                else schedulers.StepLR(optimizer, step_size=step_size * steps_per_epoch, gamma=gamma))
        scheduler = main if not warm else schedulers.SequentialLR(
            optimizer, [schedulers.LinearLR(optimizer, start_factor=1 / warm, total_iters=warm), main],
            milestones=[warm])
    return scheduler


def scheduler_interval(name: str, warmup_epochs: int = 0) -> str:
    """How often :func:`make_scheduler`'s schedule ``name`` is stepped: ``"epoch"`` (the lesson's
    StepLR) or ``"batch"`` (every other schedule); what ``train_val_model``'s ``scheduler_interval`` takes."""
    return "epoch" if name == "step" and warmup_epochs == 0 else "batch"


def check_scheduler(name: str) -> None:
    """Refuse an unknown schedule."""
    one_of(SCHEDULERS)("scheduler", name)


def check_schedule(name: str, epochs: int, warmup_epochs: int) -> None:
    """Refuse an unknown schedule or a warm-up that is not shorter than the training."""
    check_scheduler(name)
    below_epochs("warmup_epochs", warmup_epochs, epochs)
