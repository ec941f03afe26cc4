import json
import time

import pytest
import torch
import torchvision
from torch import nn

from pystatsml_tl import ResourceUnavailableError, count_parameters, load_data, make_model, train_val_model
from pystatsml_tl.models import freezing_of, get_head, head_name


@pytest.mark.parametrize("arch, head", [("resnet18", "fc"), ("resnet34", "fc"), ("resnet50", "fc"),
                                        ("mobilenet_v3_small", "classifier.3")])
def test_any_backbone_gets_a_new_head(arch, head):
    model = make_model(arch, weights="none", num_classes=7, seed=0)
    assert head_name(model) == head
    assert get_head(model).out_features == 7
    model.eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)


def test_imagenet_weights_load_through_torchvision_cache(fake_imagenet_resnet18):
    model = make_model("resnet18", weights="imagenet", num_classes=10)
    assert torch.equal(model.conv1.weight, fake_imagenet_resnet18["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, fake_imagenet_resnet18["layer4.1.bn2.running_var"])
    assert model.fc.out_features == 10


def test_imagenet_weights_offline_give_one_clear_error(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    started = time.time()
    with pytest.raises(ResourceUnavailableError) as info:
        make_model("resnet18", weights="imagenet")
    assert time.time() - started < 10
    message = str(info.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "weights='none'" in message or "weights='synthetic'" in message


def test_weights_from_a_state_dict_file(tmp_path):
    source = make_model("resnet18", weights="none", num_classes=22, seed=5)
    path = tmp_path / "backbone.pt"
    torch.save(source.state_dict(), path)
    model = make_model("resnet18", weights=str(path), num_classes=10, seed=0)
    assert torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert model.fc.out_features == 10


def test_foreign_or_broken_weight_files_are_refused(tmp_path):
    other = tmp_path / "mobilenet.pt"
    torch.save(make_model("mobilenet_v3_small", weights="none").state_dict(), other)
    with pytest.raises(ValueError, match="does not fit arch='resnet18'"):
        make_model("resnet18", weights=str(other))
    carded = tmp_path / "carded.pt"
    torch.save(make_model("resnet18", weights="none").state_dict(), carded)
    (tmp_path / "carded.json").write_text(json.dumps({"arch": "resnet34"}))
    with pytest.raises(ValueError, match="pretrained for arch='resnet34'"):
        make_model("resnet18", weights=str(carded))
    junk = tmp_path / "junk.pt"
    torch.save({"not": "tensors"}, junk)
    with pytest.raises(ValueError, match="expected a state dict"):
        make_model("resnet18", weights=str(junk))
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable state dict"):
        make_model("resnet18", weights=str(text))


@pytest.mark.parametrize("kwargs, name", [({"arch": "resnet9000"}, "arch"), ({"weights": "imagenet21k"}, "weights"),
                                          ({"trainable": "distill"}, "trainable"),
                                          ({"trainable": ("layer9",)}, "trainable"),
                                          ({"num_classes": 1}, "num_classes")])
def test_bad_model_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}="):
        make_model(**({"weights": "none"} | kwargs))


def _snapshot_backbone(model):
    head = head_name(model) + "."
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(head)}


def _train_briefly(model, epochs=1):
    data = load_data("synthetic", batch_size=20, train_subset=60, test_subset=20, val_fraction=0)
    params = [p for p in model.parameters() if p.requires_grad]
    train_val_model(model, nn.CrossEntropyLoss(), torch.optim.SGD(params, lr=0.05, momentum=0.9), data, epochs,
                    seed=0, progress=False, device="cpu")


def test_extractor_backbone_is_bit_identical_after_training():
    model = make_model("resnet18", weights="none", trainable=("head",), seed=0)
    freezing = freezing_of(model)
    assert freezing.only_head_trains and freezing.trainable == ("fc",)
    assert set(freezing.frozen) == {"conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                    "avgpool"}
    assert count_parameters(model)["trainable"] == 512 * 10 + 10
    model.train()
    model(torch.zeros(2, 3, 32, 32))  # frozen blocks run in eval mode, whatever train() said
    assert model.fc.training and not model.layer1.training and not model.bn1.training
    before, head_before = _snapshot_backbone(model), model.fc.weight.clone()
    _train_briefly(model)
    after = _snapshot_backbone(model)
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm buffers
    assert not torch.equal(head_before, model.fc.weight)


def test_extractor_keeps_nested_heads_trainable_and_the_rest_in_eval():
    model = make_model("mobilenet_v3_small", weights="none", trainable=("head",), seed=0)
    model.train()
    model(torch.zeros(2, 3, 32, 32))
    assert model.classifier[3].training and not model.classifier[0].training and not model.features.training
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["classifier.3.weight", "classifier.3.bias"]


def test_finetuning_changes_the_backbone():
    model = make_model("resnet18", weights="none", trainable="all", seed=0)
    before = _snapshot_backbone(model)
    _train_briefly(model)
    after = _snapshot_backbone(model)
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])
    assert not torch.equal(before["bn1.running_mean"], after["bn1.running_mean"])


def test_same_seed_same_initial_weights():
    a = make_model("resnet18", weights="none", seed=3)
    b = make_model("resnet18", weights="none", seed=3)
    assert torch.equal(a.fc.weight, b.fc.weight) and torch.equal(a.conv1.weight, b.conv1.weight)
    assert torchvision.models.ResNet is type(a)
