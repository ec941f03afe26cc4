"""One experiment from its parameters: data -> model -> training -> test -> metrics.json and figures.

The notebooks call these steps one by one to tell the story; :func:`run_experiment` chains them.
"""
from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.datasets import DataLoaders, load_data, shard_loaders
from ..data.registry import DATASETS
from ..devices import resolve_device
from ..distributed import is_distributed, launch, rank_and_world, resolve_nproc, worker_device
from ..features import FeatureCacheInfo
from ..models import make_model
from ..precision import resolve_precision
from ..provenance import provenance, provenance_line, versions
from ..storage import save_figure_atomic, write_json_atomic
from ..training.loop import Evaluation, best_epoch, evaluate, selection_phase
from .grid import seed_folder
from .kinds import FitResult, Training, experiment_criterion, kind_of
from .metrics import SCHEMA
from .parameters import PARAMETERS, Params, validate_parameters
from .statistics import wilson_interval

FIGURES = ("learning_curves.png", "confusion_matrix.png", "misclassified.png")
"""File names of the figures :func:`make_figures` draws, in that order."""


def run_record(params: Params) -> dict[str, Any]:
    """What identifies a run before it starts: its resolved parameters as a table (name, value,
    help) and its provenance as one line (:func:`~pystatsml_tl.provenance.provenance_line`)."""
    import pandas as pd

    table = pd.DataFrame([{"parameter": name, "value": repr(value), "meaning": PARAMETERS[name].describe()}
                          for name, value in params.items()]).set_index("parameter")
    device = resolve_device(params["device"])
    return {"parameters": table, "provenance": f"runs on {device}; {provenance_line(provenance())}"}


def run_title(params: Params) -> str:
    """The run's identity for figure titles: experiment, data set, weights and seed."""
    dataset = params["dataset"] if params["dataset"] in DATASETS else Path(params["dataset"]).name
    return (f"{params['experiment']} on {dataset}, weights {params.settings['weights']}, "
            f"seed {params['seed']}")


LOADER_KEYWORDS = tuple(name for name, p in inspect.signature(load_data).parameters.items()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY)
"""The keywords of :func:`~pystatsml_tl.data.datasets.load_data`: each is a parameter of the same name."""


def prepare_data(params: Params) -> DataLoaders:
    """Load the dataset that ``params`` describe: :func:`~pystatsml_tl.data.datasets.load_data`
    with each of its keywords taken from the parameter of the same name."""
    return load_data(params["dataset"], **{name: params[name] for name in LOADER_KEYWORDS}
                     | {"device": resolve_device(params["device"])})


def build_model(params: Params, num_classes: int) -> nn.Module:
    """Make the model of the experiment: its arch and weights, with what its registry entry says
    trains at the start (the rest frozen: ``extractor``, ``two-stage``)."""
    entry = params.entry
    return make_model(params["arch"], params.settings["weights"], num_classes, entry.trains, seed=params["seed"],
                      progress=params["progress"])


@dataclass
class ExperimentResult:
    """Everything one experiment produced."""

    params: Params
    model: nn.Module
    data: DataLoaders
    losses: dict[str, list[float]]
    accuracies: dict[str, list[float]]
    test: Evaluation
    seconds: float
    device: str
    feature_cache: FeatureCacheInfo | None = None

    @property
    def best_epoch(self) -> int:
        """The epoch whose weights were kept."""
        return best_epoch(self.accuracies)

    @property
    def test_acc_ci(self) -> tuple[float, float]:
        """95 % Wilson interval of the test accuracy (fractions), from the number of test images."""
        correct = int((self.test.predictions == self.test.targets).sum())
        return wilson_interval(correct, len(self.test.targets))

    def history(self) -> dict[str, list[float]]:
        """Per-epoch ``<phase>_loss`` and ``<phase>_acc`` (fractions) as flat lists."""
        flat = {}
        for phase in self.losses:
            flat[f"{phase}_loss"] = self.losses[phase]
            flat[f"{phase}_acc"] = self.accuracies[phase]
        return flat

    def metrics(self) -> dict[str, Any]:
        """The content of ``metrics.json``."""
        return {
            "schema": SCHEMA, "experiment": self.params["experiment"], "parameters": self.params.as_dict(),
            "settings": self.params.settings, "history": self.history(),
            "best_epoch": self.best_epoch, "selected_on": selection_phase(self.losses),
            "test_acc": self.test.accuracy, "test_acc_ci": list(self.test_acc_ci), "test_loss": self.test.loss,
            "seconds": round(self.seconds, 2), "device": self.device,
            "precision": resolve_precision(self.params["precision"], torch.device(self.device)),
            "classes": self.data.classes,
            "sizes": self.data.sizes, "data": self.data.description(),
            "test_predictions": self.test.predictions.tolist(),
            "test_targets": self.test.targets.tolist(),
            "feature_cache": None if self.feature_cache is None else vars(self.feature_cache),
            "versions": versions(), "provenance": provenance(),
        }


def train_in_worker(params: Params, log_interval: int | None) -> dict[str, Any]:
    """One worker of a data-parallel experiment: its share of every batch, the model in DDP.
    Returns (from rank 0) the selected weights, the histories and the feature-cache info."""
    rank, world = rank_and_world()
    device = worker_device(params["device"])
    params = params | {"device": str(device)}
    data = shard_loaders(prepare_data(params), rank, world)
    model = build_model(params, data.num_classes)
    training = Training(params, experiment_criterion(params), log_interval if rank == 0 else None, device)
    fitted = kind_of(params).fit(training, data, model)
    state = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    return {"state": state, "losses": fitted.losses, "accuracies": fitted.accuracies,
            "feature_cache": fitted.feature_cache}


def train_experiment(params: Params, data: DataLoaders, model: nn.Module,
                     log_interval: int | None = 1) -> ExperimentResult:
    """Train ``model`` on ``data`` as the experiment's kind does (:mod:`~pystatsml_tl.runs.kinds`),
    then evaluate the selected model on the test set.

    With ``nproc_per_node`` > 1 the training runs in that many worker processes started by
    torch.distributed's elastic launcher (:func:`train_in_worker`, DistributedDataParallel); the
    selected weights come back into ``model`` and the test pass runs here, on the whole test set.
    """
    device = resolve_device(params["device"])
    started = time.time()
    nproc = resolve_nproc(params["nproc_per_node"])
    if nproc > 1 and not is_distributed():
        backend = "nccl" if device.type == "cuda" else "gloo"
        outcome = launch(train_in_worker, nproc, params, log_interval, backend=backend)
        return result_of_workers(params, data, model, outcome, started, device)
    fitted: FitResult = kind_of(params).fit(Training(params, experiment_criterion(params), log_interval, device),
                                            data, model)
    test = evaluate(fitted.tested, fitted.test_loaders["test"], experiment_criterion(params), device,
                    precision=params["precision"])
    return ExperimentResult(params, model, data, fitted.losses, fitted.accuracies, test, time.time() - started,
                            device.type, fitted.feature_cache)


def result_of_workers(params: Params, data: DataLoaders, model: nn.Module, outcome: dict[str, Any],
                      started: float, device: torch.device) -> ExperimentResult:
    """The result of an experiment that data-parallel workers trained (``outcome``: what
    :func:`train_in_worker` returned): their selected weights go into ``model`` and the test pass
    runs here, on the whole test set; ``started`` is when training began (``time.time()``)."""
    model.load_state_dict(outcome["state"])
    trained, tested_on = kind_of(params).test_target(params, data, model)
    test = evaluate(trained, tested_on["test"], experiment_criterion(params), device, precision=params["precision"])
    return ExperimentResult(params, model, data, outcome["losses"], outcome["accuracies"], test,
                            time.time() - started, device.type, outcome["feature_cache"])


def save_outputs(result: ExperimentResult, output_dir: str | Path,
                 figures: dict[str, Any] | None = None) -> dict[str, str]:
    """Write ``metrics.json`` and the figures of :func:`make_figures` (drawn now unless given) into
    ``output_dir``, each atomically; return their paths."""
    output_dir = Path(output_dir)
    figures = figures if figures is not None else make_figures(result)
    files = {name: str(save_figure_atomic(fig, output_dir / name, dpi=90)) for name, fig in figures.items()}
    metrics = result.metrics() | {"files": sorted([*files, "metrics.json"])}
    files["metrics.json"] = str(write_json_atomic(output_dir / "metrics.json", metrics))
    for checkpoint in output_dir.glob("checkpoint-*.pt"):  # the run is complete: nothing left to resume
        checkpoint.unlink()
    return files


def run_experiment(params: Mapping[str, Any] | None = None, log_interval: int | None = 1,
                   **overrides: Any) -> ExperimentResult:
    """Validate the parameters, then load data, build the model, train, test and (if
    ``output_dir`` is set) write the outputs. Keyword arguments override ``params``."""
    params = validate_parameters((params or {}) | overrides)
    data = prepare_data(params)
    model = build_model(params, data.num_classes)
    result = train_experiment(params, data, model, log_interval)
    if params["output_dir"]:
        save_outputs(result, params["output_dir"])
    return result


def seed_runs(params: Mapping[str, Any], seeds: list[int] | None = None) -> list[Params]:
    """The validated parameters of each seed's run: ``params`` alone when ``seeds`` is empty, else
    one copy per seed, each written into ``<output_dir>/seed-<seed>`` when ``output_dir`` is set."""
    if not seeds:
        return [validate_parameters(params)]
    folder = params.get("output_dir")
    return [validate_parameters(params | {"seed": seed,
                                          "output_dir": str(Path(folder) / seed_folder(seed)) if folder else None})
            for seed in seeds]


def make_figures(result: ExperimentResult) -> dict[str, Any]:
    """Draw the experiment's figures (learning curves, confusion matrix, misclassified test images),
    keyed by file name. The figures are closed: show one with ``display(fig)``."""
    from . import plots

    name = run_title(result.params)
    targets, predictions = result.test.targets.tolist(), result.test.predictions.tolist()
    figures = dict(zip(FIGURES, (
        plots.learning_curves_grid({result.params["experiment"]: (result.losses, result.accuracies)},
                                   chance=1 / result.data.num_classes, title=name),
        plots.confusion_matrix(targets, predictions, result.data.classes, title=f"{name}\nconfusion matrix (test set)"),
        plots.misclassified_images(result.data["test"].dataset, targets, predictions, result.data.classes,
                                   title=f"{name}: misclassified test images"),
    )))
    for fig in figures.values():
        plots.plt.close(fig)
    return figures
