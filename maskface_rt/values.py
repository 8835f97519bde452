"""The one judge of a number from outside (a manifest or sidecar field, an option value, a config): its type and
range. ``True`` is not the integer 1 here, and NaN or infinity is no number in a range. ``Limit`` tables give
the ranges of a dataclass's fields (generate's options, ``--ray``'s, a model config) and say what is wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


def is_integer(value: object, low: float = -math.inf, high: float = math.inf) -> bool:
    """Whether ``value`` is an int (not a bool) in low..high."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_number(value: object, low: float = -math.inf, high: float = math.inf) -> bool:
    """Whether ``value`` is a finite int or float (not a bool) in low..high."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


@dataclass(frozen=True)
class Limit:
    """The range of one field: an integer (or, with ``integer=False``, a number) in low..high."""

    low: float
    high: float
    integer: bool = True

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` ("must be an integer in 1..64, got 0"), or None."""
        if (is_integer if self.integer else is_number)(value, self.low, self.high):
            return None
        kind = "an integer" if self.integer else "a number"
        return f"must be {kind} in {_bound(self.low)}..{_bound(self.high)}, got {value!r}"


def limit_problems(values: object, limits: Mapping[str, Limit], *, none_ok: bool = False) -> list[tuple[str, str]]:
    """(field, problem) of each field of ``values`` outside its ``limits`` entry, in the table's order;
    ``none_ok``: a None field (a default chosen later) is no problem."""
    found = []
    for name, limit in limits.items():
        value = getattr(values, name)
        if value is None and none_ok:
            continue
        if problem := limit.problem(value):
            found.append((name, problem))
    return found


def _bound(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
