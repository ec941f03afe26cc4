"""Progress of a run while its notebooks execute: each run is reported as it completes, with a bar
on a terminal and one line per run when the output is a file or a CI log."""
from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from tqdm.auto import tqdm

from .metrics import is_complete_metrics


class RunProgress:
    """Watch the ``metrics.json`` files of ``runs`` (``{label: path}``) appear, from a background
    thread polling every ``interval`` seconds; report each with ``log`` (a line) or, on a terminal,
    on a bar. Use as a context manager around the execution."""

    def __init__(self, runs: dict[str, Path], log: Callable[[str], None], stream: TextIO | None = None,
                 interval: float = 1.0):
        self.pending = dict(runs)
        self.total = len(runs)
        self.done = 0
        self.log = log
        self.interval = interval
        stream = stream or sys.stderr
        self.bar = tqdm(total=self.total, desc="runs", unit="run", file=stream, dynamic_ncols=True) \
            if stream.isatty() and runs else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="run-progress", daemon=True)

    def __enter__(self) -> RunProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()
        if self.bar is not None:
            self.bar.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """Report the runs completed since the last poll."""
        for label, path in list(self.pending.items()):
            if not is_complete_metrics(path):
                continue
            del self.pending[label]
            self.done += 1
            try:
                accuracy = f"test accuracy {100 * json.loads(path.read_text())['test_acc']:.2f}%"
            except (OSError, ValueError, KeyError):
                accuracy = "complete"
            if self.bar is not None:
                self.bar.set_postfix_str(f"{label}: {accuracy}", refresh=False)
                self.bar.update(1)
            else:
                self.log(f"{label}: {accuracy} ({self.done} of {self.total} runs done)")
