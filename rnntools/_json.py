"""Plain JSON values for model files: what a hyperparameter or a fitted
scalar may be, written and checked the same way everywhere."""

import numpy as np


def is_int(value):
    """Whether ``value`` is a JSON integer (a Python int, not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    """Whether ``value`` is a JSON number (int or float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def to_json_value(value):
    """Plain JSON for a hyperparameter or fitted scalar, or a ``TypeError``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, dict):  # class_weight: labels may not be strings
        return {
            "__pairs__": [
                [to_json_value(k), to_json_value(v)] for k, v in value.items()
            ]
        }
    raise TypeError(
        f"cannot save {type(value).__name__} {value!r} as JSON; for example, pass "
        "random_state as an int or None rather than a RandomState instance."
    )


def from_json_value(value):
    """Inverse of :func:`to_json_value`."""
    if isinstance(value, dict) and set(value) == {"__pairs__"}:
        return {k: v for k, v in value["__pairs__"]}
    return value
