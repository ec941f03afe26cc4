"""Experiment kinds: one class and one registry entry make a new kind of experiment."""
import json
from typing import ClassVar

import pandas as pd
import pytest
import torch
from fakes import FakeExecutor

from pystatsml_tl.runs.experiments import run_experiment
from pystatsml_tl.runs.kinds import KINDS, Extractor, kind_of, register_kind
from pystatsml_tl.runs.parameters import validate_parameters
from pystatsml_tl.runs.registry import EXPERIMENTS, Experiment, register_experiment
from pystatsml_tl.runs.runner import execute_plan, plan_run, run_in_process

SMALL = dict(dataset="synthetic", weights="none", epochs=2, batch_size=20, train_subset=120, test_subset=40,
             progress=False, device="cpu")


class NesterovExtractor(Extractor):
    """A frozen extractor whose head trains with Nesterov's momentum."""

    name = "extractor-nesterov"
    optimizers: ClassVar[list] = []

    def make_optimizer(self, params, groups, lr):
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=params["momentum"], nesterov=True)
        self.optimizers.append(optimizer)
        return optimizer


@pytest.fixture
def nesterov_kind():
    """The new kind and its experiment, registered for one test."""
    register_kind(NesterovExtractor())
    register_experiment(Experiment("extractor-nesterov", kind="extractor-nesterov", optimizer="sgd", trains=("head",)))
    yield KINDS["extractor-nesterov"]
    del KINDS["extractor-nesterov"], EXPERIMENTS["extractor-nesterov"]


def test_a_registered_kind_trains_through_run_experiment(nesterov_kind, tmp_path, cache_dir):
    result = run_experiment(SMALL | {"experiment": "extractor-nesterov", "lr": 0.005, "epochs": 3}, log_interval=None,
                            output_dir=str(tmp_path))
    assert nesterov_kind.optimizers and all(o.defaults["nesterov"] for o in nesterov_kind.optimizers)
    assert result.feature_cache is not None  # an extractor: the head trained on cached features
    assert result.losses["train"][-1] < result.losses["train"][0]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["settings"]["kind"] == "extractor-nesterov"
    trained = [p for p in result.model.parameters() if p.requires_grad]
    assert {id(p) for p in trained} == {id(p) for p in result.model.fc.parameters()}  # the backbone frozen


def test_a_registered_kind_runs_through_the_runner_and_its_report(nesterov_kind, tmp_path):
    plan = plan_run("smoke", ["extractor-nesterov", "extractor-sgd"], {}, tmp_path, seeds=[0, 1],
                    compare_to="extractor-sgd")
    fake = FakeExecutor(correct=lambda name, seed: 70 + 10 * (name == "extractor-nesterov") + seed)
    assert execute_plan(plan, executor=fake) == {}
    assert sorted(fake.calls) == [("extractor-nesterov", (0, 1)), ("extractor-sgd", (0, 1))]
    comparisons = pd.read_csv(tmp_path / "comparisons.csv")
    assert comparisons[["a", "b"]].values.tolist() == [["extractor-nesterov", "extractor-sgd"]]


def test_a_registered_kind_trains_through_the_runner_in_process(nesterov_kind, tmp_path, cache_dir):
    # a kind registered in this process: a notebook kernel would not know it, the in-process executor does
    plan = plan_run("smoke", ["extractor-nesterov"], SMALL | {"lr": 0.005}, tmp_path, seeds=[0])
    assert execute_plan(plan, executor=run_in_process) == {}
    metrics = json.loads((tmp_path / "extractor-nesterov" / "seed-0" / "metrics.json").read_text())
    assert metrics["settings"]["kind"] == "extractor-nesterov" and nesterov_kind.optimizers
    assert pd.read_csv(tmp_path / "runs.csv")["status"].tolist() == ["ok"]
    assert not list((tmp_path / "extractor-nesterov").glob("*.ipynb"))  # no kernel, no output notebook


def test_no_kind_is_named_outside_the_registry():
    assert {entry.kind for entry in EXPERIMENTS.values()} <= set(KINDS)
    assert kind_of(validate_parameters({"experiment": "two-stage"})).name == "two-stage"
    register_experiment(Experiment("x", kind="nope", optimizer="sgd"))
    try:
        with pytest.raises(ValueError, match="experiment='x': expected an experiment whose kind is registered"):
            validate_parameters({"experiment": "x"})
    finally:
        del EXPERIMENTS["x"]
