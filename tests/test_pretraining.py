import json

import pytest
import torch
import torchvision

from pystatsml_tl import bundles, make_model, pretrain, profile_parameters
from pystatsml_tl import pretraining as pretraining_module
from pystatsml_tl.cli import main
from pystatsml_tl.data import formulas
from pystatsml_tl.runs.experiments import run_experiment

TINY = dict(classes=40, epochs=1, train_size=200, test_size=50, batch_size=50)


def test_pretrain_saves_backbone_and_card_then_reuses_them(cache_dir, monkeypatch):
    backbone = pretrain("resnet18", progress=False, trained_share=0.0, **TINY)
    assert backbone.path.is_file() and backbone.path.parent == cache_dir / "pretrained"
    card = json.loads(backbone.path.with_suffix(".json").read_text())
    assert card["arch"] == "resnet18" and card["source"] == "fractals" and len(card["class_names"]) == 40
    assert card["generator"] == formulas.GENERATOR and card["generator_version"] == formulas.VERSION
    assert card["colour_jitter"] == formulas.COLOUR_JITTER and card["grey_share"] == formulas.GREY_SHARE
    assert card["epochs"] == 1 and card["seed"] == 0 and 0 <= card["source_test_acc"] <= 1
    assert card["kept_blocks"] == ["conv1+bn1", "layer1", "layer2", "layer3"]
    assert card["reinitialized_blocks"] == ["layer4"] and card["package_version"]

    def fail(*args, **kwargs):
        raise AssertionError("pretrained again")

    monkeypatch.setattr(pretraining_module, "train_val_model", fail)
    again = pretrain("resnet18", progress=False, trained_share=0.0, **TINY)
    assert again.path == backbone.path and again.card == card
    model = make_model("resnet18", weights=str(backbone.path), num_classes=10)
    saved = torch.load(backbone.path, weights_only=True)
    assert torch.equal(model.conv1.weight, saved["conv1.weight"]) and model.fc.out_features == 10
    # the deep blocks are seeded random weights again; the kept ones are trained
    torch.manual_seed(card["seed"] + 1)
    fresh = torchvision.models.resnet18(num_classes=10).state_dict()
    assert torch.equal(saved["layer4.1.conv2.weight"], fresh["layer4.1.conv2.weight"])
    assert torch.equal(saved["layer4.0.downsample.0.weight"], fresh["layer4.0.downsample.0.weight"])
    assert not torch.equal(saved["layer4.0.bn1.running_var"], fresh["layer4.0.bn1.running_var"])  # re-estimated
    assert not torch.equal(saved["layer1.0.conv1.weight"], fresh["layer1.0.conv1.weight"])


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_the_blocks_after_the_kept_ones_mix_trained_and_seeded_random_weights(share):
    torch.manual_seed(5)
    model = torchvision.models.resnet18(num_classes=10)  # stands for a trained network
    trained = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    kept, reset = pretraining_module.reinitialize_after(model, "resnet18", 4, seed=1, trained_share=share)
    assert kept == ["conv1+bn1", "layer1", "layer2", "layer3"] and reset == ["layer4"]
    torch.manual_seed(1)
    fresh = torchvision.models.resnet18(num_classes=10).state_dict()
    state = model.state_dict()
    weight = "layer4.1.conv2.weight"
    assert torch.equal(state[weight], share * trained[weight] + (1 - share) * fresh[weight])
    if share == 0.0:
        assert torch.equal(state[weight], fresh[weight])
    assert torch.equal(state["layer4.0.bn1.running_var"], fresh["layer4.0.bn1.running_var"])  # re-estimated later
    assert torch.equal(state["layer3.1.conv2.weight"], trained["layer3.1.conv2.weight"])  # kept as trained


def test_a_resumed_pretraining_gives_the_backbone_of_an_uninterrupted_one(tmp_path, monkeypatch):
    uninterrupted = pretrain("resnet18", progress=False, cache_dir=tmp_path / "whole", **TINY)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt  # stopped after the last epoch's checkpoint, before the BatchNorm statistics

    with monkeypatch.context() as patch:
        patch.setattr(pretraining_module, "recalibrate_batchnorm", stop)
        with pytest.raises(KeyboardInterrupt):
            pretrain("resnet18", progress=False, cache_dir=tmp_path / "stopped", **TINY)
    resumed = pretrain("resnet18", progress=False, cache_dir=tmp_path / "stopped", **TINY)
    first, second = (torch.load(b.path, weights_only=True) for b in (uninterrupted, resumed))
    assert list(first) == list(second) and all(torch.equal(first[k], second[k]) for k in first)


def test_a_backbone_of_another_source_or_generator_version_is_not_reused(cache_dir, monkeypatch):
    old = pretrain("resnet18", "synthetic-source", progress=False, **TINY)
    assert old.card["source"] == "synthetic-source" and "generator" not in old.card
    new_path = pretraining_module.backbone_path("resnet18", recipe=TINY, cache_dir=cache_dir)
    assert new_path != old.path and new_path.name.startswith("resnet18-fractals-")
    monkeypatch.setattr(formulas, "VERSION", formulas.VERSION + 1)  # the images changed: a new key
    assert pretraining_module.backbone_path("resnet18", recipe=TINY, cache_dir=cache_dir) != new_path
    monkeypatch.undo()
    monkeypatch.setattr(formulas, "GREY_SHARE", formulas.GREY_SHARE + 0.1)  # a setting changed: a new key too
    assert pretraining_module.backbone_path("resnet18", recipe=TINY, cache_dir=cache_dir) != new_path


def test_a_damaged_backbone_is_trained_again(cache_dir):
    backbone = pretrain("resnet18", progress=False, **TINY)
    backbone.path.write_bytes(b"broken")
    assert pretrain("resnet18", progress=False, **TINY).path.stat().st_size > 1000


def test_pretrain_command_and_bad_recipe(cache_dir, capsys):
    assert main(["pretrain", "--classes", "40", "--epochs", "1", "--train-size", "200", "--test-size", "50",
                 "--batch-size", "50"]) == 0
    out = capsys.readouterr().out
    assert str(cache_dir / "pretrained") in out and "source test accuracy" in out
    assert "trained: conv1+bn1, layer1, layer2, layer3; layer4: 25% trained weights, 75% random" in out
    with pytest.raises(ValueError, match="^epochs="):
        pretrain("resnet18", epochs=0)
    with pytest.raises(ValueError, match="^classes=1.5: expected a positive integer"):
        pretrain("resnet18", classes=1.5)
    with pytest.raises(ValueError, match="^recipe="):
        pretrain("resnet18", recipe="longest")
    for share in (1.5, -0.1, "half", True):
        with pytest.raises(ValueError, match=r"^trained_share=.*: expected a number from 0 \(random weights\) to 1"):
            pretrain("resnet18", trained_share=share)
    with pytest.raises(ValueError, match="^epoch: not a pretraining setting"):
        pretrain("resnet18", epoch=3)
    with pytest.raises(ValueError, match="^source="):
        pretrain("resnet18", "no-such-folder")
    with pytest.raises(ValueError, match="^arch="):
        pretrain("resnet1")
    with pytest.raises(SystemExit):
        main(["pretrain", "--keep-blocks", "0"])
    assert "keep_blocks=0: expected a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--trained-share", "2"])
    assert "trained_share=2.0: expected a number from 0" in capsys.readouterr().err


def _never_pretrain(*args, **kwargs):
    raise AssertionError("pretrained instead of installed from the bundle")


def test_the_default_backbone_installs_from_its_bundle_into_an_empty_cache(cache_dir, monkeypatch, caplog):
    caplog.set_level("INFO", logger="pystatsml_tl")
    monkeypatch.setattr(pretraining_module, "train_val_model", _never_pretrain)
    backbone = pretrain("resnet18", progress=False)
    assert backbone.path.parent == cache_dir / "pretrained" and backbone.card["bundled"]
    assert "Installed the offline backbone bundled with the package" in caplog.text
    state = torch.load(backbone.path, weights_only=True)
    learned, card = bundles.find_bundle(backbone.path.stem)
    assert bundles.state_digest(state) == card["state_digest"] == backbone.card["state_digest"]
    assert all(torch.equal(state[name], tensor) for name, tensor in learned.items())
    assert all(name.startswith("layer4.") for name in card["redrawn"])
    assert card["source_test_acc"] > 0.5 and card["kept_blocks"] == ["conv1+bn1", "layer1", "layer2", "layer3"]
    assert card["reinitialized_blocks"] == ["layer4"] and card["trained_share"] == 0.25
    torch.manual_seed(card["seed"] + 1)
    fresh = torchvision.models.resnet18(num_classes=10).state_dict()
    mixed, drawn = state["layer4.1.conv2.weight"].flatten(), fresh["layer4.1.conv2.weight"].flatten()
    # a quarter trained, three quarters the seeded draw: close to the draw, not the draw
    assert 0.8 < torch.corrcoef(torch.stack([mixed, drawn]))[0, 1] < 0.999
    assert not torch.equal(state["layer4.0.bn1.running_var"], fresh["layer4.0.bn1.running_var"])  # measured
    caplog.clear()
    assert pretrain("resnet18", progress=False).card == backbone.card  # found in the cache the next time
    assert "Installed" not in caplog.text


@pytest.mark.parametrize("share", [0.0, 0.25])
def test_a_bundle_rebuilds_its_backbone_and_one_that_does_not_is_pretrained_again(cache_dir, tmp_path, monkeypatch,
                                                                                  caplog, share):
    caplog.set_level("INFO", logger="pystatsml_tl")
    recipe = TINY | {"trained_share": share}
    trained = pretrain("resnet18", progress=False, **recipe)
    original = torch.load(trained.path, weights_only=True)
    monkeypatch.setattr(bundles, "BUNDLE_DIR", tmp_path / "bundles")
    bundle = pretraining_module.bundle_backbone(trained)
    redrawn = json.loads(bundle.with_suffix(".json").read_text())["redrawn"]
    if share == 0:  # layer4 is a seeded draw: left out, drawn again on install
        assert bundle.stat().st_size < trained.path.stat().st_size / 3 and "layer4.1.conv2.weight" in redrawn
    else:  # layer4 mixes trained and random weights: bundled whole
        assert not redrawn
    trained.path.unlink()
    with monkeypatch.context() as patch:
        patch.setattr(pretraining_module, "train_val_model", _never_pretrain)
        installed = pretrain("resnet18", progress=False, **recipe)
    rebuilt = torch.load(installed.path, weights_only=True)
    assert list(rebuilt) == list(original) and all(torch.equal(rebuilt[k], original[k]) for k in original)
    card = json.loads(bundle.with_suffix(".json").read_text())
    bundle.with_suffix(".json").write_text(json.dumps(card | {"state_digest": "0" * 32}))
    installed.path.unlink()
    caplog.clear()
    again = pretrain("resnet18", progress=False, **recipe)
    assert "does not rebuild exactly" in caplog.text and "bundled" not in again.card


def test_pretrained_backbone_transfers_to_the_synthetic_target():
    """The offline lesson: features learned on the source task help on the disjoint target task."""
    base = profile_parameters("smoke", device="cpu")
    acc = {name: run_experiment(base, experiment=name, log_interval=None).test.accuracy
           for name in ("extractor-sgd", "finetune-sgd", "scratch")}
    assert acc["extractor-sgd"] >= 3 * 0.1
    assert acc["finetune-sgd"] > acc["scratch"]
