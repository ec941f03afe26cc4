"""Experiment kinds: how an experiment prepares, trains and tests its model. One class per kind,
one registry (:data:`KINDS`); each entry of the experiment registry
(:data:`~pystatsml_tl.runs.registry.EXPERIMENTS`) names its kind.

- ``finetune``: every layer trains; ``discriminative``: the same, with a rate per block;
- ``extractor``: the backbone is frozen and in eval mode; the new head trains on features
  computed once (:mod:`pystatsml_tl.features`), or on the whole network when images are augmented;
- ``two-stage``: the head first, on the frozen backbone, then every layer at a lower rate.

These are the lesson's steps (the teaching notebook writes them out): freeze or not, the optimizer
over what trains, the scheduler, ``train_val_model``. A kind works the same in one process and in
each worker of a data-parallel run (the model wrapped in DistributedDataParallel, batches shared
out). A new kind is one class and one :func:`register_kind`; a new experiment one
:func:`~pystatsml_tl.runs.registry.register_experiment`.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..checks import expect
from ..data.datasets import DataLoaders
from ..devices import resolve_device
from ..distributed import wrap
from ..features import FeatureCacheInfo, cached_feature_loaders
from ..models import freezing_of, get_head, unfreeze_backbone
from ..training.loop import BestWeights, selection_phase, train_val_model
from ..training.recipes import discriminative_groups, make_optimizer, make_scheduler, scheduler_interval
from .registry import experiment

logger = logging.getLogger(__name__)

SECOND_STAGE_SEED_OFFSET = 7919
"""A second training stage reseeds its epochs with this offset, so that its batch orders differ from the first's."""


@dataclass(frozen=True)
class Training:
    """What every training stage of an experiment needs, given once: its parameters, its loss,
    how often to print an epoch (None: never) and the device."""

    params: dict[str, Any]
    criterion: nn.Module
    log_interval: int | None
    device: torch.device


@dataclass
class FitResult:
    """What a kind's :meth:`~ExperimentKind.fit` returns: the histories, the module to test and the
    loaders to test it on (the head and the feature loaders of a cached extractor), and the
    feature cache's info when features were cached."""

    losses: dict[str, list[float]]
    accuracies: dict[str, list[float]]
    tested: nn.Module
    test_loaders: DataLoaders
    feature_cache: FeatureCacheInfo | None = None


def experiment_criterion(params: dict[str, Any]) -> nn.Module:
    """The experiment's loss: cross-entropy with its ``label_smoothing``."""
    return nn.CrossEntropyLoss(label_smoothing=params["label_smoothing"])


def uses_feature_cache(params: Mapping[str, Any], model: nn.Module) -> bool:
    """True when the head can be trained on precomputed features: only the head trains (the
    model's :class:`~pystatsml_tl.models.Freezing` says so), no augmentation."""
    freezing = freezing_of(model)
    return freezing is not None and freezing.only_head_trains and not params["augment"]


def feature_loaders(params: dict[str, Any], data: DataLoaders, model: nn.Module) -> tuple[DataLoaders,
                                                                                         FeatureCacheInfo]:
    """Loaders over the frozen ``model``'s features of ``data`` (cached as ``params`` say), and the cache info."""
    description = {k: params[k] for k in ("arch", "weights", "dataset", "image_size", "normalize")}
    return cached_feature_loaders(model, data, description=description, cache=params["feature_cache"],
                                  device=resolve_device(params["device"]), progress=params["progress"],
                                  precision=params["precision"])


def _checkpoint(params: dict[str, Any], stage: str) -> Path | None:
    """Where a run keeps its per-epoch checkpoint (in its output folder), so that a killed run resumes."""
    return Path(params["output_dir"]) / f"checkpoint-{stage}.pt" if params["output_dir"] else None


def train_stage(kind: ExperimentKind, training: Training, module: nn.Module, loaders: DataLoaders, epochs: int,
                stage: str, lr: float | None = None, seed_offset: int = 0, best: BestWeights | None = None):
    """One training stage: ``module`` (wrapped in DDP inside a data-parallel run) trained by the
    kind's optimizer and schedule on the train and val splits of ``loaders`` for ``epochs``, its
    checkpoint named after ``stage``, its epochs reseeded from the seed plus ``seed_offset``;
    ``best``: an earlier stage's best weights of the same module, which its epochs must beat.
    Returns the histories (losses, accuracies)."""
    params, device = training.params, training.device
    module.to(device=device, memory_format=torch.channels_last)
    loaders = loaders.training_loaders()  # the test split is used once, after training
    optimizer, scheduler = kind.build_optimizer(params, module, epochs, len(loaders["train"]), lr)
    trained = wrap(module, device, params["sync_batchnorm"])
    _, losses, accuracies = train_val_model(
        trained, training.criterion, optimizer, loaders, epochs, scheduler, training.log_interval, device=device,
        seed=params["seed"] + seed_offset, progress=params["progress"], checkpoint=_checkpoint(params, stage),
        scheduler_interval=scheduler_interval(params["scheduler"], params["warmup_epochs"]),
        precision=params["precision"], best=best)
    return losses, accuracies


class ExperimentKind:
    """How one kind of experiment prepares, trains and tests its model; subclasses override what differs."""

    name: ClassVar[str] = ""

    def check(self, params: dict[str, Any]) -> None:
        """Relations between parameters that this kind needs (raise ``ValueError``); none by default."""

    def parameter_groups(self, params: dict[str, Any], model: nn.Module, lr: float) -> list:
        """What the optimizer trains: the trainable parameters, one group."""
        return [p for p in model.parameters() if p.requires_grad]

    def make_optimizer(self, params: dict[str, Any], groups: list, lr: float) -> torch.optim.Optimizer:
        """The experiment's optimizer (SGD or Adam, as the experiment table says) over ``groups``."""
        return make_optimizer(experiment(params["experiment"]).optimizer, groups, lr, params["momentum"],
                              params["weight_decay"])

    def build_optimizer(self, params: dict[str, Any], model: nn.Module, epochs: int | None = None,
                        steps_per_epoch: int = 1, lr: float | None = None):
        """The optimizer over what trains and its scheduler over ``epochs`` (default
        ``params["epochs"]``) of ``steps_per_epoch`` batches; ``lr`` overrides ``params["lr"]``."""
        lr = params["lr"] if lr is None else lr
        optimizer = self.make_optimizer(params, self.parameter_groups(params, model, lr), lr)
        scheduler = make_scheduler(optimizer, params["scheduler"], epochs or params["epochs"], steps_per_epoch,
                                   params["step_size"], params["gamma"], params["warmup_epochs"])
        return optimizer, scheduler

    def first_trained(self, params: dict[str, Any], data: DataLoaders, model: nn.Module) -> tuple[nn.Module,
                                                                                                 DataLoaders]:
        """The module the kind trains first and the loaders it trains on (what the learning-rate
        finder searches a rate for): the whole model on ``data``."""
        return model, data

    def fit(self, training: Training, data: DataLoaders, model: nn.Module) -> FitResult:
        """Train ``model`` on ``data``; the whole model, tested on ``data``."""
        losses, accuracies = train_stage(self, training, model, data, training.params["epochs"], "finetune")
        return FitResult(losses, accuracies, model, data)

    def test_target(self, params: dict[str, Any], data: DataLoaders, model: nn.Module) -> tuple[nn.Module,
                                                                                               DataLoaders]:
        """What to test once the weights are in ``model`` (a data-parallel run's): the module and
        loaders holding the ``test`` split."""
        return model, data


class FineTune(ExperimentKind):
    """Every layer trains, with one rate."""

    name = "finetune"


class Discriminative(FineTune):
    """Every layer trains, each block towards the stem at ``lr_decay`` times the rate of the next."""

    name = "discriminative"

    def parameter_groups(self, params: dict[str, Any], model: nn.Module, lr: float) -> list:
        """One group per block, the rates shrinking from the head to the stem."""
        return discriminative_groups(model, lr, params["lr_decay"])


class Extractor(ExperimentKind):
    """The backbone frozen and in eval mode; only the new head trains, on features computed once
    (or, with augmented images, on the whole network run on every batch)."""

    name = "extractor"

    def first_trained(self, params, data, model):
        """The head on the cached features (or the frozen model on the images, when augmented)."""
        if uses_feature_cache(params, model):
            return get_head(model), feature_loaders(params, data, model)[0]
        return model, data

    def fit(self, training: Training, data: DataLoaders, model: nn.Module) -> FitResult:
        """Train the head; test the head on the test split's features."""
        return self.fit_head(training, data, model, training.params["epochs"])

    def fit_head(self, training: Training, data: DataLoaders, model: nn.Module, epochs: int) -> FitResult:
        """Train the head for ``epochs`` on cached features (on the whole frozen model with
        augmented images)."""
        if not uses_feature_cache(training.params, model):
            logger.info("frozen backbone with augment=True: it runs on every batch (no feature cache)")
            losses, accuracies = train_stage(self, training, model, data, epochs, "finetune")
            return FitResult(losses, accuracies, model, data)
        loaders, cache_info = feature_loaders(training.params, data, model)
        losses, accuracies = train_stage(self, training, get_head(model), loaders, epochs, "head")
        return FitResult(losses, accuracies, get_head(model), loaders, cache_info)

    def test_target(self, params, data, model):
        """The head on the test split's features (only the test images go through the backbone)."""
        if uses_feature_cache(params, model):
            test_only = DataLoaders({"test": data["test"]}, data.classes, data.name, data.fingerprint)
            return get_head(model), feature_loaders(params, test_only, model)[0]
        return model, data


class TwoStage(Extractor):
    """The two-stage recipe (Keras's transfer-learning guide, fastai's ``fine_tune``).

    Stage 1, ``freeze_epochs`` epochs: the backbone is frozen and in eval mode (BatchNorm uses and
    keeps its pretrained statistics; every backbone parameter and buffer stays bit-identical) and
    the new head trains on cached features. Stage 2, the remaining epochs: every layer is unfrozen
    and in train mode and the whole network fine-tunes at ``lr * unfreeze_lr_factor``. The kept
    weights are those of the best epoch over both stages; the whole model is tested.
    """

    name = "two-stage"

    def check(self, params: dict[str, Any]) -> None:
        """Both stages get at least one epoch."""
        expect(1 <= params["freeze_epochs"] < params["epochs"], "freeze_epochs", params["freeze_epochs"],
               f"an integer in [1, epochs={params['epochs']}) for two-stage")

    def fit(self, training: Training, data: DataLoaders, model: nn.Module) -> FitResult:
        """Stage 1 as the extractor trains, then stage 2 on the unfrozen model."""
        params, stage1 = training.params, training.params["freeze_epochs"]
        first = self.fit_head(training, data, model, stage1)
        best = BestWeights.of(model, max(first.accuracies[selection_phase(first.accuracies)]))
        unfreeze_backbone(model)
        losses2, accuracies2 = train_stage(self, training, model, data, params["epochs"] - stage1, "stage2",
                                           lr=params["lr"] * params["unfreeze_lr_factor"],
                                           seed_offset=SECOND_STAGE_SEED_OFFSET * stage1, best=best)
        losses = {phase: first.losses[phase] + losses2[phase] for phase in first.losses}
        accuracies = {phase: first.accuracies[phase] + accuracies2[phase] for phase in first.accuracies}
        return FitResult(losses, accuracies, model, data, first.feature_cache)

    def test_target(self, params, data, model):
        """The whole model on the images."""
        return model, data


KINDS: dict[str, ExperimentKind] = {}
"""Every experiment kind, by name."""


def register_kind(kind: ExperimentKind) -> ExperimentKind:
    """Add ``kind`` to the registry under its name; return it."""
    KINDS[kind.name] = kind
    return kind


for _kind in (FineTune(), Discriminative(), Extractor(), TwoStage()):
    register_kind(_kind)


def kind_of(params: Mapping[str, Any]) -> ExperimentKind:
    """The kind of the experiment ``params`` name; ``ValueError`` when that kind is not registered."""
    entry = experiment(params["experiment"])
    expect(entry.kind in KINDS, "experiment", entry.name, f"an experiment whose kind is registered (its kind "
           f"{entry.kind!r} is not among {', '.join(KINDS)}: register_kind it first)")
    return KINDS[entry.kind]
