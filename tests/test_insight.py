"""The measurements behind the lesson's "why": bounded intervals, probes, filters, BatchNorm drift, curves."""
import copy

import numpy as np
import pytest
import torch
import torchvision

from pystatsml_tl import freeze_backbone, load_data
from pystatsml_tl.runs import insight, plots
from pystatsml_tl.runs.statistics import bounded_interval, summarize_accuracies


@pytest.mark.parametrize("n_seeds", [1, 2, 3, 10])
@pytest.mark.parametrize("accuracy", [0.0, 0.37, 1.0])
def test_intervals_stay_inside_zero_and_one(accuracy, n_seeds):
    rng = np.random.default_rng(n_seeds)
    values = np.clip(accuracy + rng.normal(0, 0.05, n_seeds) * (0 < accuracy < 1), 0, 1)
    low, high = bounded_interval(values, [100] * n_seeds)
    assert 0 <= low <= values.mean() <= high <= 1
    summary = summarize_accuracies(values, [100] * n_seeds)
    assert 0 <= summary.ci_low <= summary.mean <= summary.ci_high <= 100


def test_bounded_interval_is_close_to_students_t_away_from_the_bounds():
    from pystatsml_tl.runs.statistics import t_interval

    values = [0.50, 0.53, 0.47, 0.52, 0.49]
    assert bounded_interval(values, [10_000] * 5) == pytest.approx(t_interval(values), abs=0.003)


def test_the_tutorials_freeze_lets_batchnorm_drift_and_freeze_backbone_does_not():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)
    for param in model.parameters():
        param.requires_grad = False
    images = torch.randn(8, 3, 32, 32)
    state = copy.deepcopy(model.state_dict())
    assert insight.batchnorm_drift(model, images) > 0.01
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # measured on a copy
    assert insight.batchnorm_drift(freeze_backbone(model), images) == 0.0


def test_filter_smoothness_tells_smooth_filters_from_noise():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(64, 3, 7, 7))
    ramp = np.linspace(-1, 1, 7)
    edges = np.broadcast_to(ramp[None, None, None, :] * rng.normal(size=(64, 3, 1, 1)), (64, 3, 7, 7))
    assert abs(insight.filter_smoothness(noise)) < 0.1 and insight.filter_smoothness(edges) > 0.8
    assert insight.relative_change(noise, noise) == 0 and insight.relative_change(noise, 2 * noise) == pytest.approx(1)


def test_linear_probe_and_projection_on_separable_features():
    rng = np.random.default_rng(0)
    labels = torch.as_tensor(rng.integers(0, 3, 120))
    features = torch.as_tensor(rng.normal(size=(120, 16)) + 4 * np.eye(3, 16)[labels.numpy()], dtype=torch.float32)
    assert insight.linear_probe_accuracy((features[:80], labels[:80]), (features[80:], labels[80:])) > 0.9
    shuffled = labels[torch.randperm(120, generator=torch.Generator().manual_seed(0))]
    assert insight.linear_probe_accuracy((features[:80], shuffled[:80]), (features[80:], shuffled[80:])) < 0.7


def test_feature_projection_of_a_small_network():
    data = load_data("synthetic", batch_size=20, train_subset=60, test_subset=30, val_fraction=0)
    torch.manual_seed(0)
    xy, labels, probe = insight.feature_projection(torchvision.models.resnet18(num_classes=10), data, "cpu")
    assert xy.shape == (30, 2) and labels.shape == (30,) and 0 <= probe <= 1


def test_curve_sizes_and_epochs():
    data = load_data("synthetic", batch_size=20, train_subset=200, test_subset=20, val_fraction=0.1)
    assert insight.curve_sizes(data) == [30, 100, 200]
    assert [insight.curve_batch_size(n, 300, 50, 0.1) for n in (30, 100, 300)] == [5, 17, 50]
    assert insight.curve_batch_size(20, 300, 50, 0.0) == 3  # 20 = 6 x 3 + 2: no batch of one image


def test_one_colour_per_experiment_in_every_figure():
    from pystatsml_tl.runs.registry import EXPERIMENTS

    colours = [plots.experiment_colour(name) for name in EXPERIMENTS]
    assert len(set(colours)) == len(colours)
    assert plots.experiment_colour("finetune-sgd lr=0.01") == plots.experiment_colour("finetune-sgd")
    assert plots.experiment_colour("something-new") == plots.experiment_colour("something-new")


def test_comparison_row_reports_the_kept_epoch_and_one_test_accuracy():
    from pystatsml_tl.training.loop import Evaluation

    accuracies = {"train": [0.5, 0.8, 0.9], "val": [0.4, 0.7, 0.6]}
    test = Evaluation(0.5, 0.75, torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 1, 0]))
    row = insight.comparison_row("finetune-sgd", 1234, accuracies, test)
    assert row["what trains"] == "every layer"
    assert row["kept epoch"] == 1 and row["val acc (%)"] == 70.0 and row["test acc (%)"] == 75.0
    assert row["tutorial: CIFAR-10, ImageNet weights (%)"] == "78.90" and row["trainable parameters"] == "1,234"
    low, high = (float(v) for v in row["95 % interval"].split(" to "))
    assert 0 <= low < 75 < high <= 100
