"""Errors the package raises when something it needs cannot be had."""
from __future__ import annotations

OFFLINE_HINT = (
    "To run without network, use the synthetic data and the offline pretrained backbone: "
    "dataset='synthetic', weights='synthetic' (or weights='none' for random weights), "
    "e.g. `pystatsml-tl run --profile smoke`."
)


class ResourceUnavailableError(RuntimeError):
    """A dataset or pretrained weights are missing and could not be downloaded."""

    def __init__(self, what: str, looked_in: str, how_to_place: str, cause: BaseException | None = None):
        reason = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        super().__init__(
            f"{what} is not available and could not be downloaded{reason}.\n"
            f"Looked for it in: {looked_in}\n"
            f"To place it by hand: {how_to_place}\n"
            f"{OFFLINE_HINT}"
        )



def first_error_line(error: BaseException) -> str:
    """An error as one line: its type and the first line of its message (a failed notebook cell's
    exception name and value, for papermill's execution errors)."""
    if hasattr(error, "ename"):  # papermill's PapermillExecutionError
        text = f"{error.ename}: {error.evalue}"
    else:
        text = f"{type(error).__name__}: {error}"
    return (text.strip().splitlines() or [type(error).__name__])[0]
