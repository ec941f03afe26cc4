"""``metrics.json``, the record of one finished run: its schema version, the keys each version
requires, and reading one back (an older version upgraded, a broken file named with its reason).

Schema 1 (no ``schema`` key) recorded the experiment's kind as ``settings.strategy``; schema 2
names it ``settings.kind`` and adds what trains (``settings.trains``). A run whose file has every
key its own version requires is complete: it is read, never silently run again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = 2
"""The version of ``metrics.json`` this package writes."""
REQUIRED_KEYS = {
    1: ("experiment", "parameters", "history", "best_epoch", "selected_on", "test_acc", "test_acc_ci", "test_loss",
        "seconds", "device", "test_predictions", "test_targets"),
}
REQUIRED_KEYS[2] = (*REQUIRED_KEYS[1], "schema", "settings")
"""The keys each schema version requires."""


@dataclass(frozen=True)
class MetricsFile:
    """What reading a ``metrics.json`` found: the metrics in the current shape (None when the file
    cannot serve), the schema it was written with, and why it cannot serve, if so."""

    path: Path
    metrics: dict[str, Any] | None
    schema: int | None
    problem: str | None = None

    @property
    def complete(self) -> bool:
        """Whether the run is complete: the file was read and has every key of its version."""
        return self.metrics is not None


def schema_of(metrics: dict[str, Any]) -> int:
    """The schema version a metrics dict was written with (1 before versions were recorded)."""
    return int(metrics.get("schema", 1))


def upgrade(metrics: dict[str, Any]) -> dict[str, Any]:
    """A metrics dict of an older schema in the current shape (the kind under ``settings.kind``)."""
    if schema_of(metrics) >= 2:
        return metrics
    settings = dict(metrics.get("settings") or {})
    if "strategy" in settings:
        settings["kind"] = settings.pop("strategy")
    return metrics | {"settings": settings}


def read_metrics(path: str | Path) -> MetricsFile:
    """Read a ``metrics.json``: upgraded to the current shape when complete, else with the reason
    (unreadable, not JSON, keys missing for its schema)."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text())
    except OSError as error:
        return MetricsFile(path, None, None, f"cannot be read ({error.strerror or error})")
    except ValueError as error:
        return MetricsFile(path, None, None, f"is not valid JSON ({error.msg} at line {error.lineno}: truncated?)")
    if not isinstance(metrics, dict):
        return MetricsFile(path, None, None, "does not hold a JSON object")
    schema = schema_of(metrics)
    required = REQUIRED_KEYS.get(min(schema, SCHEMA), ())
    missing = [key for key in required if key not in metrics]
    if missing:
        return MetricsFile(path, None, schema, f"lacks {', '.join(missing)} (schema {schema})")
    return MetricsFile(path, upgrade(metrics), schema)


def is_complete_metrics(path: str | Path) -> bool:
    """True if ``path`` is a readable ``metrics.json`` with every key its schema requires."""
    return read_metrics(path).complete
