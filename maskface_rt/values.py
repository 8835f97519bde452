"""The one judge of a number from outside (a manifest or sidecar field, an option value, a config): its type and
range. ``True`` is not the integer 1 here, and NaN or infinity is no number in a range."""

from __future__ import annotations

import math


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
