"""The learning-rate range test (Smith 2017; fastai's ``lr_find``): train for a few hundred
batches while the rate grows exponentially, watch the smoothed loss, stop when it diverges.

The model and the optimizer come back exactly as they were (their state dicts are restored);
only the random number generator has moved on.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..devices import resolve_device
from ..precision import resolve_precision
from ..training.loop import train_step


@dataclass
class LRFinderResult:
    """What :func:`lr_find` tried: the rates, the smoothed losses, and a suggested rate."""

    lrs: list[float]
    losses: list[float]
    suggestion: float
    rule: str = "a tenth of the rate at the lowest smoothed loss"
    diverged: bool = False
    raw_losses: list[float] = field(default_factory=list)

    def plot(self, title: str = "Learning-rate range test"):
        """Smoothed loss against the rate (log scale), the suggestion marked; return the figure."""
        from .plots import plt

        fig, ax = plt.subplots(figsize=(7, 3.8))
        ax.plot(self.lrs, self.losses, color="tab:blue", label="smoothed loss")
        ax.axvline(self.suggestion, color="tab:red", linestyle="--",
                   label=f"suggested {self.suggestion:.2g} ({self.rule})")
        ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title=title)
        finite = [v for v in self.losses if math.isfinite(v)]
        if finite:
            ax.set_ylim(min(finite) - 0.05 * abs(min(finite)), min(max(finite), 3 * finite[0]) * 1.05)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


def _batches(loader):
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise ValueError("dataloaders['train']: the loader yielded no batch")


def lr_find(model: nn.Module, dataloaders: dict[str, Any], criterion: nn.Module | None = None,
            optimizer: torch.optim.Optimizer | None = None, *, start_lr: float = 1e-7, end_lr: float = 10.0,
            num_iter: int = 100, smoothing: float = 0.98, diverge: float = 4.0,
            device: str | torch.device = "auto", precision: str = "auto") -> LRFinderResult:
    """Run the learning-rate range test on ``dataloaders["train"]`` and suggest a rate.

    Over at most ``num_iter`` batches (cycling the loader if needed), every parameter group's rate
    grows geometrically from ``start_lr`` to ``end_lr``; the loss is smoothed by an exponential
    moving average (``smoothing``, bias-corrected) and the test stops once it exceeds ``diverge``
    times its lowest value. Suggested rate: a tenth of the rate at the lowest smoothed loss (fastai's
    "minimum" rule: the minimum itself is already too high to train at). ``optimizer`` defaults to
    SGD with momentum 0.9 over the trainable parameters. The model's and the optimizer's state
    dicts are restored afterwards. Parameter groups with different rates keep their ratios; the
    rates reported are those of the fastest group. ``precision``: as for
    :func:`~pystatsml_tl.training.loop.train_val_model`.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"start_lr={start_lr!r}, end_lr={end_lr!r}: expected 0 < start_lr < end_lr")
    if not isinstance(num_iter, int) or num_iter < 5:
        raise ValueError(f"num_iter={num_iter!r}: expected an integer >= 5")
    if "train" not in dataloaders:
        raise ValueError(f"dataloaders: expected a 'train' loader, got keys {sorted(dataloaders)}")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    criterion = criterion or nn.CrossEntropyLoss()
    optimizer = optimizer or torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=start_lr,
                                             momentum=0.9)
    model_state = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    ratio = (end_lr / start_lr) ** (1 / (num_iter - 1))
    top = max(group["lr"] for group in optimizer.param_groups)
    scales = [group["lr"] / top for group in optimizer.param_groups]  # discriminative groups keep their ratios
    lrs, losses, raw = [], [], []
    average, best, diverged = 0.0, math.inf, False
    model.to(device).train()
    try:
        for step, (x, y) in zip(range(num_iter), _batches(dataloaders["train"])):
            lr = start_lr * ratio**step
            for group, scale in zip(optimizer.param_groups, scales):
                group["lr"] = lr * scale
            loss, _, _ = train_step(model, x, y, criterion, optimizer, device, precision)
            value = loss.item()
            average = smoothing * average + (1 - smoothing) * value
            smoothed = average / (1 - smoothing ** (step + 1))
            lrs.append(lr)
            losses.append(smoothed)
            raw.append(value)
            best = min(best, smoothed)
            if not math.isfinite(smoothed) or smoothed > diverge * best:
                diverged = True
                break
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
        model.train(was_training)
    suggestion = lrs[int(np.nanargmin(losses))] / 10
    return LRFinderResult(lrs, losses, suggestion, diverged=diverged, raw_losses=raw)


def lr_find_experiment(params: dict[str, Any], num_iter: int = 100) -> LRFinderResult:
    """The range test for an experiment's parameters: its data, model and optimizer, the module its
    kind trains first (a frozen backbone's head on cached features), as
    :func:`~pystatsml_tl.runs.experiments.train_experiment` would train it."""
    from .experiments import build_model, prepare_data
    from .kinds import experiment_criterion, kind_of
    from .parameters import validate_parameters

    params = validate_parameters(params)
    kind = kind_of(params)
    data = prepare_data(params)
    model, loaders = kind.first_trained(params, data, build_model(params, data.num_classes))
    optimizer, _ = kind.build_optimizer(params, model)
    return lr_find(model, loaders, experiment_criterion(params), optimizer, num_iter=num_iter, device=params["device"],
                   precision=params["precision"])
