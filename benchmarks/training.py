"""Fine-tuning speed: training images per second of the lesson's loop, this package's loop and the floor.

Every row trains ResNet18 (random weights: speed does not depend on them; 10 classes) on
synthetic images of one size, one optimizer step per batch (SGD, momentum 0.9), and counts the
images of the timed batches per second (one untimed batch first, for the one-time set-up):

- ``tutorial``: the lesson's procedure: per-image PIL -> (Resize) -> ToTensor -> Normalize in a
  DataLoader, and its train phase (NCHW, fp32, ``loss.item()`` every batch);
- ``package fp32`` / ``package bf16``: :func:`pystatsml_tl.training.loop.run_epoch`, the loop
  ``train_val_model`` runs, on the package's loader (uint8 images in memory, transformed per batch,
  channels-last), with ``precision`` fp32 or bf16 (autocast, weights and optimizer state fp32);
- ``floor ...``: forward, loss, backward and step on batches already in memory, normalized and
  in the layout named, nothing else: NCHW or channels-last (NHWC), fp32 or bf16 autocast, and
  with ``--compile`` the channels-last model under ``torch.compile`` in each precision measured (its
  compile time is printed apart, not counted in the row) and SGD with ``fused=True``.

Rows are interleaved: each repeat runs every row once, so a drift of the machine's speed reaches
every row alike; the table gives the minimum and the median images/s of the repeats, and the
ratios of the medians to the tutorial's loop and to the fp32 channels-last floor.

    python benchmarks/training.py                                  # 32, 128 and 224 px
    python benchmarks/training.py --sizes 32 --repeats 5 --compile # 32 px, torch.compile too
    python benchmarks/training.py --sizes 128,224 --precisions fp32  # no bf16 rows (a CPU without bf16 units)
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms

from pystatsml_tl.data.datasets import load_data
from pystatsml_tl.precision import BF16_CPU_FLAGS, auto_precision, capability, cpu_flags
from pystatsml_tl.provenance import cpu_model
from pystatsml_tl.training.loop import run_epoch

BATCHES = {32: (100, 20), 128: (50, 6), 224: (16, 6)}
"""Image size -> (batch size, timed batches per measurement)."""
FLAGS = ("avx2", "avx512f", *BF16_CPU_FLAGS, "amx_tile")
COMPILED: dict[tuple[int, str], nn.Module] = {}
"""(image size, precision) -> ResNet18 under torch.compile, compiled once by :func:`compile_seconds`."""


def resnet18(seed: int = 0) -> nn.Module:
    """ResNet18 with random weights and a 10-class head."""
    torch.manual_seed(seed)
    return torchvision.models.resnet18(num_classes=10)


def sgd(model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
    """The lesson's optimizer: SGD, lr 1e-3, momentum 0.9."""
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, **({"fused": True} if fused else {}))


def synthetic_uint8(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded uint8 images (N, size, size, 3) and labels."""
    gen = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=gen),
            torch.randint(0, 10, (n,), generator=gen))


def tutorial_row(size: int, batch: int, count: int) -> float:
    """The lesson's data pipeline and train phase; seconds of the timed batches."""
    images, labels = synthetic_uint8(batch * (count + 1), 32)

    class PILDataset(torch.utils.data.Dataset):  # what torchvision's CIFAR10 does per image
        def __len__(self):
            return len(images)

        def __getitem__(self, index):
            return transform(Image.fromarray(images[index].numpy())), int(labels[index])

    steps = ([transforms.Resize(size)] if size != 32 else []) + [transforms.ToTensor(),
                                                                 transforms.Normalize((0.5,) * 3, (0.5,) * 3)]
    transform = transforms.Compose(steps)
    loader = torch.utils.data.DataLoader(PILDataset(), batch_size=batch, shuffle=True)
    model, criterion = resnet18(), nn.CrossEntropyLoss()
    optimizer = sgd(model)
    model.train()
    started = None
    for i, (inputs, targets) in enumerate(loader):
        if i == 1:
            started = time.perf_counter()
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        loss.item()
    return time.perf_counter() - started


def package_row(size: int, batch: int, count: int, precision: str) -> float:
    """:func:`run_epoch` on the package's loader in ``precision``; seconds of the timed batches."""
    data = load_data("synthetic", batch_size=batch, train_subset=batch * count, val_fraction=0.0,
                     test_subset=batch, image_size=size, seed=0)
    model, criterion = resnet18().to(memory_format=torch.channels_last), nn.CrossEntropyLoss()
    optimizer = sgd(model)
    device = torch.device("cpu")
    first = load_data("synthetic", batch_size=batch, train_subset=batch, val_fraction=0.0, test_subset=batch,
                      image_size=size, seed=1)["train"]
    run_epoch(model, first, criterion, device, optimizer, precision=precision)  # the untimed batch
    started = time.perf_counter()
    run_epoch(model, data["train"], criterion, device, optimizer, precision=precision)
    return time.perf_counter() - started


def floor_row(size: int, batch: int, count: int, layout: str, precision: str, compiled: bool = False,
              fused: bool = False) -> float:
    """Forward, loss, backward, step on normalized batches in memory; seconds of the timed batches."""
    memory_format = torch.channels_last if layout == "NHWC" else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(batch, 3, size, size, generator=gen).contiguous(memory_format=memory_format),
                torch.randint(0, 10, (batch,), generator=gen)) for _ in range(count + 1)]
    model = COMPILED[size, precision] if compiled else resnet18().to(memory_format=memory_format)
    optimizer = sgd(model, fused=fused)
    model.train()
    started = None
    for i, (x, y) in enumerate(batches):
        if i == 1:
            started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()
    return time.perf_counter() - started


def rows(size: int, compile_: bool, precisions: tuple[str, ...] = ("fp32", "bf16")) -> dict[str, Callable[[], float]]:
    """The measurements at one image size, by row name (the bf16 rows only if ``precisions`` has bf16)."""
    batch, count = BATCHES[size]
    found = {
        "tutorial": lambda: tutorial_row(size, batch, count),
        "package fp32": lambda: package_row(size, batch, count, "fp32"),
        "package bf16": lambda: package_row(size, batch, count, "bf16"),
        "floor fp32 NCHW": lambda: floor_row(size, batch, count, "NCHW", "fp32"),
        "floor fp32 NHWC": lambda: floor_row(size, batch, count, "NHWC", "fp32"),
        "floor bf16 NHWC": lambda: floor_row(size, batch, count, "NHWC", "bf16"),
        "floor bf16 NCHW": lambda: floor_row(size, batch, count, "NCHW", "bf16"),
    }
    if "bf16" not in precisions:
        found = {name: row for name, row in found.items() if "bf16" not in name}
    if compile_:
        found["floor fp32 NHWC fused SGD"] = lambda: floor_row(size, batch, count, "NHWC", "fp32", fused=True)
        for precision in precisions:
            found[f"floor {precision} NHWC compiled"] = functools.partial(floor_row, size, batch, count, "NHWC",
                                                                          precision, compiled=True)
    return found


def compile_seconds(size: int, precision: str) -> float:
    """Seconds ``torch.compile`` takes for ResNet18's first forward and backward pass at ``size`` in
    ``precision`` (what it compiles; the optimizer step is not compiled)."""
    batch, _ = BATCHES[size]
    model = resnet18().to(memory_format=torch.channels_last).train()
    compiled = torch.compile(model)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = nn.functional.cross_entropy(compiled(x), torch.zeros(batch, dtype=torch.long))
    loss.backward()
    COMPILED[size, precision] = compiled
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="32,128,224", help="image sizes, among " + ", ".join(map(str, BATCHES)))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add torch.compile and fused-SGD floor rows")
    parser.add_argument("--precisions", default="fp32,bf16",
                        help="fp32,bf16 (default) or fp32: bf16 rows are slow where the CPU has no bf16 units")
    args = parser.parse_args()
    precisions = tuple(args.precisions.split(","))
    if not set(precisions) <= {"fp32", "bf16"} or "fp32" not in precisions:
        parser.error(f"--precisions={args.precisions!r}: expected fp32,bf16 or fp32")
    sizes = [int(s) for s in args.sizes.split(",")]
    unknown = [s for s in sizes if s not in BATCHES]
    if unknown or args.repeats < 1:
        parser.error(f"--sizes: expected some of {', '.join(map(str, BATCHES))}; --repeats: a positive integer")
    flags = cpu_flags()
    print(f"CPU: {cpu_model()}; flags: {', '.join(f for f in FLAGS if f in flags) or 'none of ' + ', '.join(FLAGS)}; "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}; capability "
          f"{capability(torch.device('cpu'))}, precision auto -> {auto_precision(torch.device('cpu'))}")
    for size in sizes:
        batch, count = BATCHES[size]
        if args.compile:
            for precision in precisions:
                print(f"{size} px: torch.compile's first step in {precision} took "
                      f"{compile_seconds(size, precision):.1f} s (not in the rows)")
        measured = rows(size, args.compile, precisions)
        speeds: dict[str, list[float]] = {name: [] for name in measured}
        for repeat in range(args.repeats):
            for name, row in measured.items():
                speeds[name].append(batch * count / row())
                print(f"  {size} px, repeat {repeat + 1}/{args.repeats}: {name} {speeds[name][-1]:.1f} images/s",
                      file=sys.stderr, flush=True)
        medians = {name: statistics.median(v) for name, v in speeds.items()}
        print(f"\n{size} px, batch {batch}, {count} timed batches, {args.repeats} repeats (images/s)\n")
        print("| row | min | median | x tutorial | x floor fp32 NHWC |")
        print("|---|---|---|---|---|")
        for name, values in speeds.items():
            print(f"| {name} | {min(values):.1f} | {medians[name]:.1f} | {medians[name] / medians['tutorial']:.2f} "
                  f"| {medians[name] / medians['floor fp32 NHWC']:.2f} |")


if __name__ == "__main__":
    main()
