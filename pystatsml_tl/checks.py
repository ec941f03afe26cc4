"""The checks made on a value before any work starts, with the package's one error format:
``name=value: expected ...``. The parameter declarations (:mod:`pystatsml_tl.runs.parameters`)
are made of these, and every function that takes such a value calls the same check."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

Check = Callable[[str, Any], None]
"""A check: ``check(name, value)`` raises ``ValueError`` naming the parameter and what was expected."""


def expect(condition: bool, name: str, value: Any, expected: str) -> None:
    """Raise ``ValueError("name=value: expected ...")`` unless ``condition``."""
    if not condition:
        raise ValueError(f"{name}={value!r}: expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(name: str, value: Any) -> None:
    """An integer > 0."""
    expect(_is_int(value) and value > 0, name, value, "a positive integer")


def positive_int_or_none(name: str, value: Any) -> None:
    """None, or an integer > 0."""
    expect(value is None or (_is_int(value) and value > 0), name, value, "a positive integer or None")


def non_negative_int(name: str, value: Any) -> None:
    """An integer >= 0."""
    expect(_is_int(value) and value >= 0, name, value, "an integer >= 0")


def positive_number(name: str, value: Any) -> None:
    """A number > 0."""
    expect(_is_number(value) and value > 0, name, value, "a positive number")


def non_negative_number(name: str, value: Any) -> None:
    """A number >= 0."""
    expect(_is_number(value) and value >= 0, name, value, "a number >= 0")


def in_interval(name: str, value: Any, low: float, high: float, closed: str = "[]", noun: str = "a number") -> None:
    """A number between ``low`` and ``high``; ``closed`` says which ends belong (``"[)"``: low only)."""
    above = value >= low if closed[0] == "[" else value > low
    below = value <= high if closed[1] == "]" else value < high
    expect(_is_number(value) and above and below, name, value, f"{noun} in {closed[0]}{low:g}, {high:g}{closed[1]}")


def interval(low: float, high: float, closed: str = "[]", noun: str = "a number") -> Check:
    """The check :func:`in_interval` with its bounds fixed."""
    return partial(in_interval, low=low, high=high, closed=closed, noun=noun)


def one_of(choices: Sequence[str], separator: str = " | ") -> Check:
    """A check that the value is one of ``choices`` (listed with ``separator`` in the error)."""
    def check(name: str, value: Any) -> None:
        expect(value in choices, name, value, separator.join(choices))

    return check


def rate_factor(name: str, value: Any) -> None:
    """A factor that scales a learning rate down or keeps it: a number in (0, 1]."""
    in_interval(name, value, 0, 1, "(]")


def below_epochs(name: str, value: Any, epochs: int) -> None:
    """A number of epochs shorter than the training: an integer in [0, epochs)."""
    expect(_is_int(value) and 0 <= value < epochs, name, value, f"an integer in [0, epochs={epochs})")


def count_or_auto(name: str, value: Any) -> None:
    """A positive integer (as text or a number) or ``auto``."""
    text = str(value)
    expect(text == "auto" or (text.isdigit() and int(text) > 0), name, value, "a positive integer or auto")
