"""The training loop (``train_val_model``, with the tutorial's signature), evaluation and checkpoints."""
from __future__ import annotations

import copy
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.datasets import resolve_device
from ..distributed import is_main_process, sum_across_ranks
from ..storage import torch_save_atomic

PHASE_ORDER = ("train", "val", "test")


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: epochs are reproducible on their own, so a resumed run matches."""
    return (seed * 1_000_003 + epoch) % (2**63 - 1)


def selection_phase(dataloaders: dict[str, Any]) -> str:
    """The phase whose accuracy picks the best epoch: ``val`` when present, else ``test`` (the tutorial's way)."""
    return "val" if "val" in dataloaders else "test"


def _autocast(device: torch.device):
    # bf16 autocast on CUDA only: on CPUs it gave no speed-up for ResNet18 at 32 px when measured
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def _to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.to(device, non_blocking=True)
    if x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


@dataclass
class Evaluation:
    """What :func:`evaluate` measures on one loader."""

    loss: float
    accuracy: float
    predictions: torch.Tensor
    targets: torch.Tensor


def _run_phase(model: nn.Module, loader, criterion: nn.Module, device: torch.device, optimizer=None,
               progress: bool = False, desc: str = "", keep_predictions: bool = False, batch_scheduler=None):
    """One pass over ``loader``; trains when ``optimizer`` is given (stepping ``batch_scheduler``,
    if any, after every optimizer step). Sums stay on the device: the host waits once per pass,
    not once per batch."""
    training = optimizer is not None
    model.train(training)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count, predictions, targets = 0, [], []
    # a bar beside the loop, not around it: tqdm.auto's wrapper calls iter() on the loader an extra time
    bar = tqdm(total=len(loader), desc=desc, disable=not progress, leave=False)
    with torch.set_grad_enabled(training), bar:
        for x, y in loader:
            bar.update()
            x, y = _to_device(x, y, device)
            with _autocast(device):
                outputs = model(x)
                loss = criterion(outputs, y)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if batch_scheduler is not None:
                    batch_scheduler.step()
            predicted = outputs.argmax(1)
            loss_sum += loss.detach().double() * y.shape[0]
            correct += (predicted == y).sum()
            count += y.shape[0]
            if keep_predictions:
                predictions.append(predicted.detach())
                targets.append(y)
    total = torch.tensor(count, device=device, dtype=torch.long)
    sum_across_ranks(loss_sum, correct, total)  # a data-parallel run: the whole epoch, not this rank's share
    count = int(total.item())
    if count == 0:
        raise ValueError(f"{desc or 'loader'}: the loader yielded no batch")
    loss_value, accuracy = loss_sum.item() / count, correct.item() / count
    if not keep_predictions:
        return loss_value, accuracy
    return Evaluation(loss_value, accuracy, torch.cat(predictions).cpu(), torch.cat(targets).cpu())


def evaluate(model: nn.Module, loader, criterion: nn.Module | None = None, device: str | torch.device = "auto",
             progress: bool = False) -> Evaluation:
    """Evaluate ``model`` on ``loader``: mean loss, accuracy (a fraction) and the predictions."""
    device = resolve_device(device)
    model.to(device)
    return _run_phase(model, loader, criterion or nn.CrossEntropyLoss(), device, progress=progress,
                      desc="evaluate", keep_predictions=True)


def _checkpoint_state(epoch, model, optimizer, scheduler, losses, accuracies, best, seed) -> dict[str, Any]:
    return {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "losses": losses, "accuracies": accuracies, "best_acc": best[0], "best_state": best[1], "seed": seed}


def _print_epoch(epoch: int, num_epochs: int, losses: dict, accuracies: dict) -> None:
    phases = "   ".join(f"{phase} loss {losses[phase][-1]:.3f} acc {100 * accuracies[phase][-1]:5.1f}%"
                         for phase in losses)
    print(f"epoch {epoch}/{num_epochs - 1}   {phases}")


def train_val_model(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer, dataloaders: dict,
                    num_epochs: int = 25, scheduler=None, log_interval: int | None = None, *,
                    device: str | torch.device = "auto", seed: int | None = None, progress: bool = True,
                    checkpoint: str | os.PathLike | None = None) -> tuple[nn.Module, dict, dict]:
    """Train ``model`` for ``num_epochs`` and return ``(model, losses, accuracies)``, the tutorial's way.

    ``losses`` and ``accuracies`` map each phase of ``dataloaders`` (``train``, ``val``, ``test``)
    to per-epoch Python floats (accuracies as fractions). The returned model holds the weights of
    the best epoch, picked on ``val`` when present (``test`` is then only recorded), else on
    ``test`` as in the tutorial. Every ``log_interval`` epochs (and the last) are printed.

    Keywords: ``device`` (auto = CUDA when present), ``seed`` (reseeds every epoch: same seed,
    same numbers on CPU), ``progress`` (tqdm bars), ``checkpoint`` (a file written atomically after
    every epoch by rank 0 of a data-parallel run; a run finds it and resumes from it). ``model``
    may be wrapped in DistributedDataParallel: losses and accuracies are then summed over the
    ranks. A log line is one epoch; the last line says which epoch was kept. ``scheduler`` is stepped once per epoch, or after every batch when its ``interval``
    attribute is ``"batch"`` (see :mod:`pystatsml_tl.training.recipes`). A loss that becomes NaN or
    infinite stops training with ``FloatingPointError`` naming the epoch.
    """
    if not isinstance(num_epochs, int) or num_epochs <= 0:
        raise ValueError(f"num_epochs={num_epochs!r}: expected a positive integer")
    if "train" not in dataloaders:
        raise ValueError(f"dataloaders: expected a 'train' loader, got keys {sorted(dataloaders)}")
    device = resolve_device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(device=device, memory_format=torch.channels_last)
    core = getattr(model, "module", model)  # the model inside DistributedDataParallel: its state has plain names
    phases = [p for p in PHASE_ORDER if p in dataloaders]
    select = selection_phase(dataloaders)
    losses: dict[str, list[float]] = {p: [] for p in phases}
    accuracies: dict[str, list[float]] = {p: [] for p in phases}
    best: tuple[float, dict] = (-1.0, copy.deepcopy(core.state_dict()))
    start_epoch = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        core.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        losses, accuracies, seed = state["losses"], state["accuracies"], state["seed"]
        best, start_epoch = (state["best_acc"], state["best_state"]), state["epoch"] + 1
        print(f"Resuming from {checkpoint} after epoch {state['epoch']}")
    batch_scheduler = scheduler if getattr(scheduler, "interval", "epoch") == "batch" else None
    since = time.time()
    for epoch in range(start_epoch, num_epochs):
        if seed is not None:
            torch.manual_seed(epoch_seed(seed, epoch))
        for phase in phases:
            train = phase == "train"
            loss, acc = _run_phase(model, dataloaders[phase], criterion, device, optimizer if train else None,
                                   progress, desc=f"epoch {epoch} {phase}",
                                   batch_scheduler=batch_scheduler if train else None)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the {phase} loss became {loss} at epoch {epoch}: lower the learning "
                                         "rate or check the inputs")
            losses[phase].append(loss)
            accuracies[phase].append(acc)
        if scheduler is not None and batch_scheduler is None:
            scheduler.step()
        if accuracies[select][-1] > best[0]:
            best = (accuracies[select][-1], copy.deepcopy(core.state_dict()))
        if log_interval is not None and (epoch % log_interval == 0 or epoch == num_epochs - 1):
            _print_epoch(epoch, num_epochs, losses, accuracies)
        if checkpoint is not None and is_main_process():
            torch_save_atomic(_checkpoint_state(epoch, core, optimizer, scheduler, losses, accuracies, best, seed),
                              checkpoint)
    elapsed = time.time() - since
    if log_interval is not None:
        print(f"best {select} acc {100 * best[0]:.1f}% at epoch {best_epoch(accuracies)} "
              f"(trained in {elapsed // 60:.0f}m {elapsed % 60:.0f}s)")
    core.load_state_dict(best[1])
    return model, losses, accuracies


def best_epoch(accuracies: dict[str, list[float]]) -> int:
    """The epoch :func:`train_val_model` selected: the first with the highest selection accuracy."""
    history = accuracies[selection_phase(accuracies)]
    return max(range(len(history)), key=history.__getitem__)
