"""Extension 2, through public registration only: a linear probe whose head trains with LBFGS, an
optimizer that calls back into the loop (a closure) several times per step."""
from typing import ClassVar

import pytest
import torch

from pystatsml_tl.cli import main
from pystatsml_tl.runs.experiments import run_experiment
from pystatsml_tl.runs.kinds import KINDS, Extractor, register_kind
from pystatsml_tl.runs.registry import EXPERIMENTS, Experiment, experiment_colour, register_experiment

SMALL = dict(dataset="synthetic", weights="none", epochs=2, batch_size=60, train_subset=120, test_subset=40,
             progress=False, device="cpu", lr=0.5)


class CountingLBFGS(torch.optim.LBFGS):
    """LBFGS that counts the calls of the closure it is given."""

    def __init__(self, params, **settings):
        super().__init__(params, **settings)
        self.closure_calls = 0
        self.steps = 0

    def step(self, closure):
        def counted():
            self.closure_calls += 1
            return closure()

        self.steps += 1
        return super().step(counted)


class LBFGSProbe(Extractor):
    """A frozen backbone; the new head fitted by LBFGS on the cached features."""

    name = "probe-lbfgs"
    optimizers: ClassVar[list] = []

    def make_optimizer(self, params, groups, lr):
        optimizer = CountingLBFGS(groups, lr=lr, max_iter=5, history_size=5)
        self.optimizers.append(optimizer)
        return optimizer


@pytest.fixture
def lbfgs_probe():
    """The kind and its experiment, registered for one test."""
    kind = register_kind(LBFGSProbe())
    register_experiment(Experiment("probe-lbfgs", kind="probe-lbfgs", optimizer="lbfgs", trains=("head",)))
    yield kind
    del KINDS["probe-lbfgs"], EXPERIMENTS["probe-lbfgs"]
    LBFGSProbe.optimizers.clear()


def test_the_lbfgs_closure_is_called_and_the_probe_learns(lbfgs_probe, cache_dir):
    result = run_experiment(SMALL | {"experiment": "probe-lbfgs"}, log_interval=None)
    optimizer = lbfgs_probe.optimizers[-1]
    assert optimizer.steps == 2 * 2  # 2 epochs of 2 batches
    assert optimizer.closure_calls > optimizer.steps  # LBFGS re-evaluates the loss inside a step
    assert result.feature_cache is not None  # only the head trains: on cached features
    assert result.losses["train"][-1] < result.losses["train"][0]
    assert result.test.accuracy > 0.1  # above chance on 10 classes


def test_the_lbfgs_probe_shows_in_the_list_with_its_colour(lbfgs_probe, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("probe-lbfgs"))
    assert "lbfgs" in line and "the new last layer" in line and experiment_colour("probe-lbfgs") in line
    assert "probe-lbfgs" in out.split("Kinds:")[1].splitlines()[0]
