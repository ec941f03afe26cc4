"""Checks a student runs after each key step of the lesson and each exercise: one line that says
the step is right, or an ``AssertionError`` whose one line says what is wrong. Every check reads
what it needs (the number of classes, the chance level) from the data set in use, so the checks
hold on the digits and on any image folder. In the student version each check is an autograded
test cell (nbgrader's metadata gives its points)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..backbones import get_head, head_name

PASS = "✓ "


def _ok(message: str) -> None:
    print(PASS + message)


def _trainable(model: nn.Module) -> set[int]:
    return {id(p) for p in model.parameters() if p.requires_grad}


def new_head(model: nn.Module, num_classes: int) -> None:
    """The last layer is a new ``nn.Linear`` with one output per class."""
    head = get_head(model)
    name = head_name(model)
    assert isinstance(head, nn.Linear), f"model.{name} is a {type(head).__name__}: replace it by an nn.Linear"
    assert head.out_features == num_classes, (
        f"model.{name} gives {head.out_features} scores, not {num_classes}: use nn.Linear(num_ftrs, D_out)")
    _ok(f"the new head maps {head.in_features} features to {num_classes} class scores")


def optimizer_trains(optimizer: torch.optim.Optimizer, parameters: Sequence[nn.Parameter] | nn.Module,
                     what: str, kind: str | None = None) -> None:
    """The optimizer (of class ``kind``, e.g. ``"SGD"``, when given) holds exactly ``parameters``
    (a module's, or a list), ``what`` naming them."""
    if kind is not None:
        assert type(optimizer).__name__ == kind, f"the optimizer is {type(optimizer).__name__}, not optim.{kind}"
    wanted = list(parameters.parameters()) if isinstance(parameters, nn.Module) else list(parameters)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing, extra = len({id(p) for p in wanted} - held), len(held - {id(p) for p in wanted})
    assert not missing and not extra, (f"the optimizer should train {what}: {missing} of its tensors are missing, "
                                       f"{extra} others are in it")
    _ok(f"the optimizer trains {what} ({sum(p.numel() for p in wanted):,} parameters)")


def only_head_trains(model: nn.Module) -> None:
    """Every parameter but the head's is frozen (``requires_grad`` False)."""
    head = {id(p) for p in get_head(model).parameters()}
    trainable = _trainable(model)
    assert trainable, "no parameter trains: the new head must keep requires_grad=True (make it after freezing)"
    assert head <= trainable, "the new head is frozen: create it after the requires_grad loop, or unfreeze it"
    outside = len(trainable - head)
    assert not outside, (f"{outside} tensors outside the head still train: set requires_grad = False on every "
                         "parameter of the pretrained network before replacing its last layer")
    _ok(f"only the head trains ({sum(p.numel() for p in get_head(model).parameters()):,} parameters)")


def every_layer_trains(model: nn.Module) -> None:
    """Every parameter trains (fine-tuning)."""
    frozen = sum(1 for p in model.parameters() if not p.requires_grad)
    assert not frozen, f"{frozen} tensors are frozen: fine-tuning trains every layer"
    _ok(f"every layer trains ({sum(p.numel() for p in model.parameters()):,} parameters)")


def only_blocks_train(model: nn.Module, blocks: Sequence[str]) -> None:
    """The parameters inside ``blocks`` (module paths, e.g. ``("layer4", "fc")``) train, no other."""
    prefixes = tuple(block + "." for block in blocks)
    wrong = [name for name, p in model.named_parameters() if p.requires_grad != name.startswith(prefixes)]
    assert not wrong, (f"{len(wrong)} tensors have the wrong requires_grad (first: {wrong[0]}): only "
                       f"{', '.join(blocks)} should train")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    _ok(f"only {', '.join(blocks)} train ({trainable:,} parameters)")


def trains_on_features(loaders: dict, num_features: int) -> None:
    """The head's training batches are feature vectors (``num_features`` each), not images."""
    x, _ = next(iter(loaders["train"]))
    assert x.ndim == 2 and x.shape[1] == num_features, (
        f"a training batch has shape {tuple(x.shape)}: the head should train on the frozen backbone's features "
        f"(batch, {num_features}); use cached_feature_loaders(model_conv, dataloaders, device=device)")
    _ok(f"the head trains on {num_features} features per image, computed once")


def batchnorm_kept(model: nn.Module, images: torch.Tensor) -> None:
    """A batch through ``model`` in train mode leaves every BatchNorm running mean as it was
    (measured on a copy by :func:`~pystatsml_tl.runs.insight.batchnorm_drift`)."""
    from ..runs.insight import batchnorm_drift

    moved = batchnorm_drift(model, images)
    assert moved == 0, (f"a batch in train mode moved a BatchNorm running mean by {moved:.4f}: the frozen backbone "
                        "must stay in eval mode (freeze_backbone does it)")
    _ok("the frozen backbone's BatchNorm statistics stay put in train mode")


def above_chance(accuracy: float, num_classes: int, what: str = "the test accuracy") -> None:
    """``accuracy`` (a fraction) is above chance, ``1 / num_classes``."""
    chance = 1 / num_classes
    assert accuracy > chance, (f"{what} is {100 * accuracy:.1f} %, not above chance ({100 * chance:.1f} %): "
                               "check the learning rate and what trains")
    _ok(f"{what} is {100 * accuracy:.1f} %, above chance ({100 * chance:.1f} %)")


def trained_above_chance(accuracies: dict[str, list[float]], num_classes: int) -> None:
    """The best selection accuracy of a training run (validation, else test) is above chance."""
    phase = "val" if "val" in accuracies else "test"
    above_chance(max(accuracies[phase]), num_classes, f"the best {'validation' if phase == 'val' else phase} "
                 "accuracy")


def drift_measured(loop_model: nn.Module, loop_drift: float, frozen_drift: float) -> None:
    """``loop_model`` is frozen by the tutorial's loop, which lets a batch move BatchNorm statistics
    (``loop_drift`` above zero); ``freeze_backbone`` does not (``frozen_drift`` zero)."""
    trainable = sum(1 for p in loop_model.parameters() if p.requires_grad)
    assert not trainable, f"{trainable} tensors of model_loop still train: set requires_grad = False on each"
    assert loop_drift > 0, "with the requires_grad loop alone a training batch should move a running mean: " \
                           "measure on a model frozen by the loop only, in train mode"
    assert frozen_drift == 0, f"freeze_backbone's model moved a running mean by {frozen_drift:.4f}: measure it on " \
                              "the model freeze_backbone returned"
    _ok(f"the loop alone lets a batch move a running mean by {loop_drift:.4f}; freeze_backbone by 0")


def paired_difference(first: Sequence, second: Sequence, differences: Sequence[float], low: float, high: float,
                      lr_first: float, lr_second: float) -> None:
    """Two settings run on the same seeds (results of ``run_experiment``: ``first`` at ``lr_first``,
    ``second`` at ``lr_second``), their differences of test accuracy seed by seed (second minus
    first), and ``(low, high)`` the 95 % t interval of the differences' mean."""
    from ..runs.statistics import t_interval

    assert len(first) == len(second) >= 2, f"{len(first)} and {len(second)} runs: run both settings on the same seeds"
    seeds = [r.params["seed"] for r in first]
    assert seeds == [r.params["seed"] for r in second] and len(set(seeds)) == len(seeds), (
        f"seeds {seeds} and {[r.params['seed'] for r in second]}: pair each seed once in both settings")
    for runs, lr, which in ((first, lr_first, "the first setting"), (second, lr_second, "the second setting")):
        rates = sorted({r.params["lr"] for r in runs})
        assert rates == [lr], f"{which} ran at lr {rates}, not {lr:g}"
    expected = [b.test.accuracy - a.test.accuracy for a, b in zip(first, second)]
    assert np.allclose(differences, expected), "differences: the second setting's test accuracy minus the first's, " \
                                               "seed by seed (fractions)"
    assert np.allclose((low, high), t_interval(expected), atol=1e-9), (
        f"({low:.4f}, {high:.4f}) is not the 95 % t interval of the differences' mean: use statistics.t_interval")
    _ok(f"{len(seeds)} paired seeds: mean difference {100 * np.mean(expected):+.1f} points, 95 % interval "
        f"{100 * low:+.1f} to {100 * high:+.1f}")
