"""Figures: sample images, learning curves, confusion matrices, misclassified images, feature
projections, first-layer filters, data-efficiency curves and seed comparisons.

Every figure colours an experiment the same way (:func:`experiment_colour`, one mapping here)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator
from PIL import Image

from ..data.loaders import ImageArrayDataset

EXPERIMENT_COLOURS = {
    "finetune-sgd": "#1f77b4", "finetune-adam": "#17becf", "extractor-sgd": "#d62728", "extractor-adam": "#ff7f0e",
    "scratch": "#7f7f7f", "extractor-random": "#bcbd22", "two-stage": "#2ca02c", "discriminative": "#9467bd",
}
"""One colour per experiment in every figure: blues fine-tune, reds and orange freeze, greys start from random
weights, green and purple are the recipes."""
_SPARE_COLOURS = ("#8c564b", "#e377c2", "#000000", "#aec7e8", "#98df8a", "#ff9896")


def experiment_colour(name: str) -> str:
    """The colour of an experiment (``name`` or a label that starts with it, as ``"finetune-sgd lr=0.01"``);
    other names get a spare colour chosen from the name, the same in every figure."""
    base = name.split()[0] if name else name
    if base in EXPERIMENT_COLOURS:
        return EXPERIMENT_COLOURS[base]
    return _SPARE_COLOURS[sum(map(ord, name)) % len(_SPARE_COLOURS)]


def dataset_image(dataset, index: int) -> np.ndarray:
    """Return image ``index`` of a dataset as uint8 (H, W, 3): in-memory sets and image folders alike."""
    if isinstance(dataset, ImageArrayDataset):
        return dataset.images[index].permute(1, 2, 0).cpu().numpy()
    while hasattr(dataset, "indices"):  # torch Subset, possibly nested
        dataset, index = dataset.dataset, dataset.indices[index]
    with Image.open(dataset.samples[index][0]) as image:
        return np.asarray(image.convert("RGB"))


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], ncols: int = 8, title: str | None = None,
               slots: int = 0):
    """Show images in a grid (at least ``slots`` cells) with a small title above each; return the figure."""
    nrows = max(1, -(-max(len(images), slots) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.9 * nrows + (0.4 if title else 0)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, text in zip(axes.flat, images, titles):
        ax.imshow(image)
        ax.set_title(text, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sample_images(dataset, classes: Sequence[str], n: int = 16, ncols: int = 8, title: str | None = None):
    """A grid of the first ``n`` images of ``dataset`` with their class names."""
    n = min(n, len(dataset))
    labels = [dataset[i][1] for i in range(n)] if not isinstance(dataset, ImageArrayDataset) else dataset.targets[:n]
    return image_grid([dataset_image(dataset, i) for i in range(n)], [classes[y] for y in labels], ncols, title)


def confusion_counts(targets, predictions, num_classes: int) -> np.ndarray:
    """Counts of true (rows) against predicted (columns) classes."""
    counts = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(counts, (np.asarray(targets), np.asarray(predictions)), 1)
    return counts


def _confusion_axes(ax, targets, predictions, classes: Sequence[str], title: str) -> None:
    counts = confusion_counts(targets, predictions, len(classes))
    percent = 100 * counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    sns.heatmap(percent, annot=True, fmt=".0f", cmap="Blues", vmin=0, vmax=100, cbar=False, ax=ax,
                xticklabels=classes, yticklabels=classes, annot_kws={"fontsize": 7})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.tick_params(axis="x", rotation=45)
    ax.tick_params(axis="y", rotation=0)


def confusion_matrix(targets, predictions, classes: Sequence[str], title: str = "Confusion matrix (test set)"):
    """Heat map of true (rows) against predicted (columns) classes, each row in percent of its true
    class (rows sum to 100); return the figure."""
    k = len(classes)
    fig, ax = plt.subplots(figsize=(0.55 * k + 3, 0.5 * k + 2))
    _confusion_axes(ax, targets, predictions, classes, f"{title}, % of each true class")
    fig.tight_layout()
    return fig


def confusion_matrices(models: dict[str, tuple[Sequence[int], Sequence[int]]], classes: Sequence[str]):
    """Confusion matrices side by side, one per model (``{label: (targets, predictions)}``), each
    row in percent of its true class; return the figure."""
    k = len(classes)
    fig, axes = plt.subplots(1, len(models), figsize=(len(models) * (0.5 * k + 2.5), 0.5 * k + 2), squeeze=False)
    for ax, (label, (targets, predictions)) in zip(axes.flat, models.items()):
        accuracy = 100 * np.mean(np.asarray(targets) == np.asarray(predictions))
        _confusion_axes(ax, targets, predictions, classes, f"{label} (test accuracy {accuracy:.1f}%)")
    fig.suptitle("Confusion matrices on the test set, % of each true class")
    fig.tight_layout()
    return fig


def misclassified_images(dataset, targets, predictions, classes: Sequence[str], n: int = 16, ncols: int = 8,
                         title: str = "Misclassified test images"):
    """A grid of up to ``n`` misclassified images titled "true -> predicted", the figure's title
    saying how many of how many are shown; return the figure."""
    all_wrong = np.flatnonzero(np.asarray(targets) != np.asarray(predictions))
    if len(all_wrong) == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: none", ha="center", va="center")
        return fig
    wrong = all_wrong[:n]
    titles = [f"{classes[targets[i]]}\n-> {classes[predictions[i]]}" for i in wrong]
    shown = f"{len(wrong)} of {len(all_wrong)} shown" if len(wrong) < len(all_wrong) else f"all {len(wrong)}"
    return image_grid([dataset_image(dataset, int(i)) for i in wrong], titles, ncols,
                      title=f"{title} (true -> predicted): {shown}", slots=n)


def _mean_band(rows: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95 % t band (percent) of equal-length curves, one per seed; no band for one seed."""
    from .statistics import t_interval

    values = 100 * np.asarray(rows, dtype=float)
    mean = values.mean(axis=0)
    if len(values) < 2:
        return mean, mean, mean
    low, high = np.array([t_interval(column) for column in values.T]).T
    return mean, low, high


def seed_comparison(accuracies: dict[str, list[float]], intervals: dict[str, tuple[float, float, float]],
                    curves: dict[str, list[list[float]]], published: dict[str, float | None] | None = None,
                    title: str = ""):
    """Left: the test accuracy of every seed (points), the mean and its 95 % interval (bar) per
    setting, beside the published number when given. Right: the mean selection accuracy per epoch
    over the seeds with its 95 % band. ``accuracies`` and ``curves`` hold fractions,
    ``intervals`` (mean, low, high) percent; return the figure."""
    names = list(accuracies)
    fig, (ax_acc, ax_curve) = plt.subplots(1, 2, figsize=(13, 0.45 * len(names) + 3.2),
                                           gridspec_kw={"width_ratios": [2, 3]})
    palette = {name: experiment_colour(name) for name in names}
    rng = np.random.default_rng(0)  # jitter only, so that equal accuracies stay visible
    for y, name in enumerate(names):
        points = 100 * np.asarray(accuracies[name])
        ax_acc.scatter(points, y + rng.uniform(-0.15, 0.15, len(points)), s=18, alpha=0.7, color=palette[name])
        mean, low, high = intervals[name]
        ax_acc.errorbar(mean, y, xerr=[[mean - low], [high - mean]], fmt="D", color="black", capsize=4, markersize=5)
        if published and published.get(name) is not None:
            ax_acc.plot(published[name], y, "x", color="grey", markersize=8)
    ax_acc.set_yticks(range(len(names)), names)
    ax_acc.invert_yaxis()
    ax_acc.set(xlabel="test accuracy (%)", title="Seeds (dots), mean and 95 % interval"
               + (" (x: tutorial)" if published else ""))
    for name in names:
        mean, low, high = _mean_band(curves[name])
        epochs = np.arange(len(mean))
        ax_curve.plot(epochs, mean, marker="o", color=palette[name], label=f"{name} (n={len(curves[name])})")
        ax_curve.fill_between(epochs, low, high, color=palette[name], alpha=0.2)
    ax_curve.set(xlabel="epoch", ylabel="accuracy (%)", title="Selection accuracy per epoch: mean, 95 % band")
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_curve.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves_grid(histories: dict[str, tuple[dict[str, list[float]], dict[str, list[float]]]],
                         chance: float | None = None, title: str = ""):
    """Small multiples of training: one column per experiment (``{name: (losses, accuracies)}``),
    accuracy above and loss below, every panel of a row on the same y-range; train solid, the
    selection split dashed, both in the experiment's colour; a star on the kept epoch (the best
    selection accuracy) and a dotted chance line (``chance``, a fraction). Return the figure."""
    from ..training.loop import best_epoch, selection_phase

    names = list(histories)
    fig, axes = plt.subplots(2, len(names), figsize=(max(6.0, 2.6 * len(names) + 0.8), 5.2), sharey="row", squeeze=False)
    for column, name in enumerate(names):
        losses, accuracies = histories[name]
        colour, select = experiment_colour(name), selection_phase(accuracies)
        ax_acc, ax_loss = axes[0, column], axes[1, column]
        for phase, style in (("train", "-"), (select, "--")):
            epochs = np.arange(len(accuracies[phase]))
            ax_acc.plot(epochs, 100 * np.asarray(accuracies[phase]), style, color=colour, marker="o", markersize=3,
                        label=phase)
            ax_loss.plot(epochs, losses[phase], style, color=colour, marker="o", markersize=3, label=phase)
        kept = best_epoch(accuracies)
        ax_acc.plot(kept, 100 * accuracies[select][kept], "*", color="black", markersize=11, zorder=5,
                    label="kept epoch")
        if chance is not None:
            ax_acc.axhline(100 * chance, color="grey", linestyle=":", linewidth=1, label="chance")
        ax_acc.set_title(name, color=colour, fontsize=10)
        ax_acc.set_ylim(0, 100)
        ax_loss.set_xlabel("epoch")
        for ax in (ax_acc, ax_loss):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].legend(fontsize=8, loc="upper left", handlelength=3)
    axes[0, 0].set_ylabel("accuracy (%)")
    axes[1, 0].set_ylabel("cross-entropy loss")
    fig.suptitle(title or "Training curves: train (solid) and validation (dashed); the star is the kept epoch")
    fig.tight_layout()
    return fig


def feature_projections(projections: dict[str, tuple[np.ndarray, np.ndarray, float]], classes: Sequence[str],
                        method: str = "PCA"):
    """Scatter plots side by side of 2-D projections of features (``{label: (xy (N, 2), labels (N,),
    linear-probe accuracy fraction)}``), a colour per class; return the figure."""
    fig, axes = plt.subplots(1, len(projections), figsize=(4.6 * len(projections) + 1.2, 4.4), squeeze=False)
    palette = sns.color_palette("husl", len(classes))  # not the experiments' colours: these are classes
    for ax, (label, (xy, labels, probe)) in zip(axes.flat, projections.items()):
        for k, name in enumerate(classes):
            chosen = np.asarray(labels) == k
            ax.scatter(xy[chosen, 0], xy[chosen, 1], s=7, alpha=0.7, color=palette[k], label=name)
        ax.set(title=f"{label}\nlinear probe: {100 * probe:.1f}% test accuracy", xticks=[], yticks=[],
               xlabel=f"{method} 1", ylabel=f"{method} 2")
    axes.flat[-1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), title="class")
    fig.suptitle(f"Frozen features of the test images, projected to 2-D ({method})")
    fig.tight_layout()
    return fig


def first_layer_filters(filters: dict[str, np.ndarray], ncols: int = 16):
    """The first convolution's filters as small colour images, one block of rows per model
    (``{label: weight (out, 3, k, k)}``), each filter scaled to its own range; return the figure."""
    count = max(len(w) for w in filters.values())
    rows = -(-count // ncols)
    fig, axes = plt.subplots(rows * len(filters), ncols, figsize=(0.55 * ncols, 0.62 * rows * len(filters) + 0.8),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for block, (label, weight) in enumerate(filters.items()):
        for i, kernel in enumerate(np.asarray(weight, dtype=float)):
            low, high = kernel.min(), kernel.max()
            ax = axes[block * rows + i // ncols, i % ncols]
            ax.imshow(np.transpose((kernel - low) / (high - low + 1e-12), (1, 2, 0)), interpolation="nearest")
        axes[block * rows, 0].set_title(label, loc="left", fontsize=9, pad=3)
    fig.suptitle("First convolution's filters (conv1), each scaled to its own range")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.5 / fig.get_figheight(), wspace=0.08,
                        hspace=0.45)
    return fig


def data_efficiency_curve(curve, chance: float | None = None, title: str = ""):
    """Test accuracy against the number of training images: a line per setting with its 95 %
    interval band, its edges dotted (``curve``: a DataFrame with ``setting``, ``train_images``, ``mean``,
    ``ci_low``, ``ci_high``, ``n_seeds``, percent), a log axis when the sizes span 10x or more; return
    the figure."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for setting, rows in curve.groupby("setting", sort=False):
        rows = rows.sort_values("train_images")
        colour = experiment_colour(rows["experiment"].iloc[0]) if "experiment" in rows else None
        ax.plot(rows["train_images"], rows["mean"], marker="o", color=colour,
                label=f"{setting} (n = {int(rows['n_seeds'].min())} seeds)")
        ax.fill_between(rows["train_images"], rows["ci_low"], rows["ci_high"], color=colour, alpha=0.1)
        ax.plot(rows["train_images"], rows["ci_low"], ":", color=colour, linewidth=0.8)
        ax.plot(rows["train_images"], rows["ci_high"], ":", color=colour, linewidth=0.8)
    sizes = curve["train_images"]
    if sizes.max() >= 10 * sizes.min():
        ax.set_xscale("log")
    ax.set_xticks(sorted(sizes.unique()), [str(int(v)) for v in sorted(sizes.unique())])
    ax.minorticks_off()
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set(xlabel="labelled training images", ylabel="test accuracy (%)", ylim=(0, 100),
           title=title or "How much labelled data pretraining saves: mean and 95 % interval over seeds")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
