import time

import numpy as np
import pytest
import torch
from torchvision import transforms

from pystatsml_tl import ResourceUnavailableError, load_cifar10_pytorch, load_data
from pystatsml_tl.data.loaders import BatchTransform, TensorLoader, in_order, random_flip_and_crop, shard, shuffles
from pystatsml_tl.data.synthetic import TASKS, class_names, make_synthetic


def test_synthetic_is_cifar_shaped_seeded_and_prefix_stable():
    images, labels = make_synthetic("target", 1200, seed=3)
    assert images.shape == (1200, 32, 32, 3) and images.dtype == np.uint8
    assert set(labels.tolist()) == set(range(10))
    again, again_labels = make_synthetic("target", 1200, seed=3)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    prefix, _ = make_synthetic("target", 700, seed=3)
    assert np.array_equal(prefix, images[:700])
    other, _ = make_synthetic("target", 700, seed=4)
    assert not np.array_equal(other, prefix)
    test_images, _ = make_synthetic("target", 700, seed=3, split="test")
    assert not np.array_equal(test_images, prefix)


def test_source_and_target_tasks_are_disjoint_but_share_factors():
    source, target = set(TASKS["source"]), set(TASKS["target"])
    assert len(target) == 10 and len(source) >= 20 and not source & target
    assert {s for s, _ in target} <= {s for s, _ in source}
    assert {c for _, c in target} <= {c for _, c in source}
    assert len(set(class_names("source"))) == len(source)


def test_synthetic_classes_differ_in_their_pixels():
    images, labels = make_synthetic("target", 2000)
    means = np.stack([images[labels == k].reshape(-1, 3).mean(0) for k in range(10)])
    # the class colour shows in the average pixel: classes are not pure noise
    assert np.ptp(means, axis=0).max() > 10


def test_load_data_synthetic_splits_and_val_fraction():
    data = load_data("synthetic", batch_size=32, train_subset=500, test_subset=100, val_fraction=0.2, seed=1)
    assert list(data) == ["train", "val", "test"]
    assert data.sizes == {"train": 400, "val": 100, "test": 100}
    assert data.num_classes == 10 and data.classes == class_names("target")
    x, y = next(iter(data["train"]))
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
    train_imgs = {bytes(a) for a in data["train"].dataset.images.numpy()}
    val_imgs = {bytes(a) for a in data["val"].dataset.images.numpy()}
    assert not train_imgs & val_imgs
    no_val = load_data("synthetic", train_subset=500, test_subset=100, val_fraction=0)
    assert list(no_val) == ["train", "test"] and no_val.sizes["train"] == 500
    same = load_data("synthetic", batch_size=32, train_subset=500, test_subset=100, val_fraction=0.2, seed=1)
    assert torch.equal(same["val"].dataset.images, data["val"].dataset.images)


def test_tensor_loader_matches_torchvision_transforms(fake_cifar10):
    root, arrays = fake_cifar10
    data = load_data("cifar10", data_dir=root, batch_size=16, val_fraction=0)
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    images, labels = arrays["test"]
    batches = list(data["test"])
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    expected = torch.stack([reference(image) for image in images])
    assert torch.allclose(x, expected, atol=1e-6)
    assert y.tolist() == labels


def test_resize_matches_torchvision_resize():
    batch = torch.from_numpy(make_synthetic("target", 8)[0]).permute(0, 3, 1, 2)
    ours = BatchTransform("imagenet", image_size=64)(batch)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ref = transforms.Compose([transforms.Resize((64, 64), antialias=True), transforms.Normalize(mean, std)])
    expected = torch.stack([ref(image.float() / 255) for image in batch])
    assert ours.shape == (8, 3, 64, 64)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_augmentation_only_on_training_batches():
    data = load_data("synthetic", batch_size=50, train_subset=100, test_subset=50, val_fraction=0, augment=True)
    plain = BatchTransform("tutorial", 32, augment=False)
    torch.manual_seed(0)
    x_test, _ = next(iter(data["test"]))
    assert torch.equal(x_test, plain(data["test"].dataset.images[:50]))
    data["train"].shuffle = False
    x_train, _ = next(iter(data["train"]))
    assert x_train.shape == (50, 3, 32, 32)
    assert not torch.equal(x_train, plain(data["train"].dataset.images[:50]))


def test_flip_and_crop_moves_pixels_without_changing_them():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 32, 32)
    out = random_flip_and_crop(x)
    assert out.shape == x.shape
    assert out.min() >= x.min() and out.max() <= x.max()
    assert not torch.equal(out, x)


def test_cifar10_through_torchvision_and_tutorial_loader(fake_cifar10):
    root, arrays = fake_cifar10
    data = load_data("cifar10", data_dir=root, batch_size=25, val_fraction=0.1, train_subset=80)
    assert data.sizes == {"train": 72, "val": 8, "test": 30}
    assert data.classes[0] == "airplane"
    loaders, classes = load_cifar10_pytorch(root, batch_size_train=100, batch_size_test=100)
    assert classes == data.classes
    assert loaders["train"].dataset.data.shape == (100, 32, 32, 3)
    assert np.array_equal(loaders["train"].dataset.data, arrays["train"][0])
    assert loaders["test"].dataset.targets == arrays["test"][1]


def test_cifar10_offline_gives_one_clear_error(tmp_path, no_network):
    started = time.time()
    with pytest.raises(ResourceUnavailableError) as info:
        load_data("cifar10", data_dir=tmp_path / "empty")
    assert time.time() - started < 10
    message = str(info.value)
    assert "CIFAR-10" in message and str(tmp_path / "empty") in message
    assert "cifar-10-python.tar.gz" in message and "synthetic" in message


def test_image_folder(image_folder):
    data = load_data(str(image_folder), batch_size=8, image_size=24, val_fraction=0.25, augment=True)
    assert data.classes == ["blue", "green", "red"]
    assert data.sizes == {"train": 27, "val": 9, "test": 12}
    x, y = next(iter(data["train"]))
    assert x.shape == (8, 3, 24, 24) and y.dtype == torch.long


def test_evaluation_batches_are_at_least_eval_batch_size_and_training_keeps_its_own(image_folder):
    from pystatsml_tl.data.datasets import EVAL_BATCH_SIZE

    for dataset in ("synthetic", str(image_folder)):
        small = load_data(dataset, batch_size=5, train_subset=30, test_subset=20, val_fraction=0.2)
        assert small["train"].batch_size == 5
        assert small["val"].batch_size == small["test"].batch_size == EVAL_BATCH_SIZE
        large = load_data(dataset, batch_size=EVAL_BATCH_SIZE + 20, train_subset=30, test_subset=20)
        assert {large[split].batch_size for split in large} == {EVAL_BATCH_SIZE + 20}


def test_image_folder_errors(image_folder, tmp_path):
    (tmp_path / "flat" / "train").mkdir(parents=True)
    (tmp_path / "flat" / "test").mkdir()
    with pytest.raises(ValueError, match="dataset=.*class"):
        load_data(str(tmp_path / "flat"))
    with pytest.raises(ValueError, match="train/ and test/"):
        load_data(str(image_folder / "train"))
    (image_folder / "train" / "red" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="unreadable image .*broken.png"):
        load_data(str(image_folder))


@pytest.mark.parametrize("kwargs, name", [
    ({"dataset": "mnist"}, "dataset"), ({"batch_size": 0}, "batch_size"), ({"image_size": -1}, "image_size"),
    ({"val_fraction": 1.0}, "val_fraction"), ({"val_fraction": -0.1}, "val_fraction"),
    ({"normalize": "zscore"}, "normalize"), ({"train_subset": 0}, "train_subset"),
])
def test_bad_data_arguments_name_the_parameter(kwargs, name):
    kwargs = {"dataset": "synthetic"} | kwargs
    dataset = kwargs.pop("dataset")
    with pytest.raises(ValueError, match=f"^{name}="):
        load_data(dataset, **kwargs)


def test_data_dir_defaults_to_the_environment_variable(fake_cifar10, monkeypatch):
    root, arrays = fake_cifar10
    monkeypatch.setenv("PYSTATSML_TL_DATA", str(root))
    data = load_data("cifar10", val_fraction=0)
    assert data.sizes == {"train": 100, "test": 30}
    assert np.array_equal(data["test"].dataset.data, arrays["test"][0])


@pytest.mark.parametrize("kind", ["tensor", "torch"])
def test_a_torch_dataloader_and_a_tensor_loader_answer_the_same_questions(kind):
    inputs, labels = torch.arange(10.0).view(10, 1), torch.arange(10)
    if kind == "tensor":
        loader = TensorLoader(inputs, labels, 4, shuffle=True)
    else:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), batch_size=4, shuffle=True)
    assert shuffles(loader) and not shuffles(in_order(loader))
    assert torch.cat([y for _, y in in_order(loader)]).tolist() == list(range(10))
    ranks = []
    for rank in (0, 1):  # every rank seeded alike, as in a data-parallel run: the same permutation
        torch.manual_seed(0)
        ranks.append([y.tolist() for _, y in shard(loader, rank, 2)])
    assert [len(b) for b in ranks[0]] == [2, 2, 1] and [len(b) for b in ranks[1]] == [2, 2, 1]  # halves of 4, 4, 2
    assert sorted(v for rank in ranks for batch in rank for v in batch) == list(range(10))
