"""The experiment parameters: one set of names for the notebooks, papermill, the CLI and Python.

Each parameter has a type, a default (the tutorial's settings, except the held-out validation
split), a one-line help and its constraint (range, choices, or a relation to other parameters),
declared together. :func:`validate_parameters` checks a whole set before any work starts (the
declared constraints in one loop, then the relations the experiment's kind needs) and returns it
as one frozen :class:`Params`, the object every layer below takes. The choices of ``experiment``
and ``dataset`` are the registries' (:mod:`pystatsml_tl.runs.registry`,
:mod:`pystatsml_tl.data.registry`), read when checked, so a registered entry is accepted at once.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from .. import checks
from ..data.registry import DATA_CHECKS, DATASETS
from ..devices import DEVICES, check_device
from ..extensions import load_extensions
from .registry import EXPERIMENTS, Experiment, experiment


def _lazy(module: str, name: str) -> checks.Check:
    """A check defined in a module that imports torchvision, imported when first used."""
    def check(parameter: str, value: Any) -> None:
        import importlib

        getattr(importlib.import_module(module, __package__), name)(value)

    return check


def _below_epochs(name: str, value: Any, params: dict[str, Any]) -> None:
    checks.below_epochs(name, value, params["epochs"])


def _experiment_help() -> str:
    return " | ".join(EXPERIMENTS)


def _dataset_help() -> str:
    return " | ".join(DATASETS) + " | path of an image folder with train/ and test/"


@dataclass(frozen=True)
class Parameter:
    """One experiment parameter: its name, type, default, help line and constraint (``check(name,
    value)``, and ``relation(name, value, params)`` for a constraint on other parameters too)."""

    name: str
    type: type
    default: Any
    help: str | Callable[[], str]  # a callable when the line lists a registry's names, read when shown
    optional: bool = False  # None is accepted and means "not set"
    check: checks.Check | None = None
    relation: Callable[[str, Any, dict[str, Any]], None] | None = None

    def describe(self) -> str:
        """The help line, with a registry's names as they are now."""
        return self.help() if callable(self.help) else self.help


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in [
        Parameter("experiment", str, "finetune-sgd", _experiment_help, check=checks.one_of(EXPERIMENTS, ", ")),
        Parameter("dataset", str, "cifar10", _dataset_help, check=DATA_CHECKS["dataset"]),
        Parameter("data_dir", str, None, "where datasets are stored (default: $PYSTATSML_TL_DATA or the user cache)",
                  optional=True),
        Parameter("arch", str, "resnet18", "torchvision classification model name",
                  check=_lazy("..backbones", "check_arch")),
        Parameter("weights", str, "imagenet",
                  "imagenet | none | synthetic (offline pretrained) | path of a state dict",
                  check=_lazy("..backbones", "check_weights")),
        Parameter("epochs", int, 5, "number of training epochs", check=checks.positive_int),
        Parameter("batch_size", int, 100, "images per batch", check=DATA_CHECKS["batch_size"]),
        Parameter("lr", float, 1e-3, "learning rate", check=checks.positive_number),
        Parameter("momentum", float, 0.9, "SGD momentum (ignored by Adam)", check=checks.interval(0, 1, "[)")),
        Parameter("step_size", int, 7, "StepLR: epochs between learning-rate decays", check=checks.positive_int),
        Parameter("gamma", float, 0.1, "StepLR: decay factor", check=checks.rate_factor),
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
                  check=checks.rate_factor),
        Parameter("lr_decay", float, 0.385,
                  "discriminative: each block towards the stem gets this times the next block's rate "
                  "(ULMFiT divides by 2.6)", check=checks.rate_factor),
        Parameter("image_size", int, 32, "side of the square images fed to the network, in pixels",
                  check=DATA_CHECKS["image_size"]),
        Parameter("normalize", str, "tutorial",
                  "tutorial (mean and std 0.5 per channel) | imagenet (ImageNet statistics)",
                  check=DATA_CHECKS["normalize"]),
        Parameter("augment", bool, False, "random flips and pad-and-crop on training images"),
        Parameter("val_fraction", float, 0.1,
                  "fraction of the training set held out for model selection; 0 selects on test as the tutorial",
                  check=DATA_CHECKS["val_fraction"]),
        Parameter("train_subset", int, None, "use only this many training images (default: all)", optional=True,
                  check=DATA_CHECKS["train_subset"]),
        Parameter("test_subset", int, None, "use only this many test images (default: all)", optional=True,
                  check=DATA_CHECKS["test_subset"]),
        Parameter("feature_cache", bool, True, "extractor: compute frozen features once and keep them on disk"),
        Parameter("precision", str, "auto",
                  "training and feature extraction: auto (bf16 on CUDA and on CPUs with AVX-512 BF16 "
                  "and no AMX, else fp32) | fp32 | bf16 "
                  "(autocast, weights and optimizer state in fp32)",
                  check=_lazy("..precision", "check_precision")),
        Parameter("seed", int, 0, "random seed: the same seed on CPU gives the same numbers"),
        Parameter("device", str, "auto", " | ".join(DEVICES) + " (or cuda:N)", check=check_device),
        Parameter("num_workers", int, 0, "DataLoader workers for image folders", check=DATA_CHECKS["num_workers"]),
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

PROFILE_SEEDS = {"smoke": 5, "quick": 1, "tutorial": 1}
"""How many seeds (0, 1, ...) a profile runs by default: smoke is cheap enough for paired seeds that
resolve the lesson's questions where the effect is real."""


def default_parameters() -> dict[str, Any]:
    """Return every parameter at its default value."""
    return {name: p.default for name, p in PARAMETERS.items()}


def profile_parameters(profile: str, **overrides: Any) -> Params:
    """Return the defaults updated by a named profile, then by ``overrides``; validated."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: expected one of {', '.join(PROFILES)}")
    return validate_parameters(default_parameters() | PROFILES[profile] | overrides)


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


class _ParamsMapping(Mapping):
    """What :class:`Params` adds to its fields: read as a mapping (``params["lr"]``, ``dict(params)``,
    ``**params``), merged with ``|`` into a new validated object, and the experiment it names."""

    def __getitem__(self, name: str) -> Any:
        if name not in PARAMETERS:
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(PARAMETERS)

    def __len__(self) -> int:
        return len(PARAMETERS)

    def __or__(self, other: Mapping[str, Any]) -> Params:
        if not isinstance(other, Mapping):
            return NotImplemented
        return validate_parameters({**self, **other})

    def __ror__(self, other: Mapping[str, Any]) -> Params:
        if not isinstance(other, Mapping):
            return NotImplemented
        return validate_parameters({**other, **self})

    def __post_init__(self) -> None:
        for name in PARAMETERS:
            object.__setattr__(self, name, _check_type(name, getattr(self, name)))
        for name, spec in PARAMETERS.items():
            value = getattr(self, name)
            if spec.check is not None and not (spec.optional and value is None):
                spec.check(name, value)
        for name, spec in PARAMETERS.items():
            if spec.relation is not None:
                spec.relation(name, getattr(self, name), self)
        from .kinds import kind_of  # the kinds train with torch: imported when a run is validated

        kind_of(self).check(self)

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict (for JSON and papermill)."""
        return dict(self)

    @property
    def entry(self) -> Experiment:
        """The registry entry of the experiment these parameters name."""
        return experiment(self["experiment"])

    @property
    def settings(self) -> dict[str, Any]:
        """The experiment's kind, optimizer, what trains and the weights it starts from."""
        return self.entry.settings(self["weights"])


Params = make_dataclass(
    "Params",
    [(p.name, p.type | None if p.optional else p.type, field(default=p.default)) for p in PARAMETERS.values()],
    bases=(_ParamsMapping,), frozen=True)
Params.__module__ = __name__  # pickled by name: data-parallel workers receive it
Params.__doc__ = """Validated experiment parameters: one frozen field per entry of :data:`PARAMETERS`,
type-checked and checked against their constraints and the experiment kind's relations when made.
Built once at the edge (:func:`validate_parameters`, :func:`profile_parameters`, the notebooks'
``collect_parameters``, the command line) and passed inward; ``params | {"lr": 0.01}`` makes a new,
validated one."""


def validate_parameters(params: Mapping[str, Any]) -> Params:
    """Check names, types and declared constraints of an experiment's parameters, then the
    relations its kind needs; return them as one validated :class:`Params` (missing names at
    their defaults).

    Raises ``ValueError`` naming the parameter and what was expected.
    """
    if isinstance(params, Params):
        return params
    load_extensions()  # installed kinds, experiments and data sets, in every process that validates
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}: expected names among {', '.join(PARAMETERS)}")
    return Params(**params)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["NAME=VALUE", ...]`` (the command line's ``--set``) as typed parameter values."""
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected NAME=VALUE")
        overrides[name.strip()] = parse_value(name.strip(), text)
    return overrides


def parameters_cell() -> str:
    """The source of the experiment notebook's ``parameters`` cell: every parameter with its type,
    default and help, so that ``papermill --help-notebook`` lists them."""
    declared = [*PARAMETERS.values(), SEEDS_PARAMETER]
    lines = [f"{p.name}: {p.type.__name__} = {p.default!r}  # {p.describe()}" for p in declared]
    return "\n".join(lines)


def collect_parameters(namespace: dict[str, Any]) -> Params:
    """Pick the parameters out of a namespace (a notebook's ``globals()``) and validate them."""
    return validate_parameters({name: namespace[name] for name in PARAMETERS if name in namespace})
