"""Why transfer works, measured: linear probes and 2-D projections of frozen features, the first
layer's filters, the lesson's comparison table and the data-efficiency curve.

scikit-learn does the probes and projections (logistic regression, PCA), as in the course's
other notebooks.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.datasets import DataLoaders
from ..data.digits import require_scikit_learn
from ..features import extract_features
from ..models import count_parameters
from ..training.loop import Evaluation, best_epoch, selection_phase
from .experiments import run_experiment
from .registry import EXPERIMENTS
from .statistics import bounded_interval, wilson_interval


def linear_probe_accuracy(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                          seed: int = 0) -> float:
    """Test accuracy (fraction) of a logistic regression fitted on standardised ``train``
    features: how linearly separable the classes are in that feature space."""
    require_scikit_learn("linear_probe_accuracy")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(train[0].numpy(), train[1].numpy())
    return float(probe.score(test[0].numpy(), test[1].numpy()))


def feature_projection(model: nn.Module, data: DataLoaders, device: str | torch.device = "auto",
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """The frozen features of ``model`` (its layers up to the classification layer, in eval mode)
    for the test images, projected to 2-D by PCA fitted on the training images' features, with the
    test labels and the linear-probe accuracy (:func:`linear_probe_accuracy`)."""
    require_scikit_learn("feature_projection")
    from sklearn.decomposition import PCA

    train = extract_features(model, data["train"], device)
    test = extract_features(model, data["test"], device)
    pca = PCA(n_components=2, random_state=seed).fit(train[0].numpy())
    return pca.transform(test[0].numpy()), test[1].numpy(), linear_probe_accuracy(train, test, seed)


def first_conv_weight(model: nn.Module) -> np.ndarray:
    """The weight of the first convolution of ``model`` (out, in, k, k), as a NumPy copy."""
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return conv.weight.detach().cpu().float().numpy().copy()


def filter_smoothness(weight: np.ndarray) -> float:
    """How smooth a layer's filters are (``weight`` (out, in, k, k)): the correlation between
    neighbouring weights of each filter, pooled over the layer, after removing each filter's mean.
    About 0 for random filters; edges and blobs, as learned from images, score well above it."""
    w = np.asarray(weight, dtype=float)
    w = w - w.mean(axis=(2, 3), keepdims=True)
    pairs = ((w[:, :, 1:, :], w[:, :, :-1, :]), (w[:, :, :, 1:], w[:, :, :, :-1]))
    products = sum(float((a * b).sum()) for a, b in pairs)
    squares = sum(0.5 * float((a * a).sum() + (b * b).sum()) for a, b in pairs)
    return products / squares


def relative_change(before: np.ndarray, after: np.ndarray) -> float:
    """How far training moved a weight tensor: ``|after - before| / |before|`` (Frobenius norms)."""
    return float(np.linalg.norm(np.asarray(after) - np.asarray(before)) / np.linalg.norm(before))


def trainable_parameters(model: nn.Module) -> int:
    """How many parameters of ``model`` the optimizer can change (``requires_grad``)."""
    return count_parameters(model)["trainable"]


def comparison_row(name: str, trainable: int, accuracies: dict[str, list[float]], test: Evaluation) -> dict[str, Any]:
    """One line of :func:`lesson_table` for the experiment ``name`` (its registry entry says what
    trains and the tutorial's number): ``trainable`` parameters, the kept epoch and its selection accuracy,
    the one test accuracy with its Wilson interval (percent), and the tutorial's published number
    (another data set and backbone unless the run is on CIFAR-10 with ImageNet weights; its "best"
    was picked on the test set)."""
    kept = best_epoch(accuracies)
    correct = int((test.predictions == test.targets).sum())
    low, high = wilson_interval(correct, len(test.targets))
    entry = EXPERIMENTS[name]
    published = entry.published_acc
    return {"experiment": name, "what trains": entry.what_trains, "trainable parameters": f"{trainable:,}",
            "kept epoch": kept, f"{selection_phase(accuracies)} acc (%)": round(100 * accuracies[selection_phase(
                accuracies)][kept], 1),
            "test acc (%)": round(100 * test.accuracy, 1), "95 % interval": f"{100 * low:.1f} to {100 * high:.1f}",
            "tutorial: CIFAR-10, ImageNet weights (%)": "" if published is None else f"{published:.2f}"}


def lesson_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The lesson's comparison: one row per experiment (:func:`comparison_row`)."""
    return pd.DataFrame(list(rows)).set_index("experiment")


def curve_sizes(data: DataLoaders, sizes: Sequence[int] = (30, 100, 300)) -> list[int]:
    """The training-set sizes of a data-efficiency curve on ``data``: those of ``sizes`` below the
    number of its training images (train and val splits together), then that number itself."""
    available = sum(n for split, n in data.sizes.items() if split in ("train", "val"))
    return [n for n in sizes if n < available] + [available]


def batchnorm_drift(model: nn.Module, images: torch.Tensor) -> float:
    """How far one batch in train mode moves the BatchNorm running means of ``model``: the largest
    absolute change, measured on a copy (``model`` itself is untouched). Zero for a backbone kept
    in eval mode (:func:`~pystatsml_tl.models.freeze_backbone`), not for one frozen by
    ``requires_grad = False`` alone."""
    probe = copy.deepcopy(model)
    norms = [m for m in probe.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    before = [m.running_mean.clone() for m in norms]
    probe.train()
    device = next(probe.parameters()).device
    with torch.no_grad():
        probe(images.to(device))
    return max((float((m.running_mean - b).abs().max()) for m, b in zip(norms, before)), default=0.0)


def curve_batch_size(size: int, full: int, batch_size: int, val_fraction: float) -> int:
    """The batch size for a training set of ``size`` images on a curve whose largest set, ``full``,
    uses ``batch_size``: shrunk in proportion, so that every size makes as many updates per epoch
    (with a fixed batch, 30 images would get one update an epoch, and the curve would measure the
    updates, not the labels). At least 2, and never leaving a last batch of one image, which
    BatchNorm cannot normalise in train mode."""
    train = size - round(size * val_fraction)
    batch = max(2, round(batch_size * size / full))
    while train % batch == 1:
        batch += 1
    return int(batch)


def data_efficiency(params: dict[str, Any], settings: dict[str, dict[str, Any]], sizes: Sequence[int],
                    seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Train every setting (``{label: parameter overrides}``, e.g. ``{"experiment": "finetune-adam"}``)
    on ``train_subset`` = each of ``sizes`` images (the validation split taken from them), in
    batches of :func:`curve_batch_size`, with each seed; return each run's metrics (as in
    ``metrics.json``) with its ``setting`` label."""
    runs = []
    for label, overrides in settings.items():
        for n in sizes:
            batch = curve_batch_size(n, max(sizes), params["batch_size"], params["val_fraction"])
            for seed in seeds:
                result = run_experiment(params | overrides | {"train_subset": int(n), "seed": int(seed),
                                                              "batch_size": batch, "output_dir": None},
                                        log_interval=None)
                runs.append(result.metrics() | {"setting": label})
    return runs


def summarize_curve(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Mean test accuracy and its 95 % interval (:func:`~pystatsml_tl.runs.statistics.bounded_interval`,
    inside [0, 100]) per setting and training-set size, in percent, from :func:`data_efficiency`'s runs."""
    # a run that fine-tunes from random weights keeps the colour of the scratch reference
    colour_of = ["scratch" if m["settings"]["kind"] == "finetune" and m["settings"]["weights"] == "none"
                 else m["experiment"] for m in runs]
    table = pd.DataFrame({"setting": [m["setting"] for m in runs], "experiment": colour_of,
                          "train_images": [m["parameters"]["train_subset"] for m in runs],
                          "test_acc": [m["test_acc"] for m in runs],
                          "test_size": [len(m["test_targets"]) for m in runs]})
    rows = []
    for (setting, size), group in table.groupby(["setting", "train_images"], sort=False):
        low, high = bounded_interval(group["test_acc"].tolist(), group["test_size"].tolist())
        rows.append({"setting": setting, "experiment": group["experiment"].iloc[0], "train_images": int(size),
                     "n_seeds": len(group), "mean": 100 * group["test_acc"].mean(), "ci_low": 100 * low,
                     "ci_high": 100 * high})
    return pd.DataFrame(rows)
