"""Extensions installed as packages: every entry point of the group ``pystatsml_tl.extensions``
is loaded once, before parameters are validated and when the command starts, so that the kinds,
experiments and data sets it registers reach every process, the papermill kernels of
``pystatsml-tl run`` included. An entry point names a module (registering on import) or a
function (called with no argument)::

    [project.entry-points."pystatsml_tl.extensions"]
    my_lab = "my_lab.registrations"

Registering from a notebook or a script instead serves that process only: runs in the same
process (``run_experiment``, the lesson), not the separate kernels that ``pystatsml-tl run`` starts.
"""
from __future__ import annotations

import logging
from importlib.metadata import entry_points

GROUP = "pystatsml_tl.extensions"
logger = logging.getLogger(__name__)
_loaded: set[str] = set()


def load_extensions() -> list[str]:
    """Load each installed extension not loaded yet (in name order); return the names of those
    loaded now. An extension that fails to load raises, naming it, before any work starts."""
    loaded = []
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        if point.name in _loaded:
            continue
        _loaded.add(point.name)
        try:
            target = point.load()
            if callable(target):
                target()
        except Exception as error:
            raise RuntimeError(f"extension {point.name!r} ({point.value}) failed to load: {error}") from error
        logger.info("loaded extension %s (%s)", point.name, point.value)
        loaded.append(point.name)
    return loaded
