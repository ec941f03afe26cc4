"""Two-stage and discriminative fine-tuning, schedules, and the learning-rate finder."""
import math

import pytest
import torch
import torchvision
from fakes import small_cnn
from torch import nn

from pystatsml_tl import load_data, make_model
from pystatsml_tl.runs.experiments import build_model, run_experiment
from pystatsml_tl.runs.kinds import KINDS, Training, experiment_criterion
from pystatsml_tl.runs.lr_finder import lr_find
from pystatsml_tl.runs.parameters import validate_parameters
from pystatsml_tl.training.loop import train_val_model
from pystatsml_tl.training.recipes import discriminative_groups, make_optimizer, make_scheduler, parameter_blocks

SMALL = dict(dataset="synthetic", weights="none", epochs=3, batch_size=20, train_subset=120, test_subset=40,
             progress=False, device="cpu")


@pytest.mark.parametrize("arch, first, count", [("resnet18", "conv1+bn1", 6), ("mobilenet_v3_small", "features.0", 15)])
def test_discriminative_rates_shrink_block_by_block_towards_the_stem(arch, first, count):
    model = make_model(arch, weights="none", num_classes=10)
    groups = discriminative_groups(model, lr=1e-2, lr_decay=0.5)
    assert len(groups) == count and groups[0]["name"] == first and groups[-1]["name"] == "head"
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 * 0.5 ** (count - 1 - i) for i in range(count)])
    for later, earlier in zip(groups[1:], groups[:-1]):
        assert earlier["lr"] == pytest.approx(0.5 * later["lr"])
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # every parameter exactly once
    assert {id(p) for p in groups[-1]["params"]} == {id(p) for p in model.get_submodule(
        "fc" if arch == "resnet18" else "classifier.3").parameters()}
    if arch == "resnet18":
        assert [name for name, _ in parameter_blocks(model)] == ["conv1+bn1", "layer1", "layer2", "layer3", "layer4",
                                                                 "head"]


def test_two_stage_first_stage_keeps_the_backbone_bit_identical_and_the_second_moves_it(cache_dir):
    params = validate_parameters(SMALL | {"experiment": "two-stage", "freeze_epochs": 1, "lr": 1e-3})
    from pystatsml_tl.runs.experiments import prepare_data

    data = prepare_data(params)
    model = build_model(params, data.num_classes)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    stages = []
    import pystatsml_tl.runs.kinds as kinds

    original = kinds.train_stage

    def record(kind, training, module, loaders, epochs, stage, **kwargs):  # the moment stage 2 starts
        if stage != "stage2":
            return original(kind, training, module, loaders, epochs, stage, **kwargs)
        stages.append({k: v.clone() for k, v in module.state_dict().items() if not k.startswith("fc.")})
        assert all(p.requires_grad for p in module.parameters())
        module.train()  # as the training loop does: after unfreezing, BatchNorm trains too
        assert all(m.training for m in module.modules() if isinstance(m, nn.BatchNorm2d))
        assert kwargs.pop("best").accuracy >= 0  # stage 1's best, which stage 2's epochs must beat
        history = original(kind, training, module, loaders, epochs, stage, **kwargs)  # stage 2's own best kept
        stages.append({k: v.clone() for k, v in module.state_dict().items() if not k.startswith("fc.")})
        return history

    kinds.train_stage = record
    try:
        training = Training(params, experiment_criterion(params), None, torch.device("cpu"))
        fitted = KINDS["two-stage"].fit(training, data, model)
        losses, accuracies = fitted.losses, fitted.accuracies
    finally:
        kinds.train_stage = original
    assert len(stages) == 2 and all(torch.equal(before[k], stages[0][k]) for k in before)  # stage 1: untouched
    after = stages[1]  # the weights of stage 2's best epoch
    assert any(not torch.equal(before[k], after[k]) for k in before if "weight" in k)  # stage 2: weights moved
    assert any(not torch.equal(before[k], after[k]) for k in before if "running_mean" in k)  # and BN statistics
    assert all(len(v) == 3 for v in losses.values()) and all(len(v) == 3 for v in accuracies.values())


def _recorded_lrs(params, monkeypatch):
    result_lrs = []
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        result_lrs.append([g["lr"] for g in self.param_groups])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    run_experiment(params, log_interval=None)
    monkeypatch.undo()
    return result_lrs


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle"])
def test_schedules_give_the_rates_of_torch_schedulers(scheduler, cache_dir, monkeypatch):
    params = SMALL | {"experiment": "discriminative", "scheduler": scheduler, "lr": 1e-2, "val_fraction": 0.25}
    seen = _recorded_lrs(params, monkeypatch)
    steps = 90 // 20 + 1  # 90 training images in batches of 20
    assert len(seen) == 3 * steps
    reference_model = make_model("resnet18", weights="none", num_classes=10)
    groups = discriminative_groups(reference_model, 1e-2, validate_parameters(params)["lr_decay"])
    optimizer = torch.optim.Adam(groups, lr=1e-2)
    if scheduler == "cosine":
        torch_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3 * steps)
    else:
        torch_scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups],
                                                              total_steps=3 * steps)
    expected = []
    for _ in range(3 * steps):
        expected.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        torch_scheduler.step()
    assert len(seen[0]) == 6 and [lr for step in seen for lr in step] == pytest.approx(
        [lr for step in expected for lr in step], rel=1e-12)


def test_warmup_rises_linearly_then_follows_the_step_schedule():
    model = nn.Linear(3, 2)
    optimizer = make_optimizer("sgd", model.parameters(), lr=0.1)
    scheduler = make_scheduler(optimizer, "step", epochs=4, steps_per_epoch=5, step_size=2, gamma=0.1,
                               warmup_epochs=1)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:5] == pytest.approx([0.1 * (0.2 + 0.8 * i / 5) for i in range(5)])  # from 1/5 of the rate, linearly
    assert lrs[5:10] == pytest.approx([0.1] * 5) and lrs[15:] == pytest.approx([0.01] * 5)
    assert make_scheduler(optimizer, "step", 4, 5, 2, 0.1).__class__ is torch.optim.lr_scheduler.StepLR  # the lesson's


def test_lr_find_restores_the_model_and_suggests_a_rate_that_trains():
    data = load_data("synthetic", batch_size=50, train_subset=600, test_subset=200, seed=0)
    model = small_cnn(seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer_before = optimizer.state_dict()
    result = lr_find(model, data, optimizer=optimizer, num_iter=60, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm buffers too
    assert optimizer.state_dict()["param_groups"] == optimizer_before["param_groups"] and not optimizer.state
    assert len(result.lrs) == len(result.losses) <= 60 and result.lrs == sorted(result.lrs)
    assert all(math.isfinite(v) for v in result.losses[:-1])

    def accuracy_after_training(lr):
        trained = small_cnn(seed=0)
        opt = torch.optim.SGD(trained.parameters(), lr=lr, momentum=0.9)
        _, _, acc = train_val_model(trained, nn.CrossEntropyLoss(), opt, data, 3, device="cpu", seed=0,
                                    progress=False)
        return max(acc["val"])

    grid = {lr: accuracy_after_training(lr) for lr in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)}
    good = [lr for lr, acc in grid.items() if acc >= max(grid.values()) - 0.05]  # rates that train well
    assert max(grid.values()) > 0.3, grid  # some rate does train
    assert any(lr / 10 <= result.suggestion <= lr * 10 for lr in good), (result.suggestion, grid)
    fig = result.plot()
    assert fig.axes[0].get_xscale() == "log"


@pytest.mark.parametrize("params, message", [
    ({"scheduler": "foo"}, "scheduler='foo': expected step | cosine | onecycle"),
    ({"lr_decay": 0}, "lr_decay=0.0: expected a number in (0, 1]"),
    ({"experiment": "two-stage", "freeze_epochs": 3, "epochs": 3},
     "freeze_epochs=3: expected an integer in [1, epochs=3)"),
    ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs=5"),
    ({"label_smoothing": 1.0}, "label_smoothing=1.0"),
    ({"weight_decay": -1e-4}, "weight_decay=-0.0001"),
    ({"unfreeze_lr_factor": 2}, "unfreeze_lr_factor=2.0"),
])
def test_bad_recipe_values_fail_before_any_work(params, message):
    with pytest.raises(ValueError) as info:
        validate_parameters(params)
    assert str(info.value).startswith(message.split(":")[0]) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_build_optimizer_uses_weight_decay_and_block_groups():
    params = validate_parameters(SMALL | {"experiment": "discriminative", "weight_decay": 1e-4})
    model = make_model("resnet18", weights="none", num_classes=10)
    optimizer, scheduler = KINDS["discriminative"].build_optimizer(params, model)
    assert isinstance(optimizer, torch.optim.Adam) and len(optimizer.param_groups) == 6
    assert all(g["weight_decay"] == 1e-4 for g in optimizer.param_groups)
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert torchvision  # the non-ResNet arch above comes from torchvision's registry
