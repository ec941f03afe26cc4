"""The training loop (``train_val_model``, with the tutorial's signature), evaluation and checkpoints."""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import one_of, positive_int
from ..devices import resolve_device
from ..distributed import is_main_process, sum_across_ranks
from ..precision import autocast, resolve_precision
from ..storage import torch_save_atomic

PHASE_ORDER = ("train", "val", "test")


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: epochs are reproducible on their own, so a resumed run matches."""
    return (seed * 1_000_003 + epoch) % (2**63 - 1)


def selection_phase(dataloaders: dict[str, Any]) -> str:
    """The phase whose accuracy picks the best epoch: ``val`` when present, else ``test`` (the tutorial's way)."""
    return "val" if "val" in dataloaders else "test"


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


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, criterion: nn.Module,
               optimizer: torch.optim.Optimizer, device: torch.device,
               precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch: move it to ``device`` (channels-last images), then
    ``optimizer.step(closure)``, the closure clearing the gradients, running the forward pass in
    ``precision`` (``fp32``, or ``bf16`` autocast), the loss and backward. SGD and Adam call it
    once; an optimizer that re-evaluates the loss (LBFGS) calls it as often as it needs. Returns
    (loss, outputs, targets on the device) of the closure's first call, before the step. The
    training loop and the learning-rate finder both train through it."""
    x, y = _to_device(x, y, device)
    first: list[tuple[torch.Tensor, torch.Tensor]] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss, outputs = _forward(model, x, y, criterion, device, precision)
        loss.backward()
        if not first:
            first.append((loss, outputs))
        return loss

    optimizer.step(closure)
    loss, outputs = first[0]
    return loss, outputs, y


def _forward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, criterion: nn.Module, device: torch.device,
             precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and outputs of a batch already on ``device``, the forward pass in ``precision``."""
    with autocast(device, precision):
        outputs = model(x)
        loss = criterion(outputs, y)
    return loss, outputs


def run_epoch(model: nn.Module, loader, criterion: nn.Module, device: torch.device, optimizer=None,
              batch_scheduler=None, progress: bool = False, desc: str = "",
              keep_predictions: bool = False, precision: str = "fp32") -> Evaluation:
    """One pass over ``loader``: trains (:func:`train_step`) when ``optimizer`` is given, stepping
    ``batch_scheduler``, if any, after every optimizer step; else evaluates without gradients.
    Returns the pass's mean loss and accuracy, with the predictions when ``keep_predictions``
    (else empty); the forward passes run in ``precision`` (``fp32`` or ``bf16``). Sums stay on the
    device: the host waits once per pass, not once per batch."""
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
            if training:
                loss, outputs, y = train_step(model, x, y, criterion, optimizer, device, precision)
                if batch_scheduler is not None:
                    batch_scheduler.step()
            else:
                x, y = _to_device(x, y, device)
                loss, outputs = _forward(model, x, y, criterion, device, precision)
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
    empty = torch.empty(0, dtype=torch.long)
    return Evaluation(loss_sum.item() / count, correct.item() / count,
                      torch.cat(predictions).cpu() if predictions else empty,
                      torch.cat(targets).cpu() if targets else empty)


def evaluate(model: nn.Module, loader, criterion: nn.Module | None = None, device: str | torch.device = "auto",
             progress: bool = False, precision: str = "auto") -> Evaluation:
    """Evaluate ``model`` on ``loader``: mean loss, accuracy (a fraction) and the predictions
    (``precision``: auto, fp32 or bf16, as for :func:`train_val_model`)."""
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    model.to(device)
    return run_epoch(model, loader, criterion or nn.CrossEntropyLoss(), device, progress=progress, desc="evaluate",
                     keep_predictions=True, precision=precision)


@dataclass
class BestWeights:
    """The selection rule, in one place: the weights of the epoch with the highest selection
    accuracy so far; a later epoch replaces them only when strictly better (so the first of equal
    epochs is kept, as :func:`best_epoch` reads it). One object may span several training stages."""

    accuracy: float
    state: dict[str, torch.Tensor]

    @classmethod
    def of(cls, model: nn.Module, accuracy: float = -1.0) -> BestWeights:
        """``model``'s current weights as the best so far, at ``accuracy`` (-1: none measured yet)."""
        return cls(accuracy, copy.deepcopy(model.state_dict()))

    def offer(self, accuracy: float, model: nn.Module) -> bool:
        """Keep ``model``'s weights if ``accuracy`` beats the best so far; return whether it did."""
        if accuracy > self.accuracy:
            self.accuracy, self.state = accuracy, copy.deepcopy(model.state_dict())
            return True
        return False


@dataclass
class TrainingState:
    """Where training stands after an epoch: the histories, the best weights so far, and the epoch
    to start from (what a checkpoint holds beside the model and optimizer)."""

    losses: dict[str, list[float]]
    accuracies: dict[str, list[float]]
    best: BestWeights
    next_epoch: int = 0

    @classmethod
    def start(cls, phases: list[str], model: nn.Module, best: BestWeights | None = None) -> TrainingState:
        """Nothing trained yet: empty histories; the best so far is ``best`` (an earlier stage's)
        or the model's weights as they are."""
        return cls({p: [] for p in phases}, {p: [] for p in phases}, best or BestWeights.of(model))

    def record(self, epoch: int, phase: str, result: Evaluation) -> None:
        """Append one phase's loss and accuracy; stop on a loss that is not finite."""
        if not math.isfinite(result.loss):
            raise FloatingPointError(f"the {phase} loss became {result.loss} at epoch {epoch}: lower the learning "
                                     "rate or check the inputs")
        self.losses[phase].append(result.loss)
        self.accuracies[phase].append(result.accuracy)

    def keep_if_best(self, select: str, model: nn.Module) -> None:
        """Offer this epoch's weights to the selection (:class:`BestWeights`)."""
        self.best.offer(self.accuracies[select][-1], model)


def save_checkpoint(path: str | os.PathLike, epoch: int, model: nn.Module, optimizer, scheduler,
                    state: TrainingState, seed: int | None) -> None:
    """Write everything needed to resume after ``epoch``, atomically."""
    torch_save_atomic({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict() if scheduler is not None else None,
                       "losses": state.losses, "accuracies": state.accuracies, "best_acc": state.best.accuracy,
                       "best_state": state.best.state, "seed": seed}, path)


def resume_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer, scheduler,
                      device: torch.device) -> tuple[TrainingState, int | None]:
    """Load a checkpoint of :func:`save_checkpoint` into the model, optimizer and scheduler; return
    the training state to go on from and the seed the run used."""
    saved = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None and saved["scheduler"] is not None:
        scheduler.load_state_dict(saved["scheduler"])
    return (TrainingState(saved["losses"], saved["accuracies"], BestWeights(saved["best_acc"], saved["best_state"]),
                          saved["epoch"] + 1), saved["seed"])


def _print_epoch(epoch: int, num_epochs: int, losses: dict, accuracies: dict) -> None:
    phases = "   ".join(f"{phase} loss {losses[phase][-1]:.3f} acc {100 * accuracies[phase][-1]:5.1f}%"
                         for phase in losses)
    print(f"epoch {epoch}/{num_epochs - 1}   {phases}")


SCHEDULER_INTERVALS = ("epoch", "batch")


def train_val_model(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer, dataloaders: dict,
                    num_epochs: int = 25, scheduler=None, log_interval: int | None = None, *,
                    device: str | torch.device = "auto", seed: int | None = None, progress: bool = True,
                    checkpoint: str | os.PathLike | None = None,
                    scheduler_interval: str = "epoch", precision: str = "auto",
                    best: BestWeights | None = None) -> tuple[nn.Module, dict, dict]:
    """Train ``model`` for ``num_epochs`` and return ``(model, losses, accuracies)``, the tutorial's way.

    ``losses`` and ``accuracies`` map each phase of ``dataloaders`` (``train``, ``val``, ``test``)
    to per-epoch Python floats (accuracies as fractions). The returned model holds the weights of
    the best epoch, picked on ``val`` when present (``test`` is then only recorded), else on
    ``test`` as in the tutorial. Every ``log_interval`` epochs (and the last) are printed, one line
    each; the last line says which epoch was kept.

    Keywords: ``device`` (auto = CUDA when present), ``seed`` (reseeds every epoch: same seed,
    same numbers on CPU), ``progress`` (tqdm bars), ``checkpoint`` (a file written atomically after
    every epoch by rank 0 of a data-parallel run; a run finds it and resumes from it),
    ``scheduler_interval`` (``"epoch"``, the lesson's StepLR, or ``"batch"``: stepped after every
    optimizer step, see :func:`~pystatsml_tl.training.recipes.scheduler_interval`), ``precision``
    (``fp32``; ``bf16``: forward passes under bfloat16 autocast, weights and optimizer state kept in
    fp32; ``auto``: :func:`~pystatsml_tl.precision.auto_precision`, bf16 on CUDA and on CPUs with
    AVX-512 BF16 and no AMX, else fp32). ``model`` may be wrapped in DistributedDataParallel: losses
    and accuracies are then summed over the ranks. A loss that becomes NaN or infinite stops
    training with ``FloatingPointError`` naming the epoch. ``best``: the best weights of an earlier
    stage of the same model (:class:`BestWeights`): an epoch of this one replaces them only when
    strictly better, and the model ends with whichever won.
    """
    positive_int("num_epochs", num_epochs)
    one_of(SCHEDULER_INTERVALS)("scheduler_interval", scheduler_interval)
    if "train" not in dataloaders:
        raise ValueError(f"dataloaders: expected a 'train' loader, got keys {sorted(dataloaders)}")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(device=device, memory_format=torch.channels_last)
    core = getattr(model, "module", model)  # the model inside DistributedDataParallel: its state has plain names
    phases = [p for p in PHASE_ORDER if p in dataloaders]
    select = selection_phase(dataloaders)
    state = TrainingState.start(phases, core, best)
    if checkpoint is not None and Path(checkpoint).is_file():
        state, seed = resume_checkpoint(checkpoint, core, optimizer, scheduler, device)
        if log_interval is not None:
            print(f"Resuming from {checkpoint} after epoch {state.next_epoch - 1}")
    batch_scheduler = scheduler if scheduler_interval == "batch" else None
    since = time.time()
    for epoch in range(state.next_epoch, num_epochs):
        if seed is not None:
            torch.manual_seed(epoch_seed(seed, epoch))
        for phase in phases:
            train = phase == "train"
            state.record(epoch, phase, run_epoch(model, dataloaders[phase], criterion, device,
                                                 optimizer if train else None,
                                                 batch_scheduler if train else None, progress,
                                                 desc=f"epoch {epoch} {phase}", precision=precision))
        if scheduler is not None and batch_scheduler is None:
            scheduler.step()
        state.keep_if_best(select, core)
        if log_interval is not None and (epoch % log_interval == 0 or epoch == num_epochs - 1):
            _print_epoch(epoch, num_epochs, state.losses, state.accuracies)
        if checkpoint is not None and is_main_process():
            save_checkpoint(checkpoint, epoch, core, optimizer, scheduler, state, seed)
    elapsed = time.time() - since
    if log_interval is not None:
        print(f"best {select} acc {100 * state.best.accuracy:.1f}% at epoch {best_epoch(state.accuracies)} "
              f"(trained in {elapsed // 60:.0f}m {elapsed % 60:.0f}s)")
    core.load_state_dict(state.best.state)
    return model, state.losses, state.accuracies


def best_epoch(accuracies: dict[str, list[float]]) -> int:
    """The epoch :func:`train_val_model` selected: the first with the highest selection accuracy."""
    history = accuracies[selection_phase(accuracies)]
    return max(range(len(history)), key=history.__getitem__)
