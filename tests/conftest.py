"""Shared fixtures: small data in the real on-disk formats, so the real loading code runs offline."""
from __future__ import annotations

import copy
import hashlib
import pickle
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch


@pytest.fixture
def no_network(monkeypatch):
    """Make every urllib request fail at once, as on a machine without network."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty package cache directory, for tests that must not see the user's cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("PYSTATSML_TL_CACHE", str(path))
    return path


def _write_batch(path, images: np.ndarray, labels: list[int]) -> str:
    with open(path, "wb") as f:
        pickle.dump({"data": images.reshape(len(images), -1), "labels": labels,
                     "batch_label": path.name.encode()}, f)
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """A small CIFAR-10 in the real format (cifar-10-batches-py, pickled uint8 rows of 3072 bytes),
    with torchvision's md5 sums patched to match: torchvision then loads it with its own code.

    Returns (root, {"train": (images HWC, labels), "test": (...)}).
    """
    from torchvision.datasets import CIFAR10

    root = tmp_path / "data"
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_list, arrays = [], {"train": ([], []), "test": None}
    for i in range(1, 6):
        images = rng.integers(0, 256, size=(20, 3, 32, 32), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, size=20)]
        train_list.append([f"data_batch_{i}", _write_batch(folder / f"data_batch_{i}", images, labels)])
        arrays["train"][0].append(images.transpose(0, 2, 3, 1))
        arrays["train"][1].extend(labels)
    test_images = rng.integers(0, 256, size=(30, 3, 32, 32), dtype=np.uint8)
    test_labels = [int(x) for x in rng.integers(0, 10, size=30)]
    test_md5 = _write_batch(folder / "test_batch", test_images, test_labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    meta_md5 = hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest()
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", test_md5]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": meta_md5})
    arrays["train"] = (np.concatenate(arrays["train"][0]), arrays["train"][1])
    arrays["test"] = (test_images.transpose(0, 2, 3, 1), test_labels)
    return root, arrays


@pytest.fixture
def fake_imagenet_resnet18(tmp_path, monkeypatch):
    """A seeded random resnet18 state dict saved where torchvision looks for its ImageNet weights
    ($TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth). Returns the state dict."""
    import torchvision

    torch_home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(123)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, checkpoints / "resnet18-f37072fd.pth")
    return state


@pytest.fixture
def image_folder(tmp_path):
    """A tiny image folder (train/ and test/, 3 classes of coloured PNGs)."""
    from PIL import Image

    root = tmp_path / "folder"
    rng = np.random.default_rng(1)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    for split, count in (("train", 12), ("test", 4)):
        for name, colour in colours.items():
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(np.array(colour) + rng.normal(0, 25, (40, 48, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


SMOKE_EXPERIMENTS = ["extractor-adam", "scratch", "two-stage"]
"""Each kind of run: frozen on cached features, fine-tuned (from random weights), in two stages (the
pretrained fine-tuning of ``finetune-sgd`` runs in the experiment notebook's own nbval pass)."""


@pytest.fixture(scope="session")
def smoke_report(tmp_path_factory):
    """One real smoke run of :data:`SMOKE_EXPERIMENTS` (papermill, 2 seeds, 2 epochs, 100 training
    and 50 test images), made once per test session: (report folder, what the run printed on stderr)."""
    import contextlib
    import io

    from pystatsml_tl.cli import main

    out = tmp_path_factory.mktemp("smoke") / "report"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "--profile", "smoke", "--output-dir", str(out), "--device", "cpu", "--seeds", "2",
                     "--experiments", ",".join(SMOKE_EXPERIMENTS), "--set", "epochs=2", "--set", "train_subset=100",
                     "--set", "test_subset=50"])
    assert code == 0, err.getvalue()
    return out, err.getvalue()


def is_nbval_cell(item: pytest.Item) -> bool:
    """True for a notebook cell that nbval collected (it keeps the outputs it computed in ``test_outputs``)."""
    return hasattr(item, "test_outputs")


def lesson_executed_by_nbval(session: pytest.Session):
    """The teaching notebook with the outputs nbval computed for it earlier in this session
    (``pytest --nbval notebooks tests``: the notebooks' cells are collected, and run, first); None
    when nbval did not collect it. Fails when nbval collected it but some cell did not run."""
    from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK

    cells = [item for item in session.items
             if is_nbval_cell(item) and item.path.resolve() == TEACHING_NOTEBOOK.resolve()]
    if not cells:
        return None
    nb = copy.deepcopy(cells[0].parent.nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell, item in zip(code, cells, strict=True):
        if "nbval-skip" in cell.metadata.get("tags", []):  # an exercise's answer: not part of the committed run
            continue
        if item.test_outputs is None:
            pytest.fail("the teaching notebook did not run to its end under nbval (its failures are above)")
        cell.outputs = copy.deepcopy(item.test_outputs)
    return nb


@pytest.fixture(scope="session")
def smoke_lesson(request, tmp_path_factory):
    """The lesson executed with its own (smoke) defaults, once per test session: nbval's execution
    when it ran in this session, else one papermill run."""
    import nbformat

    from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK, execute_notebook

    executed = lesson_executed_by_nbval(request.session)
    if executed is not None:
        return executed
    from pystatsml_tl.teaching.assignment import without_exercises

    output = tmp_path_factory.mktemp("lesson") / "lesson.ipynb"
    nbformat.write(without_exercises(nbformat.read(TEACHING_NOTEBOOK, as_version=4)), output)  # as committed
    execute_notebook(output, output, {}, cwd=TEACHING_NOTEBOOK.parent)
    return nbformat.read(output, as_version=4)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n N --dist loadgroup`` (pytest-xdist), keep in one worker process what must
    share one: each notebook's cells (one kernel runs them in order), the lesson's checks with the
    lesson nbval executed (:func:`smoke_lesson`), the users of the one :func:`smoke_report`."""
    from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK

    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if is_nbval_cell(item):
            group = item.path.stem
        elif "smoke_lesson" in fixtures:
            group = TEACHING_NOTEBOOK.stem
        elif "smoke_report" in fixtures:
            group = "smoke_report"
        else:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
