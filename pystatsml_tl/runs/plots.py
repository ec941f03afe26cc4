"""Figures: sample images, learning curves, confusion matrices, misclassified images, feature
projections, first-layer filters, data-efficiency curves and seed comparisons.

Every figure colours an experiment the same way: the colour of its registry entry
(:func:`~pystatsml_tl.runs.registry.experiment_colour`)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator
from PIL import Image

from .registry import experiment_colour


def dataset_image(dataset, index: int) -> np.ndarray:
    """Return image ``index`` of a dataset as uint8 (H, W, 3): in-memory sets and image folders alike."""
    from ..data.loaders import ImageArrayDataset

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
    from ..data.loaders import ImageArrayDataset

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


def _bounded_band(rows: Sequence[Sequence[float]], sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95 % band (percent) of equal-length accuracy curves (fractions), one per seed, each
    epoch's band inside [0, 100] (:func:`~pystatsml_tl.runs.statistics.bounded_interval` over the
    seeds, with ``sizes`` images behind each seed's accuracy)."""
    from .statistics import bounded_interval

    values = np.asarray(rows, dtype=float)
    bands = np.array([bounded_interval(column, sizes) for column in values.T])
    return 100 * values.mean(axis=0), 100 * bands[:, 0], 100 * bands[:, 1]


def seed_accuracies(accuracies: dict[str, list[float]], intervals: dict[str, tuple[float, float, float]],
                    published: dict[str, float | None] | None = None, title: str = ""):
    """The test accuracy of every seed (dots), the mean and its 95 % interval (bar) per setting, in
    the experiment's colour, beside the published number when given. ``accuracies`` hold fractions,
    ``intervals`` (mean, low, high) percent; return the figure."""
    names = list(accuracies)
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(names) + 1.6))
    rng = np.random.default_rng(0)  # jitter only, so that equal accuracies stay visible
    for y, name in enumerate(names):
        points = 100 * np.asarray(accuracies[name])
        ax.scatter(points, y + rng.uniform(-0.15, 0.15, len(points)), s=18, alpha=0.75, color=experiment_colour(name))
        mean, low, high = intervals[name]
        ax.errorbar(mean, y, xerr=[[mean - low], [high - mean]], fmt="D", color="black", capsize=4, markersize=5)
        if published and published.get(name) is not None:
            ax.plot(published[name], y, "x", color="grey", markersize=8)
    ax.set_yticks(range(len(names)), names)
    for label in ax.get_yticklabels():
        label.set_color(experiment_colour(label.get_text()))
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set(xlabel="test accuracy (%)", title=title or ("Seeds (dots), mean and 95 % interval"
                                                       + (" (x: tutorial)" if published else "")))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def epoch_curves_grid(curves: dict[str, list[list[float]]], sizes: dict[str, list[int]], kept: dict[str, list[int]],
                      chance: float | None = None, split: str = "validation", title: str = ""):
    """Small multiples of the selection accuracy per epoch, one panel per setting on a shared y-range:
    each seed a thin line with a star on the epoch it kept, the mean a thick line with its bounded
    95 % band (``curves``: per-seed accuracies, fractions; ``sizes``: the images behind each seed's
    accuracy; ``kept``: each seed's kept epoch), a dotted chance line. Return the figure."""
    names = list(curves)
    ncols = min(4, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.5 * nrows + 0.6), sharey=True, squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        colour, seeds = experiment_colour(name), np.asarray(curves[name], dtype=float)
        epochs = np.arange(seeds.shape[1])
        for curve, epoch in zip(seeds, kept[name]):
            ax.plot(epochs, 100 * curve, color=colour, alpha=0.35, linewidth=0.9)
            ax.plot(epoch, 100 * curve[epoch], "*", color=colour, markersize=8, markeredgecolor="black",
                    markeredgewidth=0.4)
        mean, low, high = _bounded_band(seeds, sizes[name])
        ax.fill_between(epochs, low, high, color=colour, alpha=0.18, linewidth=0)
        ax.plot(epochs, mean, color=colour, linewidth=2.2)
        if chance is not None:
            ax.axhline(100 * chance, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{name} (n = {len(seeds)})", color=colour, fontsize=9)
        ax.set_ylim(0, 100)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.25)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{split} accuracy (%)")
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    fig.suptitle(title or f"{split.capitalize()} accuracy per epoch: seeds (thin, star = kept epoch), mean and 95 % "
                 "band (thick); dotted: chance", fontsize=10)
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
    fig, axes = plt.subplots(2, len(names), figsize=(max(6.0, 2.6 * len(names) + 0.8), 5.2), sharey="row",
                             squeeze=False)
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


def class_palette(num_classes: int) -> list:
    """Colours for classes, not experiments: matplotlib's tab10 (ten hues chosen to be told apart)
    up to 10 classes, tab20 up to 20, evenly spaced hues beyond."""
    if num_classes <= 10:
        return sns.color_palette("tab10", num_classes)
    return sns.color_palette("tab20" if num_classes <= 20 else "husl", num_classes)


def feature_projections(projections: dict[str, tuple[np.ndarray, np.ndarray, float]], classes: Sequence[str],
                        method: str = "PCA"):
    """Scatter plots side by side of 2-D projections of features (``{label: (xy (N, 2), labels (N,),
    linear-probe accuracy fraction)}``), a colour per class; return the figure."""
    fig, axes = plt.subplots(1, len(projections), figsize=(4.6 * len(projections) + 1.2, 4.4), squeeze=False)
    palette = class_palette(len(classes))
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
    tile, title = 0.55, 0.3  # inches: a square tile, and the room above each model's first row for its label
    fig, axes = plt.subplots(rows * len(filters), ncols, squeeze=False,
                             figsize=(tile * ncols * 1.1, (tile * 1.1 * rows + title) * len(filters) + 0.5))
    for ax in axes.flat:
        ax.axis("off")
    for block, (label, weight) in enumerate(filters.items()):
        for i, kernel in enumerate(np.asarray(weight, dtype=float)):
            low, high = kernel.min(), kernel.max()
            ax = axes[block * rows + i // ncols, i % ncols]
            ax.imshow(np.transpose((kernel - low) / (high - low + 1e-12), (1, 2, 0)), interpolation="nearest",
                      aspect="equal")
        axes[block * rows, 0].set_title(label, loc="left", fontsize=9, pad=3)
    fig.suptitle("First convolution's filters (conv1), each scaled to its own range")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.5 / fig.get_figheight(), wspace=0.08,
                        hspace=0.45)
    return fig


def accuracy_against(curve, x: str, xlabel: str, chance: float | None = None, title: str = ""):
    """Test accuracy against a number: a line per setting in its experiment's colour with its 95 %
    interval band, its edges dotted (``curve``: a DataFrame with ``setting``, ``experiment``, the
    column ``x``, ``mean``, ``ci_low``, ``ci_high`` and ``n_seeds``, percent), a log axis when the
    values span 10x or more; return the figure."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for setting, rows in curve.groupby("setting", sort=False):
        rows = rows.sort_values(x)
        colour = experiment_colour(rows["experiment"].iloc[0])
        ax.plot(rows[x], rows["mean"], marker="o", color=colour,
                label=f"{setting} (n = {int(rows['n_seeds'].min())} seeds)")
        ax.fill_between(rows[x], rows["ci_low"], rows["ci_high"], color=colour, alpha=0.1)
        ax.plot(rows[x], rows["ci_low"], ":", color=colour, linewidth=0.8)
        ax.plot(rows[x], rows["ci_high"], ":", color=colour, linewidth=0.8)
    values = sorted(curve[x].unique())
    if min(values) > 0 and max(values) >= 10 * min(values):
        ax.set_xscale("log")
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.minorticks_off()
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", ylim=(0, 100),
           title=title or f"Test accuracy against {xlabel}: mean and 95 % interval over seeds")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def data_efficiency_curve(curve, chance: float | None = None, title: str = ""):
    """Test accuracy against the number of labelled training images (``curve``: a DataFrame with
    ``setting``, ``experiment``, ``train_images``, ``mean``, ``ci_low``, ``ci_high``, ``n_seeds``,
    percent; see :func:`accuracy_against`); return the figure."""
    return accuracy_against(curve, "train_images", "labelled training images", chance,
                            title or "How much labelled data pretraining saves: mean and 95 % interval over seeds")
