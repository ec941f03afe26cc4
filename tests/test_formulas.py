import numpy as np
import pytest
import torch

from pystatsml_tl.data.datasets import load_data
from pystatsml_tl.data.formulas import make_fractals, sample_systems


def test_fractals_are_deterministic_for_a_seed_and_differ_across_seeds_and_splits():
    images, labels = make_fractals(60, num_classes=5, seed=3)
    again_images, again_labels = make_fractals(60, num_classes=5, seed=3)
    assert np.array_equal(images, again_images) and np.array_equal(labels, again_labels)
    assert not np.array_equal(images, make_fractals(60, num_classes=5, seed=4)[0])
    assert not np.array_equal(images, make_fractals(60, num_classes=5, seed=3, split="test")[0])


def test_fractals_have_the_declared_classes_shape_and_dtype():
    images, labels = make_fractals(400, num_classes=7, seed=0)
    assert images.shape == (400, 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(labels.tolist()) == set(range(7))
    assert images.std() > 20  # not blank: a fractal on a textured background


def test_systems_are_contractive_affine_maps_of_the_declared_count():
    systems = sample_systems(50, seed=1)
    assert systems.shape == (50, 4, 6)
    linear = systems[..., :4].reshape(50, 4, 2, 2)
    used = systems.abs().sum(-1) > 0
    assert ((used.sum(1) >= 2) & (used.sum(1) <= 4)).all()
    largest = torch.linalg.matrix_norm(linear, ord=2)
    assert (largest[used] < 1).all()  # every map contracts: the chaos game has an attractor
    assert torch.equal(systems, sample_systems(50, seed=1))


def test_fractal_dataset_loads_like_any_other_and_bad_arguments_are_refused():
    data = load_data("fractals", batch_size=20, val_fraction=0.0, train_subset=40, test_subset=20)
    assert data.num_classes == 40 and data.sizes == {"train": 40, "test": 20}
    with pytest.raises(ValueError, match="^n="):
        make_fractals(0)
    with pytest.raises(ValueError, match="^split="):
        make_fractals(5, split="val")
    with pytest.raises(ValueError, match="^num_classes="):
        sample_systems(0)


def _figure_chroma(images: np.ndarray) -> np.ndarray:
    """Mean colour (minus brightness) of each image's pixels that stand out from its background."""
    pixels = images.astype(float) / 255
    luma = pixels @ np.array([0.299, 0.587, 0.114])
    background = np.median(luma.reshape(len(images), -1), 1).reshape(-1, 1, 1)
    figure = (np.abs(luma - background) > 0.2)[..., None]
    return ((pixels - luma[..., None]) * figure).sum((1, 2)) / np.maximum(figure.sum((1, 2)), 1)


def test_colour_carries_part_of_the_class():
    # a nearest-class-mean rule on the fractal's colour alone must beat chance (1/6) clearly: with
    # colours drawn per image (generator version 1) it scored 0.17, with class colours 0.45
    train, train_labels = make_fractals(600, num_classes=6, seed=0)
    test, test_labels = make_fractals(300, num_classes=6, seed=0, split="test")
    train_chroma, test_chroma = _figure_chroma(train), _figure_chroma(test)
    centres = np.stack([train_chroma[train_labels == k].mean(0) for k in range(6)])
    nearest = ((test_chroma[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == test_labels).mean() > 2 / 6
