"""Data-parallel training in several processes: DistributedDataParallel, workers started by
torch.distributed's elastic launcher (the engine behind torchrun).

- :func:`launch` starts ``nproc`` workers on this machine (gloo on CPUs, nccl on GPUs), runs a
  function in each and returns rank 0's result; a worker that fails ends the run with one
  :class:`WorkerFailedError` naming its rank and error, without waiting on dead peers.
- Inside a worker, :func:`rank_batches` splits every epoch's permutation into disjoint per-rank
  shards of each global batch (``batch_size`` stays the global batch), :func:`sum_across_ranks`
  adds up the per-rank loss and accuracy counts so that histories mean what they mean in one
  process, and :func:`wrap` puts the model in DDP.
- Multi-node runs use torchrun's own rendezvous: ``torchrun --nnodes 2 --rdzv-backend c10d
  --rdzv-endpoint HOST:PORT -m pystatsml_tl.worker PARAMS.json`` (see the README).
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from .errors import first_error_line

TIMEOUT = timedelta(seconds=int(os.environ.get("PYSTATSML_TL_DIST_TIMEOUT", "300")))
"""How long a collective waits for a peer before the run fails (instead of hanging)."""


class WorkerFailedError(RuntimeError):
    """A worker of a data-parallel run failed: its rank and its error, in one line."""


def is_distributed() -> bool:
    """True inside a worker of a data-parallel run (a process group with more than one rank)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks ((0, 1) outside a data-parallel run)."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def is_main_process() -> bool:
    """True in rank 0 (or outside a data-parallel run): the process that writes files."""
    return rank_and_world()[0] == 0


def rank_batches(n: int, batch_size: int, shuffle: bool, rank: int = 0, world: int = 1) -> Iterator[torch.Tensor]:
    """Indices of this rank's share of each global batch of ``range(n)``: one permutation drawn
    from torch's global generator (the same on every rank, which is seeded alike), cut into
    batches of ``batch_size``, each cut into ``world`` near-equal, disjoint, contiguous pieces."""
    order = torch.randperm(n) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        batch = order[start:start + batch_size]
        share = math.ceil(len(batch) / world)
        piece = batch[rank * share:(rank + 1) * share]
        if len(piece):
            yield piece


class RankBatchSampler(torch.utils.data.Sampler):
    """A batch sampler that serves :func:`rank_batches` to a DataLoader (image folders)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, rank: int, world: int):
        self.n, self.batch_size, self.shuffle, self.rank, self.world = n, batch_size, shuffle, rank, world

    def __iter__(self):
        return (piece.tolist() for piece in rank_batches(self.n, self.batch_size, self.shuffle, self.rank, self.world))

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)


def sum_across_ranks(*tensors: torch.Tensor) -> None:
    """Add each tensor up over the ranks, in place (nothing outside a data-parallel run)."""
    if is_distributed():
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def synchronize() -> None:
    """Wait for every rank (nothing outside a data-parallel run)."""
    if is_distributed():
        dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` outside a data-parallel run)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def wrap(model: torch.nn.Module, device: torch.device, sync_batchnorm: bool = False) -> torch.nn.Module:
    """``model`` in DistributedDataParallel inside a data-parallel run (BatchNorm synchronised
    across GPUs when asked), else ``model`` itself. Call after moving the model to ``device``."""
    if not is_distributed() or not any(p.requires_grad for p in model.parameters()):
        return model
    if sync_batchnorm and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                     else None)


def worker_device(device: str) -> torch.device:
    """The device of this worker: its local GPU under CUDA, else the CPU."""
    if device != "cpu" and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def resolve_nproc(value: str | int) -> int:
    """``auto`` -> one process per visible GPU (1 without GPU); a positive integer -> itself."""
    if str(value) == "auto":
        return max(1, torch.cuda.device_count())
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ValueError(f"nproc_per_node={value!r}: expected a positive integer or auto")
    return number


PEER_LOST = ("Connection reset by peer", "Connection closed by peer", "pair.cc", "NCCL communicator was aborted",
             "Socket Timeout", "Timed out waiting")
"""Words of the errors a rank raises when a peer died first: the consequence, not the cause."""


def _failure_line(reports: Path, error: Exception) -> str:
    """One line for a failed run: the rank whose error caused it (not a peer that only lost it)."""
    lines = {int(path.stem): path.read_text() for path in sorted(reports.glob("*.txt"))}
    if not lines:  # the worker died without raising (killed, out of memory): the launcher knows the rank
        failures = getattr(error, "failures", {}) or {}
        rank = min(failures) if failures else "?"
        code = getattr(failures.get(rank), "exitcode", "?") if failures else "?"
        return f"rank {rank} failed: exit code {code}"
    causes = [rank for rank, line in lines.items() if not any(word in line for word in PEER_LOST)]
    rank = (causes or list(lines))[0]
    return f"rank {rank} failed: {lines[rank]}"


@record  # a worker's exception also goes to the launcher's own error report
def run_in_worker(reports: str, function: Callable[..., Any], backend: str, *args: Any) -> Any:
    """Join the process group, run ``function(*args)``, leave the group; rank 0's result is
    returned. An exception is written as one line to ``reports/<rank>.txt`` before it propagates."""
    if backend == "gloo" and "OMP_NUM_THREADS" not in os.environ:  # as torchrun does: no oversubscribed cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    dist.init_process_group(backend, timeout=TIMEOUT)
    try:
        result = function(*args)
        dist.barrier()
        return result if dist.get_rank() == 0 else None
    except BaseException as error:
        (Path(reports) / f"{dist.get_rank()}.txt").write_text(first_error_line(error))
        raise
    finally:
        dist.destroy_process_group()


def launch(function: Callable[..., Any], nproc: int, *args: Any, backend: str = "gloo") -> Any:
    """Run ``function(*args)`` in ``nproc`` worker processes on this machine, in a process group
    (``backend`` gloo or nccl), and return rank 0's result. ``function`` must be importable
    (a module-level function). Raises :class:`WorkerFailedError` when a worker fails."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2,
                          start_method="spawn")
    quiet = logging.getLogger("torch.distributed.elastic")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the agent's own log repeats the worker's traceback; we raise one line
    with tempfile.TemporaryDirectory(prefix="pystatsml-tl-workers-") as reports:
        try:
            results = elastic_launch(config, run_in_worker)(reports, function, backend, *args)
        except ChildFailedError as error:
            raise WorkerFailedError(_failure_line(Path(reports), error)) from None
        finally:
            quiet.setLevel(level)
    return results[0]
