"""The package's messages: library code logs through ``logging`` (loggers named after their
modules, under ``pystatsml_tl``); the command line shows them with :func:`show_messages`. The
tutorial's epoch lines of ``train_val_model`` stay prints: they are the lesson's output."""
from __future__ import annotations

import logging
import sys
from typing import TextIO

PACKAGE = "pystatsml_tl"
PREFIX = "[pystatsml-tl] "
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
"""The kernels the package starts log errors only: their start-up warning about unencrypted local
TCP is not the user's concern."""


class _CurrentStream(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record arrives (so that a
    redirected or captured stderr receives the messages)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._fixed = stream

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        """The stream given, else ``sys.stderr`` as it is now."""
        return self._fixed or sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Keep ``value``, unless it is the current ``sys.stderr`` (then follow it)."""
        self._fixed = value if value is not sys.stderr else None


def show_messages(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Show the package's messages from ``level`` on, one line each, on ``stream`` (default: the
    current ``sys.stderr``). Called once by the command line; a second call changes nothing."""
    logger = logging.getLogger(PACKAGE)
    logger.setLevel(level)
    if not any(isinstance(h, _CurrentStream) for h in logger.handlers):
        handler = _CurrentStream(stream)
        handler.setFormatter(logging.Formatter(PREFIX + "%(message)s"))
        logger.addHandler(handler)
