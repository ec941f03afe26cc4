"""scikit-learn's handwritten digits as the offline target: real scans, read from the installed package."""
import sys

import numpy as np
import pytest
import torch

from pystatsml_tl import load_data
from pystatsml_tl.data import digits


def test_digits_are_the_installed_scans_enlarged_and_split_the_same_way_every_time():
    from sklearn.datasets import load_digits

    first, second = digits.load_digits_arrays(), digits.load_digits_arrays()
    for split in ("train", "test"):
        assert torch.equal(first[split].images, second[split].images) and first[split].targets == second[split].targets
    train, test = first["train"], first["test"]
    assert train.images.shape == (1201, 3, 32, 32) and test.images.shape == (596, 3, 32, 32)
    assert train.classes == [str(d) for d in range(10)]
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # grey, as three equal channels
    # every test image is every third scan of its digit: about a third of each class
    counts = np.bincount(test.targets, minlength=10) / (np.bincount(test.targets, minlength=10)
                                                       + np.bincount(train.targets, minlength=10))
    assert np.all((counts > 0.3) & (counts < 0.36))
    # each 32 px image, shrunk back to 8x8, matches its scan in scikit-learn's files
    scans = load_digits()
    is_test = digits.digits_split(scans.target)
    shrunk = train.images[:, 0].reshape(-1, 8, 4, 8, 4).float().mean(dim=(2, 4)).numpy()
    original = scans.images[~is_test]
    correlation = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(shrunk, original)]
    assert min(correlation) > 0.9
    assert train.targets == scans.target[~is_test].tolist()


def test_load_data_serves_digits_with_a_seeded_validation_split():
    data = load_data("digits", batch_size=20, train_subset=100, val_fraction=0.1, seed=3)
    assert data.sizes == {"train": 90, "val": 10, "test": 596} and data.num_classes == 10
    again = load_data("digits", batch_size=20, train_subset=100, val_fraction=0.1, seed=3)
    assert torch.equal(data["val"].dataset.images, again["val"].dataset.images)
    assert set(data.training_loaders()) == {"train", "val"}


def test_digits_without_scikit_learn_is_one_clear_line(monkeypatch):
    digits.digit_images.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError) as info:
        digits.load_digits_arrays()
    message = str(info.value)
    assert "dataset='digits'" in message and "pip install scikit-learn" in message and "\n" not in message
    digits.digit_images.cache_clear()
