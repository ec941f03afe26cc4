"""The run list of a comparison: experiments x grid points x seeds, its folders and its shards.

A *run* is one experiment at one grid point with one seed. Runs of the same experiment and grid
point form a *group* (a row of the report); runs with the same seed share their data split and
subsets, so groups compare seed by seed (paired runs). The run list has a stable order, so
``--shard I/N`` names the same disjoint slice on every machine that builds it.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from .parameters import PARAMETERS, parse_value

RUNNER_OWNED = {"experiment": "--experiments", "seed": "--seeds", "output_dir": "--output-dir"}
"""Parameters the runner sets itself, and the option that sets them instead."""


@dataclass(frozen=True)
class Run:
    """One run: an experiment, its grid values (name -> value, in grid order) and a seed."""

    experiment: str
    seed: int
    grid: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def group(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """What the run shares with the other seeds of its row of the report."""
        return self.experiment, self.grid

    @property
    def folder(self) -> str:
        """The run's folder, relative to the report: ``<experiment>[/<grid values>]/seed-<seed>``."""
        return f"{group_folder(self.experiment, dict(self.grid))}/{seed_folder(self.seed)}"


def seed_folder(seed: int) -> str:
    """The folder name of one seed's run inside its group folder."""
    return f"seed-{seed}"


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value)).strip("_") or "_"


def group_folder(experiment: str, grid: dict[str, Any]) -> str:
    """The folder of a group: the experiment, then one ``name=value`` per grid parameter."""
    if not grid:
        return experiment
    return experiment + "/" + ",".join(f"{name}={_slug(value)}" for name, value in grid.items())


def parse_seeds(text: str) -> list[int]:
    """``"5"`` -> seeds 0..4; ``"0,3,7"`` -> those seeds (``"3,"`` is seed 3 alone)."""
    items = [item.strip() for item in str(text).split(",")]
    try:
        if len(items) == 1:
            count = int(items[0])
            if count < 1:
                raise ValueError
            return list(range(count))
        seeds = [int(item) for item in items if item]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected a count (5 = seeds 0..4) or a comma-separated list of "
                         "integers (0,3,7)") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds {text!r}: expected distinct non-negative integers")
    return seeds


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """Parse ``NAME=V1,V2,...`` items into ``{name: [typed values]}`` (values typed by the
    parameter's declaration); refuse unknown names, repeated names or values, and runner-owned names."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not text.strip():
            raise ValueError(f"--grid {item!r}: expected NAME=V1,V2,...")
        if name in RUNNER_OWNED:
            raise ValueError(f"--grid {name}=...: use {RUNNER_OWNED[name]} instead")
        if name not in PARAMETERS:
            raise ValueError(f"--grid {item!r}: unknown parameter {name!r}, expected one of {', '.join(PARAMETERS)}")
        if name in grid:
            raise ValueError(f"--grid {name}: given twice; list all its values in one --grid")
        values = [parse_value(name, value.strip()) for value in text.split(",")]
        if len({repr(v) for v in values}) != len(values):
            raise ValueError(f"--grid {item!r}: a value is repeated")
        grid[name] = values
    return grid


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``I/N`` (1 <= I <= N) into ``(I, N)``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/4")
    return int(match[1]), int(match[2])


def expand_runs(experiments: list[str], grid: dict[str, list[Any]], seeds: list[int]) -> list[Run]:
    """Every run of a comparison, in a stable order: experiment, then grid point, then seed."""
    names = list(grid)
    points = [tuple(zip(names, values)) for values in itertools.product(*grid.values())]
    return [Run(experiment, seed, point) for experiment in experiments for point in points for seed in seeds]


def shard_runs(runs: list[Run], index: int, count: int) -> list[Run]:
    """The ``index``-th (1-based) of ``count`` contiguous, disjoint slices of ``runs`` that cover it.
    Contiguous slices keep the seeds of a group together, so a shard starts few notebooks."""
    start, stop = (index - 1) * len(runs) // count, index * len(runs) // count
    return runs[start:stop]
