"""Extension 3, through public registration only: a data set read from its real on-disk format,
SVHN's MATLAB files (``train_32x32.mat``, ``test_32x32.mat``: ``X`` as 32x32x3xN uint8, ``y`` as
Nx1 labels with 10 for the digit 0), written here small and seeded in that format."""
import numpy as np
import pytest
import scipy.io

from pystatsml_tl.cli import main
from pystatsml_tl.data.datasets import load_data
from pystatsml_tl.data.loaders import ImageArrayDataset
from pystatsml_tl.data.registry import DATASETS, Dataset, LoadRequest, register_dataset
from pystatsml_tl.runs.experiments import run_experiment
from pystatsml_tl.runs.parameters import validate_parameters


def load_svhn(request: LoadRequest) -> dict[str, ImageArrayDataset]:
    """SVHN's cropped digits from ``<data_dir>/svhn/{train,test}_32x32.mat``."""
    from pathlib import Path

    folder = Path(request.data_dir) / "svhn"
    splits = {}
    for split in ("train", "test"):
        mat = scipy.io.loadmat(folder / f"{split}_32x32.mat")
        images = np.transpose(mat["X"], (3, 0, 1, 2))
        labels = (mat["y"].ravel() % 10).astype(np.int64)  # SVHN writes the digit 0 as 10
        splits[split] = ImageArrayDataset.from_hwc(images, labels.tolist(), [str(d) for d in range(10)])
    return splits


def write_svhn(root, n_train=200, n_test=60, seed=0):
    """SVHN-format files of seeded images: the class is the image's mean brightness band."""
    rng = np.random.default_rng(seed)
    folder = root / "svhn"
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        digits = rng.integers(0, 10, n)
        base = (digits * 25 + 5).astype(np.uint8)
        images = np.clip(base[:, None, None, None] + rng.integers(0, 20, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": np.transpose(images, (1, 2, 3, 0)),
                                                         "y": np.where(digits == 0, 10, digits)[:, None]})


@pytest.fixture
def svhn(tmp_path):
    """``svhn`` registered for one test, its files written under ``tmp_path``."""
    write_svhn(tmp_path)
    entry = register_dataset(Dataset("svhn", load_svhn, classes=10, image_size=32,
                                     description="Street View House Numbers, from its .mat files"))
    yield tmp_path
    del DATASETS[entry.name]


def test_svhn_loads_through_its_mat_files(svhn):
    data = load_data("svhn", data_dir=svhn, val_fraction=0.1, batch_size=50)
    assert data.sizes == {"train": 180, "val": 20, "test": 60} and data.classes[0] == "0"
    mat = scipy.io.loadmat(svhn / "svhn" / "test_32x32.mat")
    first = data["test"].dataset.images[0].permute(1, 2, 0).numpy()
    assert np.array_equal(first, mat["X"][..., 0]) and data["test"].dataset.targets[0] == mat["y"][0, 0] % 10


def test_svhn_is_a_parameter_value_and_trains_end_to_end(svhn, cache_dir):
    params = validate_parameters({"dataset": "svhn", "data_dir": str(svhn), "experiment": "extractor-adam",
                                  "weights": "none", "epochs": 10, "batch_size": 30, "lr": 0.01,
                                  "progress": False, "device": "cpu"})
    result = run_experiment(params, log_interval=None)
    assert result.data.name == "svhn" and result.test.accuracy > 0.2  # brightness bands: above chance (0.1)


def test_svhn_shows_in_the_list(svhn, capsys):
    assert main(["list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("svhn"))
    assert "10 classes, 32 px" in line
