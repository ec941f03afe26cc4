"""Speed of this package against the lesson's procedure, side by side on the same machine and data.

Each measurement runs in its own child process (so its peak memory is its own) on the same
synthetic CIFAR-sized data, ResNet18 with random weights (speed does not depend on them):

- ``tutorial``: the lesson's procedure, rewritten in a few lines: per-image PIL -> ToTensor ->
  Normalize in a DataLoader, and its training loop (``loss.item()`` every batch, the frozen
  backbone left in train mode and run every epoch);
- ``package``: ``pystatsml_tl`` in process (tensor-resident batches; for the extractor, features
  computed once, by a copy of the backbone with BatchNorm folded into the convolutions, and kept
  on disk, so the second extractor experiment reuses them), with ``precision`` fp32 and bf16;
- ``command``: both extractor experiments through ``pystatsml-tl run`` (notebooks, report): the
  in-run seconds of each from ``runs.csv`` and the whole command's wall time;
- ``floor``: one forward pass of the plain backbone over all the images (fp32, channels_last, no
  grad), already normalized, nothing else.

    python benchmarks/speed.py --which extractor,command,bf16    # 50000/10000 images, 5 epochs (~40 min on 2 cores)
    python benchmarks/speed.py --train 5000 --test 1000 --epochs 2     # a quick look

Every measurement is repeated (``--repeats``, default 3), each time in a fresh process with an
empty feature cache; the table gives the minimum and the median wall seconds, images per second
(image passes, train + test, per second, from the median) and peak memory, then the ratios of
the medians.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def tutorial_procedure(config: dict) -> dict:
    """The lesson's data pipeline and training loop, on the synthetic data."""
    import torch
    import torchvision
    from PIL import Image
    from torch import nn
    from torchvision import transforms

    from pystatsml_tl.data.synthetic import make_synthetic

    class PILDataset(torch.utils.data.Dataset):  # what torchvision's CIFAR10 does per image
        def __init__(self, data, targets, transform):
            self.data, self.targets, self.transform = data, targets, transform

        def __len__(self):
            return len(self.data)

        def __getitem__(self, index):
            return self.transform(Image.fromarray(self.data[index])), int(self.targets[index])

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    sizes = {"train": config["train"], "test": config["test"]}
    loaders = {
        split: torch.utils.data.DataLoader(PILDataset(*make_synthetic("target", n, seed=0, split=split), transform),
                                           batch_size=config["batch_size"], shuffle=split == "train")
        for split, n in sizes.items()}
    device = torch.device(config["device"])
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    if config["strategy"] == "extractor":
        for param in model.parameters():
            param.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, 10)
    model = model.to(device)
    trained = model.fc.parameters() if config["strategy"] == "extractor" else model.parameters()
    optimizer = (torch.optim.SGD(trained, lr=1e-3, momentum=0.9) if config["optimizer"] == "sgd"
                 else torch.optim.Adam(trained, lr=1e-3))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
    criterion = nn.CrossEntropyLoss()
    best = (0.0, None)  # (accuracy, weights): the lesson keeps a copy of the best weights
    started = time.time()
    for _ in range(config["epochs"]):
        for phase in ("train", "test"):
            model.train(phase == "train")
            running_loss, running_corrects = 0.0, 0
            for inputs, labels in loaders[phase]:
                inputs, labels = inputs.to(device), labels.to(device)
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = criterion(outputs, labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels.data)
            if phase == "train":
                scheduler.step()
            epoch_acc = running_corrects.double().item() / sizes[phase]
            if phase == "test" and epoch_acc > best[0]:
                best = (epoch_acc, copy.deepcopy(model.state_dict()))
    return {"seconds": time.time() - started, "test_acc": best[0]}


def floor_procedure(config: dict) -> dict:
    """One forward pass of ResNet18 (fp32, channels_last, eval, no grad) over every image."""
    import torch
    import torchvision

    from pystatsml_tl.data.loaders import BatchTransform
    from pystatsml_tl.data.synthetic import make_synthetic

    transform = BatchTransform("tutorial", 32)
    batches = []
    for split, n in (("train", config["train"]), ("test", config["test"])):
        images = torch.from_numpy(make_synthetic("target", n, seed=0, split=split)[0]).permute(0, 3, 1, 2)
        batches += [transform(images[i:i + config["batch_size"]]).contiguous(memory_format=torch.channels_last)
                    for i in range(0, n, config["batch_size"])]
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    model = model.to(memory_format=torch.channels_last).eval()
    started = time.time()
    with torch.no_grad():
        for batch in batches:
            model(batch)
    return {"seconds": time.time() - started, "test_acc": float("nan")}


def package_procedure(config: dict) -> dict:
    """The same experiment through pystatsml_tl."""
    from pystatsml_tl.runs.experiments import build_model, prepare_data, train_experiment
    from pystatsml_tl.runs.parameters import validate_parameters

    experiment = f"{config['strategy']}-{config['optimizer']}"
    params = validate_parameters({
        "experiment": experiment, "dataset": "synthetic", "weights": "none", "epochs": config["epochs"],
        "batch_size": config["batch_size"], "val_fraction": 0.0, "train_subset": config["train"],
        "test_subset": config["test"], "progress": False, "device": config["device"],
        "precision": config.get("precision", "fp32")})
    data = prepare_data(params)  # generating the synthetic images is timed by neither procedure
    model = build_model(params, data.num_classes)
    started = time.time()
    result = train_experiment(params, data, model, log_interval=None)
    return {"seconds": time.time() - started, "test_acc": result.test.accuracy,
            "feature_cache_reused": None if result.feature_cache is None else result.feature_cache.reused}


def command_procedure(config: dict) -> dict:
    """Both extractor experiments through ``pystatsml-tl run`` (papermill notebooks, report): the
    whole command's wall time, each run's in-run seconds from ``runs.csv``, and the peak memory of
    the largest process of the command (its notebook kernels included)."""
    import csv

    with tempfile.TemporaryDirectory() as output_dir:
        command = [sys.executable, "-m", "pystatsml_tl", "run", "--profile", "smoke", "--experiments",
                   "extractor-sgd,extractor-adam", "--seeds", "1", "--output-dir", output_dir]
        for name, value in (("weights", "none"), ("train_subset", config["train"]), ("test_subset", config["test"]),
                            ("epochs", config["epochs"]), ("batch_size", config["batch_size"]),
                            ("val_fraction", 0), ("device", config["device"])):
            command += ["--set", f"{name}={value}"]
        started = time.time()
        subprocess.run(command, check=True, capture_output=True, text=True)
        seconds = time.time() - started
        with open(os.path.join(output_dir, "runs.csv"), newline="") as handle:
            rows = {row["experiment"]: row for row in csv.DictReader(handle)}
    return {"seconds": seconds, "test_acc": float("nan"),
            "children_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "in_run": {name: {"seconds": float(row["seconds"]), "test_acc": float(row["test_acc"]) / 100}
                       for name, row in rows.items()}}


def run_child(config: dict, cache_dir: str) -> dict:
    """Run one measurement in a fresh Python process; return what it reports."""
    env = dict(os.environ, PYSTATSML_TL_CACHE=cache_dir)
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(config: dict) -> None:
    procedures = {"tutorial": tutorial_procedure, "package": package_procedure, "floor": floor_procedure,
                  "command": command_procedure}
    result = procedures[config["procedure"]](config)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=50_000, help="training images (default 50000)")
    parser.add_argument("--test", type=int, default=10_000, help="test images (default 10000)")
    parser.add_argument("--finetune-train", type=int, default=None,
                        help="training images for fine-tuning (default --train)")
    parser.add_argument("--finetune-test", type=int, default=None, help="test images for fine-tuning (default --test)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--which", default="extractor,bf16,finetune",
                        help="comma-separated among extractor (with the floor), command (both extractor "
                             "experiments through pystatsml-tl run), bf16 (the package's extractor, and "
                             "with finetune its fine-tuning, in precision=bf16), finetune")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return
    for name in ("train", "test", "epochs", "batch_size", "repeats"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive integer")
    base = {"epochs": args.epochs, "batch_size": args.batch_size, "device": args.device}
    runs: dict[str, list[dict]] = {}  # label -> one result per repeat

    def measure(label: str, config: dict, cache_dir: str) -> None:
        result = config | run_child(config, cache_dir)
        runs.setdefault(label, []).append(result)
        print(f"done: {label} {result['seconds']:.1f}s", file=sys.stderr)

    for _ in range(args.repeats):  # interleaved, so that a slower spell of the machine hits every row alike
        with tempfile.TemporaryDirectory() as cache_dir:
            if "extractor" in args.which:
                sizes = {"train": args.train, "test": args.test}
                measure("floor", base | sizes | {"procedure": "floor", "strategy": "floor", "optimizer": "-"},
                        cache_dir)
                for optimizer in ("sgd", "adam"):
                    config = base | sizes | {"procedure": "tutorial", "strategy": "extractor", "optimizer": optimizer}
                    measure(f"tutorial extractor-{optimizer}", config, cache_dir)
                for optimizer in ("sgd", "adam"):  # adam reuses the features sgd computed
                    config = base | sizes | {"procedure": "package", "strategy": "extractor", "optimizer": optimizer}
                    measure(f"package extractor-{optimizer}", config, cache_dir)
            if "command" in args.which:
                with tempfile.TemporaryDirectory() as command_cache:
                    config = base | {"train": args.train, "test": args.test, "procedure": "command",
                                     "strategy": "extractor", "optimizer": "sgd,adam"}
                    result = config | run_child(config, command_cache)
                    peak = max(result["peak_mib"], result["children_peak_mib"])
                    for name, in_run in result.pop("in_run").items():
                        label = f"command {name} (in-run seconds)"
                        runs.setdefault(label, []).append(result | in_run | {"peak_mib": peak})
                    runs.setdefault("command, whole (both extractor experiments)", []).append(
                        result | {"peak_mib": peak})
                    print(f"done: command {result['seconds']:.1f}s", file=sys.stderr)
            if "bf16" in args.which:
                with tempfile.TemporaryDirectory() as bf16_cache:
                    config = base | {"train": args.train, "test": args.test, "procedure": "package",
                                     "strategy": "extractor", "optimizer": "sgd", "precision": "bf16"}
                    measure("package extractor-sgd bf16", config, bf16_cache)
            if "finetune" in args.which:
                sizes = {"train": args.finetune_train or args.train, "test": args.finetune_test or args.test}
                for procedure in ("tutorial", "package"):
                    config = base | sizes | {"procedure": procedure, "strategy": "finetune", "optimizer": "sgd"}
                    measure(f"{procedure} finetune-sgd", config, cache_dir)
                if "bf16" in args.which:
                    measure("package finetune-sgd bf16", config | {"precision": "bf16"}, cache_dir)
    print_table(runs)


def print_table(runs: dict[str, list[dict]]) -> None:
    """The table (min and median of the repeats) and the ratios of the medians."""
    import statistics

    print("| run | images (train/test) x epochs | repeats | wall s min | wall s median | images/s | peak MiB "
          "| test acc |")
    print("|---|---|---|---|---|---|---|---|")
    median = {label: statistics.median(r["seconds"] for r in results) for label, results in runs.items()}
    for label, results in runs.items():
        r = results[0]
        passes = (r["train"] + r["test"]) * (1 if r["procedure"] == "floor" else r["epochs"])
        passes *= 2 if label.startswith("command, whole") else 1
        note = " (features reused from disk)" if r.get("feature_cache_reused") else ""
        accuracy = "-" if r["procedure"] == "floor" or label.startswith("command, whole") else \
            f"{100 * statistics.median(x['test_acc'] for x in results):.1f}"
        print(f"| {label}{note} | {r['train']}/{r['test']} x {1 if r['procedure'] == 'floor' else r['epochs']} "
              f"| {len(results)} | {min(x['seconds'] for x in results):.1f} | {median[label]:.1f} "
              f"| {passes / median[label]:.0f} | {max(x['peak_mib'] for x in results):.0f} | {accuracy} |")
    print()

    def ratio(numerator: list[str], denominator: list[str]) -> float:
        return sum(median[k] for k in numerator) / sum(median[k] for k in denominator)

    if "tutorial extractor-sgd" in median:
        tutorial, package = "tutorial extractor-", "package extractor-"
        both = ratio([tutorial + "sgd", tutorial + "adam"], [package + "sgd", package + "adam"])
        print(f"extractor, one experiment: {ratio([tutorial + 'sgd'], [package + 'sgd']):.1f}x less wall time "
              f"than the tutorial's procedure; both: {both:.1f}x")
        print(f"extractor against the floor (one forward pass): {ratio([package + 'sgd'], ['floor']):.2f}x the floor")
        if "package extractor-sgd bf16" in median:
            print(f"extractor with precision=bf16: {ratio([tutorial + 'sgd'], ['package extractor-sgd bf16']):.1f}x "
                  "less wall time than the tutorial's procedure")
    if "command extractor-sgd (in-run seconds)" in median and "tutorial extractor-sgd" in median:
        tutorial = ["tutorial extractor-sgd", "tutorial extractor-adam"]
        print(f"through the command: extractor-sgd in-run "
              f"{ratio(tutorial[:1], ['command extractor-sgd (in-run seconds)']):.1f}x the tutorial's procedure; "
              f"the whole command {ratio(tutorial, ['command, whole (both extractor experiments)']):.1f}x the two "
              "tutorial runs")
    if "tutorial finetune-sgd" in median:
        print(f"fine-tuning: the package is {ratio(['tutorial finetune-sgd'], ['package finetune-sgd']):.2f}x the "
              "tutorial's speed (per epoch, same images)")
        if "package finetune-sgd bf16" in median:
            bf16 = ratio(["tutorial finetune-sgd"], ["package finetune-sgd bf16"])
            print(f"fine-tuning with precision=bf16: {bf16:.2f}x the tutorial's speed")


if __name__ == "__main__":
    main()
