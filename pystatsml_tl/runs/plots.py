"""Figures: sample images, learning curves, confusion matrix, misclassified images, comparisons."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator
from PIL import Image

from ..data.loaders import ImageArrayDataset

PHASE_STYLES = {"train": ("tab:blue", "-"), "val": ("tab:orange", "--"), "test": ("tab:red", ":")}


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


def learning_curves(losses: dict[str, list[float]], accuracies: dict[str, list[float]], title: str = ""):
    """Loss and accuracy per epoch for each phase, side by side; return the figure."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.4))
    for phase in losses:
        colour, style = PHASE_STYLES.get(phase, ("black", "-"))
        epochs = np.arange(len(losses[phase]))
        ax_loss.plot(epochs, losses[phase], style, color=colour, marker="o", label=phase)
        ax_acc.plot(epochs, 100 * np.asarray(accuracies[phase]), style, color=colour, marker="o", label=phase)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(targets, predictions, classes: Sequence[str], title: str = "Confusion matrix (test set)"):
    """Heat map of true (rows) against predicted (columns) classes; return the figure."""
    k = len(classes)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (np.asarray(targets), np.asarray(predictions)), 1)
    fig, ax = plt.subplots(figsize=(0.55 * k + 3, 0.5 * k + 2))
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=classes, yticklabels=classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.tick_params(axis="x", rotation=45)
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def misclassified_images(dataset, targets, predictions, classes: Sequence[str], n: int = 16, ncols: int = 8):
    """A grid of up to ``n`` misclassified images titled "true -> predicted"; return the figure."""
    wrong = np.flatnonzero(np.asarray(targets) != np.asarray(predictions))[:n]
    if len(wrong) == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified test image", ha="center", va="center")
        return fig
    titles = [f"{classes[targets[i]]}\n-> {classes[predictions[i]]}" for i in wrong]
    return image_grid([dataset_image(dataset, int(i)) for i in wrong], titles, ncols,
                      title="Misclassified test images (true -> predicted)", slots=n)


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
    palette = dict(zip(names, sns.color_palette("tab10", len(names))))
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
