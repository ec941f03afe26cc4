import torch
from torch import nn

from pystatsml_tl import load_data, make_model
from pystatsml_tl.data.loaders import take_rows
from pystatsml_tl.inference import inference_model


def test_folded_backbone_computes_the_same_features_without_batchnorm():
    model = make_model("resnet18", weights="none", trainable=("head",), seed=3)
    model.fc = nn.Identity()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that folding them matters
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model.train()
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    folded = inference_model(model, torch.device("cpu"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the model itself is untouched
    with torch.no_grad():
        expected, got = model.eval()(x), folded(x)
    # the same arithmetic in another order: float32 rounding only (2^-24 relative per operation)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    with torch.no_grad():
        assert torch.equal(folded(x), got)  # and the same numbers every time


class DataDependent(nn.Module):
    """Python control flow on a tensor's value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)) if x.sum() > 0 else x


def test_a_model_fx_cannot_trace_runs_as_it_is():
    model = DataDependent()
    assert inference_model(model, torch.device("cpu")) is model
    assert not model.training


def test_take_rows_copies_only_when_it_must():
    tensor = torch.arange(12).view(6, 2)
    assert take_rows(tensor, torch.arange(6)) is tensor
    assert torch.equal(take_rows(tensor, torch.tensor([5, 0])), torch.tensor([[10, 11], [0, 1]]))
    assert take_rows(tensor, torch.arange(5)).shape == (5, 2)  # a prefix is not the whole


def test_whole_splits_share_the_generated_images():
    data = load_data("synthetic", batch_size=20, train_subset=60, test_subset=30, val_fraction=0)
    train = data["train"]
    base, index = train.origin
    assert torch.equal(index, torch.arange(60))
    assert train.inputs.data_ptr() == base.images.data_ptr()  # no second copy of the images in memory
    held_out = load_data("synthetic", batch_size=20, train_subset=60, test_subset=30, val_fraction=0.5)
    assert held_out["train"].inputs.data_ptr() != held_out["train"].origin[0].images.data_ptr()
