import math

import numpy as np
import pytest
import torch
from torch import nn

from pystatsml_tl import evaluate, load_data, make_model, train_val_model
from pystatsml_tl.training.loop import best_epoch


def small_data(val_fraction=0.2, n=200, batch_size=25):
    return load_data("synthetic", batch_size=batch_size, train_subset=n, test_subset=100, val_fraction=val_fraction,
                     seed=0)


def train(data, epochs=2, seed=0, checkpoint=None, log_interval=None, lr=1e-3):
    model = make_model("resnet18", weights="none", seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return train_val_model(model, nn.CrossEntropyLoss(), optimizer, data, epochs, scheduler, log_interval,
                           device="cpu", seed=seed, progress=False, checkpoint=checkpoint)


# The tutorial's four experiment blocks, verbatim but for num_epochs (1 instead of 5) and the
# plotting line; `dataloaders`, `D_out`, `device` come from the tutorial's earlier cells.
TUTORIAL_BLOCKS = [
    """
model_ft = resnet18(weights=ResNet18_Weights.DEFAULT)
num_ftrs = model_ft.fc.in_features
model_ft.fc = nn.Linear(num_ftrs, D_out)
model_ft = model_ft.to(device)
criterion = nn.CrossEntropyLoss()
optimizer_ft = optim.SGD(model_ft.parameters(), lr=0.001, momentum=0.9)
exp_lr_scheduler = lr_scheduler.StepLR(optimizer_ft, step_size=7, gamma=0.1)
model, losses, accuracies = \\
    train_val_model(model_ft, criterion, optimizer_ft,
                    dataloaders, scheduler=exp_lr_scheduler, num_epochs=1,
                    log_interval=5)
epochs = np.arange(len(losses['train']))
""",
    """
model_ft = resnet18(weights=ResNet18_Weights.DEFAULT)
num_ftrs = model_ft.fc.in_features
model_ft.fc = nn.Linear(num_ftrs, D_out)
model_ft = model_ft.to(device)
criterion = nn.CrossEntropyLoss()
optimizer_ft = torch.optim.Adam(model_ft.parameters(), lr=0.001)
exp_lr_scheduler = lr_scheduler.StepLR(optimizer_ft, step_size=7, gamma=0.1)
model, losses, accuracies = \\
    train_val_model(model_ft, criterion, optimizer_ft,
                    dataloaders, scheduler=exp_lr_scheduler, num_epochs=1,
                    log_interval=5)
epochs = np.arange(len(losses['train']))
""",
    """
model_conv = resnet18(weights=ResNet18_Weights.DEFAULT)
for param in model_conv.parameters():
    param.requires_grad = False
num_ftrs = model_conv.fc.in_features
model_conv.fc = nn.Linear(num_ftrs, D_out)
model_conv = model_conv.to(device)
criterion = nn.CrossEntropyLoss()
optimizer_conv = optim.SGD(model_conv.fc.parameters(), lr=0.001, momentum=0.9)
exp_lr_scheduler = lr_scheduler.StepLR(optimizer_conv, step_size=7, gamma=0.1)
model, losses, accuracies = \\
    train_val_model(model_conv, criterion, optimizer_conv,
                    dataloaders, scheduler=exp_lr_scheduler, num_epochs=1,
                    log_interval=5)
epochs = np.arange(len(losses['train']))
""",
    """
model_conv = resnet18(weights=ResNet18_Weights.DEFAULT)
for param in model_conv.parameters():
    param.requires_grad = False
num_ftrs = model_conv.fc.in_features
model_conv.fc = nn.Linear(num_ftrs, D_out)
model_conv = model_conv.to(device)
criterion = nn.CrossEntropyLoss()
optimizer_conv = optim.Adam(model_conv.fc.parameters(), lr=0.001)
exp_lr_scheduler = lr_scheduler.StepLR(optimizer_conv, step_size=7, gamma=0.1)
model, losses, accuracies = \\
    train_val_model(model_conv, criterion, optimizer_conv,
                    dataloaders, scheduler=exp_lr_scheduler, num_epochs=1,
                    log_interval=5)
epochs = np.arange(len(losses['train']))
""",
]


@pytest.mark.parametrize("block", TUTORIAL_BLOCKS, ids=["finetune-sgd", "finetune-adam", "extractor-sgd",
                                                       "extractor-adam"])
def test_tutorial_blocks_run_unchanged(block, fake_imagenet_resnet18, capsys):
    import torch.optim as optim
    from torch.optim import lr_scheduler
    from torchvision.models import ResNet18_Weights, resnet18

    dataloaders = load_data("synthetic", batch_size=50, train_subset=100, test_subset=50, val_fraction=0)
    D_out = len(set(dataloaders["train"].dataset.targets))
    namespace = dict(torch=torch, nn=nn, np=np, optim=optim, lr_scheduler=lr_scheduler, resnet18=resnet18,
                     ResNet18_Weights=ResNet18_Weights, dataloaders=dataloaders, D_out=D_out, device="cpu",
                     train_val_model=train_val_model)
    exec(block, namespace)
    losses, accuracies = namespace["losses"], namespace["accuracies"]
    assert set(losses) == {"train", "test"} and len(losses["train"]) == 1
    assert all(isinstance(a, float) and 0 <= a <= 1 for a in accuracies["test"])
    printed = capsys.readouterr().out
    assert "epoch 0/0" in printed and "best test acc" in printed


def test_history_is_per_epoch_floats_and_log_interval_prints_the_last_epoch(capsys):
    _, losses, _ = train(small_data(), epochs=3, log_interval=5)
    assert list(losses) == ["train", "val", "test"]
    assert all(len(v) == 3 and all(isinstance(x, float) for x in v) for v in losses.values())
    printed = capsys.readouterr().out
    assert "epoch 0/2" in printed and "epoch 2/2" in printed and "epoch 1/2" not in printed
    assert "best val acc" in printed and len(printed.strip().splitlines()) == 3  # a line an epoch, one to close


def test_same_seed_same_history_on_cpu():
    data = small_data()
    first = train(data, seed=7)
    second = train(data, seed=7)
    assert first[1] == second[1] and first[2] == second[2]
    assert all(torch.equal(a, b) for a, b in zip(first[0].state_dict().values(), second[0].state_dict().values()))


def test_selection_uses_val_and_returns_the_best_weights():
    data = small_data()
    model, _, accuracies = train(data, epochs=3)
    chosen = best_epoch(accuracies)
    assert accuracies["val"][chosen] == max(accuracies["val"])
    result = evaluate(model, data["val"], device="cpu")
    assert result.accuracy == pytest.approx(accuracies["val"][chosen])
    assert evaluate(model, data["test"], device="cpu").accuracy == pytest.approx(accuracies["test"][chosen])


class Interrupting:
    """A loader that raises KeyboardInterrupt when epoch ``stop_at`` starts iterating it."""

    def __init__(self, loader, stop_at):
        self.loader, self.stop_at, self.calls = loader, stop_at, 0
        self.dataset = loader.dataset

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        self.calls += 1
        return iter(self.loader)


def test_interrupted_run_resumes_from_checkpoint_with_the_same_history(tmp_path):
    data = small_data()
    _, losses, accuracies = train(data, epochs=3)
    checkpoint = tmp_path / "run.pt"
    interrupted = dict(data)
    interrupted["train"] = Interrupting(data["train"], stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, epochs=3, checkpoint=checkpoint)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    _, resumed_losses, resumed_accuracies = train(data, epochs=3, checkpoint=checkpoint)
    assert resumed_losses == losses and resumed_accuracies == accuracies


def test_nan_loss_stops_with_the_epoch_named():
    class Exploding(nn.Module):
        def forward(self, outputs, targets):
            return nn.functional.cross_entropy(outputs, targets) * float("nan")

    model = make_model("resnet18", weights="none", seed=0)
    with pytest.raises(FloatingPointError, match="at epoch 0"):
        train_val_model(model, Exploding(), torch.optim.SGD(model.parameters(), lr=1e-3), small_data(), 2,
                        device="cpu", progress=False)


def test_bad_training_arguments():
    model = make_model("resnet18", weights="none")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="^num_epochs="):
        train_val_model(model, nn.CrossEntropyLoss(), optimizer, small_data(), 0)
    with pytest.raises(ValueError, match="'train' loader"):
        train_val_model(model, nn.CrossEntropyLoss(), optimizer, {"test": small_data()["test"]}, 1)
    if not torch.cuda.is_available():  # asking for a GPU that is not there is a parameter error
        with pytest.raises(ValueError, match="^device='cuda'"):
            train_val_model(model, nn.CrossEntropyLoss(), optimizer, small_data(), 1, device="cuda")


def test_evaluate_returns_predictions_in_loader_order():
    data = small_data()
    model = make_model("resnet18", weights="none", seed=0)
    result = evaluate(model, data["test"], device="cpu")
    assert result.predictions.shape == (100,) and result.targets.tolist() == data["test"].dataset.targets
    assert result.accuracy == pytest.approx((result.predictions == result.targets).float().mean().item())
    assert math.isfinite(result.loss)


def test_training_from_scratch_learns_the_synthetic_task():
    data = load_data("synthetic", batch_size=20, train_subset=300, test_subset=300, val_fraction=0.1, seed=0)
    model = make_model("resnet18", weights="none", seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model, _, accuracies = train_val_model(model, nn.CrossEntropyLoss(), optimizer, data, 2, device="cpu", seed=0,
                                           progress=False)
    assert max(accuracies["test"]) >= 0.3  # chance is 0.1
