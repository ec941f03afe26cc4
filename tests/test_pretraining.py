import json

import pytest
import torch

from pystatsml_tl import make_model, pretrain, profile_parameters
from pystatsml_tl import pretraining as pretraining_module
from pystatsml_tl.cli import main
from pystatsml_tl.experiments import run_experiment

TINY = dict(epochs=1, train_size=200, test_size=50, batch_size=50)


def test_pretrain_saves_backbone_and_card_then_reuses_them(cache_dir, monkeypatch):
    backbone = pretrain("resnet18", progress=False, **TINY)
    assert backbone.path.is_file() and backbone.path.parent == cache_dir / "pretrained"
    card = json.loads(backbone.path.with_suffix(".json").read_text())
    assert card["arch"] == "resnet18" and card["source"] == "synthetic-source" and len(card["classes"]) == 22
    assert card["epochs"] == 1 and card["seed"] == 0 and 0 <= card["source_test_acc"] <= 1
    assert card["package_version"]

    def fail(*args, **kwargs):
        raise AssertionError("pretrained again")

    monkeypatch.setattr(pretraining_module, "train_val_model", fail)
    again = pretrain("resnet18", progress=False, **TINY)
    assert again.path == backbone.path and again.card == card
    model = make_model("resnet18", weights=str(backbone.path), num_classes=10)
    saved = torch.load(backbone.path, weights_only=True)
    assert torch.equal(model.conv1.weight, saved["conv1.weight"]) and model.fc.out_features == 10


def test_a_damaged_backbone_is_trained_again(cache_dir):
    backbone = pretrain("resnet18", progress=False, **TINY)
    backbone.path.write_bytes(b"broken")
    assert pretrain("resnet18", progress=False, **TINY).path.stat().st_size > 1000


def test_pretrain_command_and_bad_recipe(cache_dir, capsys):
    assert main(["pretrain", "--epochs", "1", "--train-size", "200", "--batch-size", "50"]) == 0
    out = capsys.readouterr().out
    assert str(cache_dir / "pretrained") in out and "source test accuracy" in out
    with pytest.raises(ValueError, match="^epochs="):
        pretrain("resnet18", epochs=0)
    with pytest.raises(ValueError, match="^arch="):
        pretrain("resnet1")


def test_pretrained_backbone_transfers_to_the_synthetic_target():
    """The offline lesson: features learned on the source task help on the disjoint target task."""
    base = profile_parameters("smoke", device="cpu")
    acc = {name: run_experiment(base, experiment=name, log_interval=None).test.accuracy
           for name in ("extractor-sgd", "finetune-sgd", "scratch")}
    assert acc["extractor-sgd"] >= 3 * 0.1
    assert acc["finetune-sgd"] > acc["scratch"]
