"""One worker of a data-parallel experiment started by torchrun, on one node or many.

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HEAD:29500 \\
        -m pystatsml_tl.worker --profile quick --experiment finetune-sgd --set arch=resnet50 \\
        --set image_size=224 --output-dir reports/resnet50

Every rank trains on its share of each global batch (``batch_size`` is the global batch); rank 0
then tests the selected model on the whole test set and writes ``metrics.json`` and the figures
into ``--output-dir``. On one machine, ``--set nproc_per_node=N`` (or ``pystatsml-tl run
--nproc-per-node N``) starts the workers itself; this entry point is for launchers that already
did (torchrun across nodes, Slurm).
"""
from __future__ import annotations

import argparse
import sys

import torch.distributed as dist


def main(argv: list[str] | None = None) -> int:
    """Parse the experiment's parameters (before joining the group), train as one rank, and let
    rank 0 test and write the outputs."""
    import time

    from .distributed import TIMEOUT, worker_device
    from .runs.experiments import build_model, prepare_data, result_of_workers, save_outputs, train_in_worker
    from .runs.parameters import PROFILES, parse_assignments, profile_parameters

    parser = argparse.ArgumentParser(prog="python -m pystatsml_tl.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="quick")
    parser.add_argument("--experiment", default="finetune-sgd")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--output-dir", required=True)
    args = parser.parse_args(argv)
    try:
        params = profile_parameters(args.profile, **(parse_assignments(args.set) | {
            "experiment": args.experiment, "output_dir": args.output_dir, "nproc_per_node": "1"}))
    except ValueError as error:
        parser.error(str(error))
    device = worker_device(params["device"])
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    started = time.time()
    try:
        outcome = train_in_worker(params, log_interval=1)
        rank = dist.get_rank()
        dist.barrier()
    finally:
        dist.destroy_process_group()
    if rank == 0:  # alone now: the test pass needs no peer
        params = params | {"device": str(device)}
        data = prepare_data(params)
        result = result_of_workers(params, data, build_model(params, data.num_classes), outcome, started, device)
        print(sorted(save_outputs(result, params["output_dir"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
