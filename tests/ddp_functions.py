"""Functions that the data-parallel tests run in worker processes: a module of their own, so that
each spawned worker imports torch and the loop, not the test module and everything it imports."""
import torch
from torch import nn

from pystatsml_tl.data.loaders import TensorLoader
from pystatsml_tl.distributed import rank_and_world, wrap
from pystatsml_tl.training.loop import train_val_model


def train_without_batchnorm():
    """A model without BatchNorm or dropout, trained on fixed tensors in fp32: DDP's averaged
    gradient of the shared-out batches is the one-process gradient, so the histories must agree
    (up to fp32 rounding; bf16 would round each half-batch apart)."""
    torch.manual_seed(0)
    inputs, labels = torch.randn(120, 12), torch.randint(0, 3, (120,))
    rank, world = rank_and_world()
    loaders = {split: TensorLoader(inputs[part], labels[part], 20, shuffle=split == "train").shard(rank, world)
               for split, part in (("train", slice(0, 80)), ("val", slice(80, 120)))}
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _, losses, accuracies = train_val_model(wrap(model, torch.device("cpu")), nn.CrossEntropyLoss(), optimizer,
                                            loaders, 3, device="cpu", seed=1, progress=False,
                                            precision="fp32")
    return losses, accuracies, [p.detach().clone() for p in model.parameters()]


def fail_on_rank_one():
    """Rank 1 fails; rank 0 waits for it in a collective that will never complete."""
    if rank_and_world()[0] == 1:
        raise RuntimeError("simulated worker failure")
    torch.distributed.barrier()
