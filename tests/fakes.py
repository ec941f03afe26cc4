"""Runs without training: complete ``metrics.json`` contents and a notebook executor that writes them,
so that the runner and the report are tested in milliseconds; and a network small enough to train in seconds."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import torch
from torch import nn

from pystatsml_tl.runs.statistics import wilson_interval

PROVENANCE = {"date": "2026-01-01 00:00:00 UTC", "host": "testhost", "cpu": "Test CPU", "cpu_bf16_units": "avx512_bf16",
              "cpu_threads": 2, "cpu_count": 2, "gpu": "none", "git_commit": "abc123",
              "constraints": "sha256:0123456789ab",
              "pystatsml_tl": "0.1.0", "torch": "2.0", "torchvision": "0.1", "numpy": "2.0", "python": "3.11"}


def fake_metrics(experiment: str, seed: int, correct: int, n: int = 100, epochs: int = 2, dataset: str = "synthetic",
                 **parameters) -> dict:
    """A complete run whose first ``correct`` of ``n`` test predictions are right; ``parameters``
    (e.g. ``lr=0.01``) join the run's parameters."""
    targets = [0] * n
    predictions = [0] * correct + [1] * (n - correct)
    rng = np.random.default_rng(seed)
    curve = sorted(float(v) for v in rng.uniform(0, max(correct / n, 0.01), epochs))
    params = {"experiment": experiment, "seed": seed, "lr": 0.001, "dataset": dataset, "epochs": epochs,
              "output_dir": f"/x/{experiment}/{seed}"} | parameters
    return {"experiment": experiment, "parameters": params,
            "schema": 2, "settings": {"kind": "finetune", "optimizer": "sgd", "trains": "all", "weights": "none"},
            "history": {"train_acc": curve, "val_acc": curve, "train_loss": [1.0] * epochs, "val_loss": [1.0] * epochs},
            "best_epoch": epochs - 1, "selected_on": "val", "test_acc": correct / n,
            "test_acc_ci": list(wilson_interval(correct, n)), "test_loss": 1.0, "seconds": 1.0, "device": "cpu",
            "precision": "bf16",
            "classes": ["zero", "one"], "sizes": {"train": 90, "val": 10, "test": n},
            "data": {"name": dataset, "sizes": {"train": 90, "val": 10, "test": n}, "fingerprint": "feedfacecafe0001"},
            "test_predictions": predictions, "test_targets": targets, "versions": {"torch": "2.0"},
            "provenance": PROVENANCE}


def write_run(folder: Path, metrics: dict) -> Path:
    """Write ``metrics`` as ``folder/metrics.json`` (folders made); return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.json"
    path.write_text(json.dumps(metrics))
    return path


class FakeExecutor:
    """A notebook executor that trains nothing: for each seed of the group it writes a complete
    ``metrics.json`` whose test accuracy is ``correct(experiment, seed)`` out of 100, and an output
    notebook; it raises for the experiments in ``failing``. ``calls`` records each group executed."""

    def __init__(self, correct=lambda experiment, seed: 60 + 5 * seed, failing: tuple[str, ...] = ()):
        self.correct, self.failing, self.calls = correct, set(failing), []

    def __call__(self, notebook, output, parameters, cwd) -> None:
        self.calls.append((parameters["experiment"], tuple(parameters["seeds"])))
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("fake run")]), output)
        if parameters["experiment"] in self.failing:
            raise RuntimeError(f"simulated failure of {parameters['experiment']}\nsecond line")
        grid = {k: v for k, v in parameters.items() if k not in ("seeds", "output_dir", "experiment", "seed")}
        for seed in parameters["seeds"]:
            metrics = fake_metrics(parameters["experiment"], seed, self.correct(parameters["experiment"], seed),
                                   **grid)
            write_run(Path(parameters["output_dir"]) / f"seed-{seed}", metrics)


def small_cnn(seed: int) -> nn.Module:
    """A seeded four-layer network with BatchNorm: trains in seconds on 32-pixel images."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
