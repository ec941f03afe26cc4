"""The experiment registry: each named experiment is one typed :class:`Experiment` entry.

Everything that names experiments reads them from here: the parameter table's choices and help,
the profiles' default lists, the figures' colours, the lesson's table of published numbers, the
report and :func:`~pystatsml_tl.runs.experiments.build_model`. The entry says *what* an
experiment is; its kind (:mod:`pystatsml_tl.runs.kinds`, by name) says *how* it trains. This
module imports neither torch nor the kinds, so the command line and the report can read it alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..checks import expect

HEAD = "head"
"""The block name that stands for the new classification layer in :attr:`Experiment.trains`."""
ALL = "all"
"""The :attr:`Experiment.trains` value of an experiment whose every layer trains from the start."""

SPARE_COLOURS = ("#8c564b", "#e377c2", "#000000", "#aec7e8", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94")
"""Colours handed to registered experiments that name none, in order, skipping those in use."""


@dataclass(frozen=True)
class Experiment:
    """One named experiment: its kind (how it trains), its optimizer, the weights it forces (None:
    the run's ``weights``), what trains at the start (``all``, or block names such as ``("head",)``
    or ``("layer4", "head")``), its colour in every figure, the tutorial's published best accuracy
    (%) and CPU time (s) where the tutorial ran it, the profiles that run it by default, and a
    one-line description."""

    name: str
    kind: str
    optimizer: str
    trains: str | tuple[str, ...] = ALL
    weights: str | None = None
    colour: str | None = None
    published_acc: float | None = None
    published_seconds: int | None = None
    profiles: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        expect(isinstance(self.name, str) and re.fullmatch(r"[a-z0-9][a-z0-9._-]*", self.name or "") is not None,
               "name", self.name, "lower-case letters, digits, '.', '_' or '-'")
        expect(isinstance(self.kind, str) and bool(self.kind), "kind", self.kind, "the name of a registered kind")
        expect(isinstance(self.optimizer, str) and bool(self.optimizer), "optimizer", self.optimizer,
               "an optimizer name (sgd, adam, or one a kind builds)")
        trains = self.trains
        expect(trains == ALL or (isinstance(trains, tuple) and trains and all(isinstance(b, str) for b in trains)),
               "trains", trains, f"{ALL!r} or a tuple of block names")
        expect(self.colour is None or re.fullmatch(r"#[0-9a-fA-F]{6}", str(self.colour)) is not None,
               "colour", self.colour, "a colour as #rrggbb")

    @property
    def what_trains(self) -> str:
        """What trains, in words: every layer, the new last layer, or named blocks and the new last layer."""
        if self.trains == ALL:
            return "every layer"
        blocks = [block for block in self.trains if block != HEAD]
        return " and ".join([*blocks, "the new last layer"]) if HEAD in self.trains else " and ".join(blocks)

    def settings(self, weights: str) -> dict[str, Any]:
        """What a run of this experiment records as its settings: kind, optimizer, what trains and
        the weights it starts from (``weights`` unless the entry forces its own)."""
        return {"kind": self.kind, "optimizer": self.optimizer,
                "trains": self.trains if self.trains == ALL else list(self.trains),
                "weights": self.weights or weights}


EXPERIMENTS: dict[str, Experiment] = {}
"""Every experiment, by name, in registration order."""


def _free_colour() -> str:
    used = {entry.colour for entry in EXPERIMENTS.values()}
    return next((c for c in SPARE_COLOURS if c not in used), SPARE_COLOURS[len(EXPERIMENTS) % len(SPARE_COLOURS)])


def register_experiment(entry: Experiment) -> Experiment:
    """Add ``entry`` to the registry (a colour is assigned when it names none) and return it as
    registered. Its kind is looked up when a run is validated."""
    if entry.colour is None:
        entry = Experiment(**{**vars(entry), "colour": _free_colour()})
    EXPERIMENTS[entry.name] = entry
    return entry


def experiment(name: str) -> Experiment:
    """The registered experiment ``name``; ``ValueError`` naming the choices otherwise."""
    expect(name in EXPERIMENTS, "experiment", name, ", ".join(EXPERIMENTS))
    return EXPERIMENTS[name]


def profile_experiments(profile: str) -> tuple[str, ...]:
    """The experiments a profile runs by default, read from the registry when asked (so that an
    experiment registered later and naming the profile is in it)."""
    return tuple(name for name, entry in EXPERIMENTS.items() if profile in entry.profiles)


def experiment_colour(label: str) -> str:
    """The colour of an experiment (``label`` or a label that starts with its name, as
    ``"finetune-sgd lr=0.01"``); a name outside the registry gets a spare colour chosen from the
    name, the same in every figure."""
    base = label.split()[0] if label else label
    if base in EXPERIMENTS:
        return EXPERIMENTS[base].colour
    return SPARE_COLOURS[sum(map(ord, label)) % len(SPARE_COLOURS)]


for _entry in (
    Experiment("finetune-sgd", "finetune", "sgd", colour="#1f77b4", published_acc=78.90,
               published_seconds=31 * 60 + 43, profiles=("smoke", "quick", "tutorial"),
               description="every layer trains, SGD with momentum"),
    Experiment("finetune-adam", "finetune", "adam", colour="#17becf", published_acc=80.49,
               published_seconds=31 * 60 + 9, profiles=("smoke", "quick", "tutorial"),
               description="every layer trains, Adam"),
    Experiment("extractor-sgd", "extractor", "sgd", trains=(HEAD,), colour="#d62728", published_acc=46.44,
               published_seconds=8 * 60 + 6, profiles=("smoke", "quick", "tutorial"),
               description="frozen backbone, the new head trains, SGD with momentum"),
    Experiment("extractor-adam", "extractor", "adam", trains=(HEAD,), colour="#ff7f0e", published_acc=46.43,
               published_seconds=7 * 60 + 59, profiles=("smoke", "quick", "tutorial"),
               description="frozen backbone, the new head trains, Adam"),
    Experiment("scratch", "finetune", "sgd", weights="none", colour="#7f7f7f", profiles=("smoke",),
               description="finetune-sgd from random weights: what pretraining bought, fine-tuned"),
    Experiment("extractor-random", "extractor", "adam", trains=(HEAD,), weights="none", colour="#bcbd22",
               profiles=("smoke",), description="extractor-adam on random weights: what pretraining bought, frozen"),
    Experiment("two-stage", "two-stage", "adam", trains=(HEAD,), colour="#2ca02c", profiles=("quick",),
               description="the head on the frozen backbone first, then every layer at a lower rate"),
    Experiment("discriminative", "discriminative", "adam", colour="#9467bd", profiles=("quick",),
               description="every layer trains, the rates shrinking from the head to the stem"),
):
    register_experiment(_entry)
