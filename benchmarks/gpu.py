"""GPU check: speed of fine-tuning and of frozen-feature extraction on CUDA, with and without
bf16 autocast and channels_last, at 32 and 224 pixels, fine-tuning under torch.compile and
through the package's own training pass in fp32 and bf16; a 2-GPU data-parallel run when there are
two GPUs; and agreement of the CUDA path with the CPU path. Prints a markdown table.

    python benchmarks/gpu.py                 # about 5 minutes on one recent GPU
    python benchmarks/gpu.py --quick         # fewer images, for a first look

Needs a CUDA device; exits 2 with one line without one. Data: the package's synthetic images
(speed does not depend on the pixels), ResNet18 with random weights, batch 256.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn


def _images(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=generator).to(device)
    y = torch.randint(0, 10, (n,), generator=generator).to(device)
    return x, y


def _model(device: torch.device, channels_last: bool) -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def images_per_second(mode: str, size: int, n: int, bf16: bool, channels_last: bool, batch: int = 256,
                      repeats: int = 3, compiled: bool = False) -> list[float]:
    """Images/s of ``mode`` (``finetune``: forward, backward, SGD step; ``extract``: forward only,
    no grad) over ``n`` images, ``repeats`` times after one warm-up pass (which, with ``compiled``,
    also compiles the model with ``torch.compile``: its time is not counted)."""
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    model = _model(device, channels_last)
    if compiled:
        model = torch.compile(model)
    x, y = _images(n, size, device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)

    def one_pass() -> None:
        model.train(mode == "finetune")
        with torch.set_grad_enabled(mode == "finetune"):
            for start in range(0, n, batch):
                with autocast:
                    out = model(x[start:start + batch])
                    loss = nn.functional.cross_entropy(out, y[start:start + batch])
                if mode == "finetune":
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        torch.cuda.synchronize()

    one_pass()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        one_pass()
        rates.append(n / (time.perf_counter() - started))
    return rates


def package_images_per_second(size: int, n: int, precision: str, batch: int = 256, repeats: int = 3) -> list[float]:
    """Images/s of the package's training pass (:func:`~pystatsml_tl.training.loop.run_epoch`, the
    loop of ``train_val_model``: batches moved from the host, channels-last) in ``precision``."""
    from pystatsml_tl.data.loaders import TensorLoader
    from pystatsml_tl.training.loop import run_epoch

    device = torch.device("cuda")
    model = _model(device, channels_last=True)
    x, y = _images(n, size, torch.device("cpu"))
    loader = TensorLoader(x, y, batch_size=batch, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    run_epoch(model, loader, criterion, device, optimizer, precision=precision)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run_epoch(model, loader, criterion, device, optimizer, precision=precision)
        rates.append(n / (time.perf_counter() - started))
    return rates


def cpu_agreement() -> float:
    """Largest relative difference between the CPU (fp32) and the CUDA (bf16 autocast, as the
    package trains on GPUs) training losses of the same small fine-tuning, same seed."""
    from pystatsml_tl.runs.experiments import run_experiment

    params = dict(experiment="finetune-sgd", dataset="synthetic", weights="none", epochs=2, batch_size=50,
                  train_subset=300, test_subset=100, progress=False, feature_cache=False)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    cpu = run_experiment(params | {"device": "cpu"}, log_interval=None).losses["train"]
    gpu = run_experiment(params | {"device": "cuda"}, log_interval=None).losses["train"]
    return max(abs(a - b) / abs(a) for a, b in zip(cpu, gpu))


def ddp_seconds() -> tuple[float, float]:
    """Wall seconds of the same fine-tuning in one process and in two (one per GPU)."""
    from pystatsml_tl.runs.experiments import run_experiment

    params = dict(experiment="finetune-sgd", dataset="synthetic", weights="none", epochs=2, batch_size=256,
                  train_subset=20000, test_subset=2000, progress=False, device="cuda")
    times = []
    for nproc in (1, 2):
        started = time.perf_counter()
        run_experiment(params | {"nproc_per_node": nproc}, log_interval=None)
        times.append(time.perf_counter() - started)
    return times[0], times[1]


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; run it on a machine with a GPU", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}; torch {torch.__version__}\n")
    print("| mode | px | bf16 | channels_last | images/s (median of 3) | min |")
    print("|---|---|---|---|---|---|")
    for size, n in ((32, 20000 if args.quick else 50000), (224, 2000 if args.quick else 10000)):
        for mode in ("finetune", "extract"):
            for bf16, channels_last in ((False, False), (True, False), (False, True), (True, True)):
                rates = images_per_second(mode, size, n, bf16, channels_last)
                print(f"| {mode} | {size} | {bf16} | {channels_last} | {statistics.median(rates):.0f} | "
                      f"{min(rates):.0f} |", flush=True)
        rates = images_per_second("finetune", size, n, True, True, compiled=True)
        print(f"| finetune, torch.compile | {size} | True | True | {statistics.median(rates):.0f} | "
              f"{min(rates):.0f} |", flush=True)
        for precision in ("fp32", "bf16"):
            rates = package_images_per_second(size, n, precision)
            print(f"| package run_epoch, precision={precision} | {size} | {precision == 'bf16'} | True | "
                  f"{statistics.median(rates):.0f} | {min(rates):.0f} |", flush=True)
    print(f"\nCPU (fp32) vs CUDA (bf16) training losses, largest relative difference: {cpu_agreement():.2e}")
    if torch.cuda.device_count() >= 2:
        one, two = ddp_seconds()
        print(f"data-parallel fine-tuning, 20000 images x 2 epochs: 1 GPU {one:.1f} s, 2 GPUs {two:.1f} s "
              f"({one / two:.2f}x)")
    else:
        print("one GPU: the 2-GPU data-parallel run is skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
