"""The experiment parameters: one set of names for the notebooks, papermill, the CLI and Python.

Each parameter has a type, a default (the tutorial's settings, except the held-out validation
split), a one-line help and its constraint (range, choices, or a relation to other parameters),
declared together. :func:`validate_parameters` checks a whole set before any work starts: the
declared constraints in one loop, then the relations the experiment's kind needs.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import checks
from ..devices import DEVICES

EXPERIMENTS = {
    "finetune-sgd": {"strategy": "finetune", "optimizer": "sgd"},
    "finetune-adam": {"strategy": "finetune", "optimizer": "adam"},
    "extractor-sgd": {"strategy": "extractor", "optimizer": "sgd"},
    "extractor-adam": {"strategy": "extractor", "optimizer": "adam"},
    "scratch": {"strategy": "finetune", "optimizer": "sgd", "weights": "none"},
    "extractor-random": {"strategy": "extractor", "optimizer": "adam", "weights": "none"},
    "two-stage": {"strategy": "two-stage", "optimizer": "adam"},
    "discriminative": {"strategy": "discriminative", "optimizer": "adam"},
}
"""The named experiments: what trains, with which optimizer (``scratch`` and ``extractor-random`` also
force random weights: the references that show what pretraining bought, fine-tuned and frozen).
``two-stage`` trains the new head on the frozen backbone, then fine-tunes everything at a lower
rate; ``discriminative`` fine-tunes everything with rates that shrink from the head to the stem."""

TUTORIAL_EXPERIMENTS = ("finetune-sgd", "finetune-adam", "extractor-sgd", "extractor-adam")

NORMALIZATIONS = ("tutorial", "imagenet")
BUILTIN_DATASETS = ("cifar10", "digits", "synthetic")


def _lazy(module: str, name: str) -> checks.Check:
    """A check defined in a module that imports torchvision, imported when first used."""
    def check(parameter: str, value: Any) -> None:
        import importlib

        getattr(importlib.import_module(module, __package__), name)(value)

    return check


def _dataset(name: str, value: Any) -> None:
    checks.expect(value in BUILTIN_DATASETS or Path(value).expanduser().is_dir(), name, value,
                  "cifar10, digits, synthetic or an existing image folder")


def _below_epochs(name: str, value: Any, params: dict[str, Any]) -> None:
    checks.expect(0 <= value < params["epochs"], name, value, f"an integer in [0, epochs={params['epochs']})")


@dataclass(frozen=True)
class Parameter:
    """One experiment parameter: its name, type, default, help line and constraint (``check(name,
    value)``, and ``relation(name, value, params)`` for a constraint on other parameters too)."""

    name: str
    type: type
    default: Any
    help: str
    optional: bool = False  # None is accepted and means "not set"
    check: checks.Check | None = None
    relation: Callable[[str, Any, dict[str, Any]], None] | None = None


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in [
        Parameter("experiment", str, "finetune-sgd",
                  "finetune-sgd | finetune-adam | extractor-sgd | extractor-adam | scratch | extractor-random | "
                  "two-stage | discriminative", check=checks.one_of(EXPERIMENTS, ", ")),
        Parameter("dataset", str, "cifar10",
                  "cifar10 | digits (scikit-learn's, offline) | synthetic | "
                  "path of an image folder with train/ and test/",
                  check=_dataset),
        Parameter("data_dir", str, None, "where datasets are stored (default: $PYSTATSML_TL_DATA or the user cache)",
                  optional=True),
        Parameter("arch", str, "resnet18", "torchvision classification model name",
                  check=_lazy("..backbones", "check_arch")),
        Parameter("weights", str, "imagenet",
                  "imagenet | none | synthetic (offline pretrained) | path of a state dict",
                  check=_lazy("..backbones", "check_weights")),
        Parameter("epochs", int, 5, "number of training epochs", check=checks.positive_int),
        Parameter("batch_size", int, 100, "images per batch", check=checks.positive_int),
        Parameter("lr", float, 1e-3, "learning rate", check=checks.positive_number),
        Parameter("momentum", float, 0.9, "SGD momentum (ignored by Adam)", check=checks.interval(0, 1, "[)")),
        Parameter("step_size", int, 7, "StepLR: epochs between learning-rate decays", check=checks.positive_int),
        Parameter("gamma", float, 0.1, "StepLR: decay factor", check=checks.interval(0, 1, "(]")),
        Parameter("scheduler", str, "step",
                  "step (the lesson's StepLR, per epoch) | cosine | onecycle (torch's schedulers, per batch)",
                  check=_lazy("..training.recipes", "check_scheduler")),
        Parameter("warmup_epochs", int, 0,
                  "epochs of linear learning-rate warm-up before the schedule (0: none; onecycle rises over them)",
                  relation=_below_epochs),
        Parameter("weight_decay", float, 0.0, "L2 penalty of the optimizer (0: none, as the lesson)",
                  check=checks.non_negative_number),
        Parameter("label_smoothing", float, 0.0,
                  "cross-entropy label smoothing (0: none; 0.1 is the value of Szegedy et al. 2016)",
                  check=checks.interval(0, 1, "[)")),
        Parameter("freeze_epochs", int, 1,
                  "two-stage: epochs of training the head on the frozen backbone first (fastai fine_tune uses 1)",
                  check=checks.positive_int),
        Parameter("unfreeze_lr_factor", float, 0.1,
                  "two-stage: the rate after unfreezing is lr times this (Keras's guide lowers it by 10 to 100x)",
                  check=checks.interval(0, 1, "(]")),
        Parameter("lr_decay", float, 0.385,
                  "discriminative: each block towards the stem gets this times the next block's rate "
                  "(ULMFiT divides by 2.6)", check=checks.interval(0, 1, "(]")),
        Parameter("image_size", int, 32, "side of the square images fed to the network, in pixels",
                  check=checks.positive_int),
        Parameter("normalize", str, "tutorial",
                  "tutorial (mean and std 0.5 per channel) | imagenet (ImageNet statistics)",
                  check=checks.one_of(NORMALIZATIONS, " or ")),
        Parameter("augment", bool, False, "random flips and pad-and-crop on training images"),
        Parameter("val_fraction", float, 0.1,
                  "fraction of the training set held out for model selection; 0 selects on test as the tutorial",
                  check=checks.interval(0, 1, "[)", noun="a fraction")),
        Parameter("train_subset", int, None, "use only this many training images (default: all)", optional=True,
                  check=checks.positive_int_or_none),
        Parameter("test_subset", int, None, "use only this many test images (default: all)", optional=True,
                  check=checks.positive_int_or_none),
        Parameter("feature_cache", bool, True, "extractor: compute frozen features once and keep them on disk"),
        Parameter("precision", str, "auto",
                  "training and feature extraction: auto (bf16 on CUDA and on CPUs with AVX-512 BF16 "
                  "and no AMX, else fp32) | fp32 | bf16 "
                  "(autocast, weights and optimizer state in fp32)",
                  check=_lazy("..precision", "check_precision")),
        Parameter("seed", int, 0, "random seed: the same seed on CPU gives the same numbers"),
        Parameter("device", str, "auto", "auto | cpu | cuda | mps", check=checks.one_of(DEVICES)),
        Parameter("num_workers", int, 0, "DataLoader workers for image folders", check=checks.non_negative_int),
        Parameter("nproc_per_node", str, "1",
                  "data-parallel worker processes (DDP; gloo on CPU, nccl on GPUs): a number, or auto for one per GPU",
                  check=checks.count_or_auto),
        Parameter("sync_batchnorm", bool, False, "data-parallel on GPUs: synchronise BatchNorm statistics across them"),
        Parameter("progress", bool, True, "show progress bars"),
        Parameter("output_dir", str, None, "where metrics.json and figures are written (default: none)", optional=True),
    ]
}

SEEDS_PARAMETER = Parameter("seeds", list, None, "run these seeds one after another in one kernel, each into "
                            "output_dir/seed-N (default: seed alone); set by pystatsml-tl run", optional=True)
"""The experiment notebook's one parameter beyond :data:`PARAMETERS`: several seeds in one papermill run."""

PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "dataset": "digits", "weights": "synthetic", "epochs": 3, "batch_size": 50,
        "train_subset": 300, "progress": False,
    },
    "quick": {
        "dataset": "cifar10", "weights": "imagenet", "epochs": 2, "batch_size": 100,
        "train_subset": 5000, "test_subset": 1000,
    },
    "tutorial": {
        "dataset": "cifar10", "weights": "imagenet", "epochs": 5, "batch_size": 100,
        "lr": 1e-3, "step_size": 7, "gamma": 0.1, "val_fraction": 0.0, "normalize": "tutorial",
    },
}
"""Named parameter sets: ``smoke`` (offline: scikit-learn's handwritten digits, the offline backbone;
seconds), ``quick`` (CIFAR-10 subset), ``tutorial`` (the original)."""

PROFILE_EXPERIMENTS = {"smoke": (*TUTORIAL_EXPERIMENTS, "scratch", "extractor-random"),
                       "quick": (*TUTORIAL_EXPERIMENTS, "two-stage", "discriminative"),
                       "tutorial": TUTORIAL_EXPERIMENTS}
"""The experiments a profile runs by default: offline, the lesson's six (``scratch`` and
``extractor-random`` show what pretraining bought); the recipes by ``--experiments``."""
PROFILE_SEEDS = {"smoke": 5, "quick": 1, "tutorial": 1}
"""How many seeds (0, 1, ...) a profile runs by default: smoke is cheap enough for paired seeds that
resolve the lesson's questions where the effect is real."""


def default_parameters() -> dict[str, Any]:
    """Return every parameter at its default value."""
    return {name: p.default for name, p in PARAMETERS.items()}


def profile_parameters(profile: str, **overrides: Any) -> dict[str, Any]:
    """Return the defaults updated by a named profile, then by ``overrides``; validated."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: expected one of {', '.join(PROFILES)}")
    params = default_parameters() | PROFILES[profile] | overrides
    return validate_parameters(params)


def parse_value(name: str, text: str) -> Any:
    """Convert the command-line text ``text`` to the declared type of parameter ``name``."""
    if name not in PARAMETERS:
        raise ValueError(f"unknown parameter {name!r}: expected one of {', '.join(PARAMETERS)}")
    spec = PARAMETERS[name]
    if spec.optional and text.strip().lower() in ("none", ""):
        return None
    if spec.type is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"{name}={text!r}: expected true or false")
    try:
        return spec.type(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected {spec.type.__name__}") from None


def _check_type(name: str, value: Any) -> Any:
    spec = PARAMETERS[name]
    if value is None:
        if spec.optional:
            return None
        raise ValueError(f"{name}=None: expected {spec.type.__name__}")
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if spec.type is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if name == "nproc_per_node" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a count is as welcome as "auto"
    if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
        raise ValueError(f"{name}={value!r}: expected {spec.type.__name__}")
    return value


def validate_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Check names, types and declared constraints of an experiment's parameters, then the
    relations its kind needs; return a complete, typed copy.

    Raises ``ValueError`` naming the parameter and what was expected.
    """
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}: expected names among {', '.join(PARAMETERS)}")
    checked = {name: _check_type(name, value) for name, value in (default_parameters() | params).items()}
    for name, spec in PARAMETERS.items():
        if spec.check is not None and not (spec.optional and checked[name] is None):
            spec.check(name, checked[name])
    for name, spec in PARAMETERS.items():
        if spec.relation is not None:
            spec.relation(name, checked[name], checked)
    from .kinds import kind_of  # the kinds import torch: keep it lazy

    kind_of(checked).check(checked)
    return checked


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["NAME=VALUE", ...]`` (the command line's ``--set``) as typed parameter values."""
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected NAME=VALUE")
        overrides[name.strip()] = parse_value(name.strip(), text)
    return overrides


def experiment_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Return the strategy, optimizer and weights that the chosen experiment implies."""
    settings = {"weights": params["weights"]} | EXPERIMENTS[params["experiment"]]
    return settings


def parameters_cell() -> str:
    """The source of the experiment notebook's ``parameters`` cell: every parameter with its type,
    default and help, so that ``papermill --help-notebook`` lists them."""
    declared = [*PARAMETERS.values(), SEEDS_PARAMETER]
    lines = [f"{p.name}: {p.type.__name__} = {p.default!r}  # {p.help}" for p in declared]
    return "\n".join(lines)


def collect_parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """Pick the parameters out of a namespace (a notebook's ``globals()``) and validate them."""
    return validate_parameters({name: namespace[name] for name in PARAMETERS if name in namespace})
