"""Figures: sample images, learning curves, confusion matrix, misclassified images, comparisons."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator
from PIL import Image

from .loaders import ImageArrayDataset

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


def comparison(histories: dict[str, dict[str, list[float]]], test_acc: dict[str, float],
               published: dict[str, float] | None = None, title: str = ""):
    """Validation accuracy per epoch of several experiments, and their test accuracy as bars
    (beside the published numbers when given); return the figure."""
    fig, (ax_curve, ax_bar) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    palette = dict(zip(histories, sns.color_palette("tab10", len(histories))))
    for name, history in histories.items():
        curve = history.get("val_acc") or history.get("test_acc")
        ax_curve.plot(np.arange(len(curve)), 100 * np.asarray(curve), marker="o", color=palette[name], label=name)
    ax_curve.set(xlabel="epoch", ylabel="accuracy (%)", title="Selection accuracy per epoch (val, else test)")
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_curve.legend(loc="best", fontsize=8)
    names = list(test_acc)
    x = np.arange(len(names))
    width = 0.4 if published else 0.7
    bars = ax_bar.bar(x - (width / 2 if published else 0), [100 * test_acc[n] for n in names], width,
                      color=[palette.get(n, "grey") for n in names], label="this run")
    ax_bar.bar_label(bars, fmt="%.1f", fontsize=8)
    if published:
        ref = ax_bar.bar(x + width / 2, [published.get(n, np.nan) for n in names], width, color="lightgrey",
                         edgecolor="black", label="tutorial (published)")
        ax_bar.bar_label(ref, fmt="%.1f", fontsize=8)
        ax_bar.legend(loc="lower right", fontsize=8)
    ax_bar.set_xticks(x, names, rotation=30, ha="right")
    ax_bar.set(ylabel="test accuracy (%)", ylim=(0, 105), title="Test accuracy of the selected model")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
