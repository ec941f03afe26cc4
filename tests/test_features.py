import pytest
import torch
from torch import nn

from pystatsml_tl import features as features_module
from pystatsml_tl import load_data, make_model, train_val_model
from pystatsml_tl.features import backbone_fingerprint, cached_feature_loaders
from pystatsml_tl.runs.experiments import run_experiment


def small_data(seed=0):
    return load_data("synthetic", batch_size=20, train_subset=120, test_subset=40, val_fraction=0.25, seed=seed)


def train_head(model, loaders, seed=0):
    head = model.fc
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9)
    return train_val_model(model if loaders is None else head, nn.CrossEntropyLoss(), optimizer, loaders, 3,
                           device="cpu", seed=seed, progress=False)


def test_cached_features_train_the_same_head_as_the_full_network(cache_dir):
    # both in fp32, whatever auto picks here: equal up to float rounding is a claim about fp32
    data = small_data()
    full = make_model("resnet18", weights="none", trainable=("head",), seed=1)
    optimizer = torch.optim.SGD(full.fc.parameters(), lr=0.01, momentum=0.9)
    _, full_losses, full_acc = train_val_model(full, nn.CrossEntropyLoss(), optimizer, data, 3, device="cpu",
                                               seed=0, progress=False, precision="fp32")
    cached = make_model("resnet18", weights="none", trainable=("head",), seed=1)
    loaders, info = cached_feature_loaders(cached, data, device="cpu", precision="fp32")
    assert not info.reused and info.bytes > 0
    optimizer = torch.optim.SGD(cached.fc.parameters(), lr=0.01, momentum=0.9)
    _, losses, acc = train_val_model(cached.fc, nn.CrossEntropyLoss(), optimizer, loaders, 3, device="cpu", seed=0,
                                     progress=False, precision="fp32")
    for phase in full_losses:
        assert losses[phase] == pytest.approx(full_losses[phase], rel=1e-4, abs=1e-5)
        assert acc[phase] == pytest.approx(full_acc[phase], abs=1 / 40)
    assert torch.allclose(cached.fc.weight, full.fc.weight, atol=1e-4)


def test_second_extractor_reuses_the_disk_cache(cache_dir, monkeypatch):
    params = dict(experiment="extractor-sgd", dataset="synthetic", weights="none", epochs=2, batch_size=20,
                  train_subset=100, test_subset=40, progress=False, device="cpu")
    first = run_experiment(params, log_interval=None)
    assert not first.feature_cache.reused and first.feature_cache.computed == 140
    assert all(path.startswith(str(cache_dir)) for path in first.feature_cache.paths)

    def fail(*args, **kwargs):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(features_module, "extract_features", fail)
    second = run_experiment(params | {"experiment": "extractor-adam"}, log_interval=None)
    assert second.feature_cache.reused and second.feature_cache.paths == first.feature_cache.paths
    assert second.metrics()["feature_cache"]["bytes"] > 0


def test_corrupt_or_mismatched_entries_are_recomputed(cache_dir):
    data = small_data()
    model = make_model("resnet18", weights="none", trainable=("head",), seed=1)
    _, info = cached_feature_loaders(model, data, device="cpu")
    path = info.paths[0]
    with open(path, "r+b") as f:
        f.truncate(100)
    loaders, info = cached_feature_loaders(model, data, device="cpu")
    assert not info.reused
    assert cached_feature_loaders(model, data, device="cpu")[1].reused
    # an entry that claims the right place but was made for something else
    entry = torch.load(path, weights_only=True)
    entry["features"] = torch.zeros_like(entry["features"])
    entry["key"] = entry["key"].replace(backbone_fingerprint(model), "0" * 32)
    torch.save(entry, path)
    loaders, info = cached_feature_loaders(model, data, device="cpu")
    assert not info.reused and loaders["train"].inputs.abs().sum() > 0 and info.computed == 120


def test_cache_key_follows_the_weights_and_the_data(cache_dir):
    data = small_data()
    a = make_model("resnet18", weights="none", trainable=("head",), seed=1)
    b = make_model("resnet18", weights="none", trainable=("head",), seed=2)
    paths_a = cached_feature_loaders(a, data, device="cpu")[1].paths
    assert len(paths_a) == 2  # two image sets: training (train and val splits share it) and test
    assert cached_feature_loaders(b, data, device="cpu")[1].paths != paths_a
    assert cached_feature_loaders(a, small_data(seed=1), device="cpu")[1].paths != paths_a
    assert cached_feature_loaders(a, data, description={"image_size": 64}, device="cpu")[1].paths != paths_a


def test_cache_off_writes_nothing(cache_dir):
    _, info = cached_feature_loaders(make_model("resnet18", weights="none", trainable=("head",)), small_data(),
                                     cache=False, device="cpu")
    assert info.paths == [] and info.computed == 160 and not (cache_dir / "features").exists()


def test_extractor_with_augmentation_runs_the_whole_network(cache_dir, caplog):
    caplog.set_level("INFO", logger="pystatsml_tl")
    result = run_experiment(experiment="extractor-adam", dataset="synthetic", weights="none", epochs=1,
                            batch_size=20, train_subset=60, test_subset=20, augment=True, progress=False,
                            device="cpu", log_interval=None)
    assert result.feature_cache is None
    assert "no feature cache" in caplog.text


def test_every_seed_and_split_of_one_image_set_shares_one_entry(cache_dir, fake_cifar10, monkeypatch):
    root, _ = fake_cifar10  # 100 training and 30 test images in CIFAR-10's own format
    model = make_model("resnet18", weights="none", trainable=("head",), seed=1)

    def cifar(seed, subset, test_subset=10):
        return load_data("cifar10", data_dir=root, batch_size=20, train_subset=subset, test_subset=test_subset,
                         seed=seed)

    first, info = cached_feature_loaders(model, cifar(0, 40), device="cpu")
    assert len(info.paths) == 2 and info.computed == 40 + 10  # the train pool and the test images
    reference, _ = cached_feature_loaders(model, cifar(0, 40), cache=False, device="cpu")
    for split in first:
        assert torch.equal(first[split].inputs, reference[split].inputs)
        assert torch.equal(first[split].labels, reference[split].labels)
    _, again = cached_feature_loaders(model, cifar(1, 40), device="cpu")  # another seed: another subset
    assert again.paths == info.paths and 0 < again.computed < 50
    _, full = cached_feature_loaders(model, cifar(2, None, None), device="cpu")
    assert full.paths == info.paths and full.computed < 130

    def fail(*args, **kwargs):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(features_module, "extract_features", fail)
    for seed in range(4):  # every seed, subset and split is now served from the entry
        assert cached_feature_loaders(model, cifar(seed, 60), device="cpu")[1].reused


def test_bf16_features_are_close_to_fp32_and_cached_apart(cache_dir):
    data = small_data()
    model = make_model("resnet18", weights="none", trainable=("head",), seed=1)
    fp32, info32 = cached_feature_loaders(model, data, device="cpu", precision="fp32")
    bf16, info16 = cached_feature_loaders(model, data, device="cpu", precision="bf16")
    assert info16.computed == info32.computed and set(info16.paths).isdisjoint(info32.paths)
    for split in fp32:
        a, b = fp32[split].inputs, bf16[split].inputs
        assert not torch.equal(a, b)  # bf16 does change the last digits...
        # ...but little: bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9, about 0.2 % per
        # operation); through ResNet18's ~20 layers the error stays a few percent of the features' norm
        assert torch.linalg.norm(a - b) / torch.linalg.norm(a) < 0.05
        cosine = torch.nn.functional.cosine_similarity(a, b, dim=1)
        assert cosine.min() > 0.99
    assert cached_feature_loaders(model, data, device="cpu", precision="bf16")[1].reused


def test_unknown_precision_fails_before_any_work(cache_dir):
    from pystatsml_tl.runs.parameters import validate_parameters

    with pytest.raises(ValueError, match=r"^precision='foo': expected auto \| fp32 \| bf16"):
        validate_parameters({"precision": "foo"})
    with pytest.raises(ValueError, match="^precision='fp16'"):
        cached_feature_loaders(make_model("resnet18", weights="none", trainable=("head",)), small_data(),
                               device="cpu", precision="fp16")
    assert not (cache_dir / "features").exists()
