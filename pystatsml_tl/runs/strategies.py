"""How an experiment trains its model: the strategies behind the named experiments.

- ``finetune`` (and ``discriminative``, with per-block rates): every layer trains;
- ``extractor``: the backbone is frozen and in eval mode; the new head trains on features
  computed once (:mod:`pystatsml_tl.features`), or on the whole network when images are augmented;
- ``two-stage``: the head first, on the frozen backbone, then every layer at a lower rate.

:func:`fit` picks the strategy; it works the same in one process and in each worker of a
data-parallel run (the model is wrapped in DistributedDataParallel, batches are shared out).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.datasets import DataLoaders, resolve_device
from ..distributed import wrap
from ..features import FeatureCacheInfo, cached_feature_loaders
from ..models import get_head, is_frozen, unfreeze_backbone
from ..training.loop import selection_phase, train_val_model
from ..training.recipes import discriminative_groups, make_optimizer, make_scheduler
from .parameters import experiment_settings


def build_optimizer(params: dict[str, Any], model: nn.Module, epochs: int | None = None,
                    steps_per_epoch: int = 1, lr: float | None = None):
    """The experiment's optimizer over the trainable parameters (per-block groups for
    ``discriminative``) and its scheduler over ``epochs`` (default ``params["epochs"]``) of
    ``steps_per_epoch`` batches; ``lr`` overrides ``params["lr"]``."""
    settings = experiment_settings(params)
    lr = params["lr"] if lr is None else lr
    if settings["strategy"] == "discriminative":
        groups = discriminative_groups(model, lr, params["lr_decay"])
    else:
        groups = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(settings["optimizer"], groups, lr, params["momentum"], params["weight_decay"])
    scheduler = make_scheduler(optimizer, params["scheduler"], epochs or params["epochs"], steps_per_epoch,
                               params["step_size"], params["gamma"], params["warmup_epochs"])
    return optimizer, scheduler


def experiment_criterion(params: dict[str, Any]) -> nn.Module:
    """The experiment's loss: cross-entropy with its ``label_smoothing``."""
    return nn.CrossEntropyLoss(label_smoothing=params["label_smoothing"])


def use_feature_cache(params: dict[str, Any], model: nn.Module) -> bool:
    """True when the head can be trained on precomputed features: a frozen backbone, no augmentation."""
    return is_frozen(model) and not params["augment"]


def feature_loaders(params: dict[str, Any], data: DataLoaders, model: nn.Module) -> tuple[DataLoaders,
                                                                                         FeatureCacheInfo]:
    """Loaders over the frozen ``model``'s features of ``data`` (cached as ``params`` say), and the cache info."""
    description = {k: params[k] for k in ("arch", "weights", "dataset", "image_size", "normalize")}
    return cached_feature_loaders(model, data, description=description, cache=params["feature_cache"],
                                  device=resolve_device(params["device"]), progress=params["progress"],
                                  precision=params["precision"])


def test_target(params: dict[str, Any], data: DataLoaders, model: nn.Module):
    """What to test once trained: the head on cached features for a frozen extractor, else the
    whole model on ``data``. Returns (module, loaders)."""
    if use_feature_cache(params, model) and experiment_settings(params)["strategy"] != "two-stage":
        return get_head(model), feature_loaders(params, data, model)[0]
    return model, data


def _checkpoint(params: dict[str, Any], stage: str) -> Path | None:
    """Where a run keeps its per-epoch checkpoint (in its output folder), so that a killed run resumes."""
    return Path(params["output_dir"]) / f"checkpoint-{stage}.pt" if params["output_dir"] else None


def _train(params: dict[str, Any], module: nn.Module, loaders, epochs: int, criterion: nn.Module,
           log_interval: int | None, device: torch.device, stage: str, lr: float | None = None, seed_offset: int = 0):
    """Train ``module`` (wrapped in DDP inside a data-parallel run) with the experiment's optimizer
    and schedule on the train and val splits of ``loaders``; return the histories."""
    module.to(device=device, memory_format=torch.channels_last)
    loaders = loaders.training_loaders()  # the test split is used once, after training
    optimizer, scheduler = build_optimizer(params, module, epochs, len(loaders["train"]), lr)
    trained = wrap(module, device, params["sync_batchnorm"])
    _, losses, accuracies = train_val_model(trained, criterion, optimizer, loaders, epochs, scheduler, log_interval,
                                            device=device, seed=params["seed"] + seed_offset,
                                            progress=params["progress"], checkpoint=_checkpoint(params, stage))
    return losses, accuracies


def _train_head_on_features(params: dict[str, Any], data: DataLoaders, model: nn.Module, epochs: int,
                            criterion: nn.Module, log_interval: int | None, device: torch.device):
    """Train the new head of a frozen ``model`` on its cached features; return the feature
    loaders, the cache info and the histories."""
    loaders, cache_info = feature_loaders(params, data, model)
    losses, accuracies = _train(params, get_head(model), loaders, epochs, criterion, log_interval, device, "head")
    return loaders, cache_info, losses, accuracies


def _fine_tune(params: dict[str, Any], data: DataLoaders, model: nn.Module, epochs: int, criterion: nn.Module,
               log_interval: int | None, device: torch.device, lr: float | None = None, first_epoch: int = 0):
    """Train the whole ``model`` (only its trainable parameters move); return the histories.
    A second stage (``first_epoch`` > 0) draws other batch orders than the first."""
    return _train(params, model, data, epochs, criterion, log_interval, device,
                  "finetune" if not first_epoch else "stage2", lr, seed_offset=first_epoch * 7919)


def train_two_stage(params: dict[str, Any], data: DataLoaders, model: nn.Module, criterion: nn.Module,
                    log_interval: int | None, device: torch.device):
    """The two-stage recipe (Keras's transfer-learning guide, fastai's ``fine_tune``).

    Stage 1, ``freeze_epochs`` epochs: the backbone is frozen and in eval mode (BatchNorm uses
    and keeps its pretrained statistics; every backbone parameter and buffer stays bit-identical)
    and the new head trains on cached features. Stage 2, the remaining epochs: every layer is
    unfrozen and in train mode (BatchNorm normalises with batch statistics and updates its running
    ones) and the whole network fine-tunes at ``lr * unfreeze_lr_factor``. The kept weights are
    those of the best epoch over both stages. Returns (cache info, losses, accuracies).
    """
    stage1, cache_info = params["freeze_epochs"], None
    if use_feature_cache(params, model):
        _, cache_info, losses, accuracies = _train_head_on_features(params, data, model, stage1, criterion,
                                                                    log_interval, device)
    else:  # augmented images: the frozen backbone runs on every batch, only the head has gradients
        losses, accuracies = _fine_tune(params, data, model, stage1, criterion, log_interval, device)
    after_stage1 = copy.deepcopy(model.state_dict())
    unfreeze_backbone(model)
    losses2, accuracies2 = _fine_tune(params, data, model, params["epochs"] - stage1, criterion, log_interval,
                                      device, lr=params["lr"] * params["unfreeze_lr_factor"], first_epoch=stage1)
    select = selection_phase(accuracies)
    if max(accuracies[select]) >= max(accuracies2[select]):  # the head alone did better: keep it
        model.load_state_dict(after_stage1)
    for phase in losses:
        losses[phase] += losses2[phase]
        accuracies[phase] += accuracies2[phase]
    return cache_info, losses, accuracies


def fit(params: dict[str, Any], data: DataLoaders, model: nn.Module, log_interval: int | None = 1,
        device: torch.device | None = None):
    """Train ``model`` on ``data`` by the experiment's strategy. A frozen extractor without
    augmentation trains its head on features computed once (kept on disk unless ``feature_cache``
    is false); with augmentation it runs the whole network, and says so.

    Returns (feature-cache info or None, losses, accuracies, (the module to test, the loaders to
    test it on)): the head and the feature loaders for a cached extractor, else the model and ``data``.
    """
    device = device or resolve_device(params["device"])
    criterion = experiment_criterion(params)
    strategy = experiment_settings(params)["strategy"]
    if is_frozen(model) and params["augment"]:
        print("frozen backbone with augment=True: it runs on every batch (no feature cache)")
    if strategy == "two-stage":
        cache_info, losses, accuracies = train_two_stage(params, data, model, criterion, log_interval, device)
        return cache_info, losses, accuracies, (model, data)
    if use_feature_cache(params, model):
        loaders, cache_info, losses, accuracies = _train_head_on_features(params, data, model, params["epochs"],
                                                                          criterion, log_interval, device)
        return cache_info, losses, accuracies, (get_head(model), loaders)
    losses, accuracies = _fine_tune(params, data, model, params["epochs"], criterion, log_interval, device)
    return None, losses, accuracies, (model, data)


