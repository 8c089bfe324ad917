"""Shared helpers of the ``rnntools.functional`` test modules.

Every test of the functional API runs a problem (an
:class:`strategies.RNNProblem` and its :class:`strategies.RNNArrays`) forward
and backward, either through ``rnntools`` or through the references of
``naive.py``, and compares the results. The helpers here do that once, and
return the results as one flat ``dict`` of named arrays so that a comparison
is a loop over names and a failure message names the array that differs.
"""

import numpy as np
from naive import naive_backward, naive_forward

from rnntools import rnn_backward, rnn_forward

#: ``(cell, nonlinearity)`` of every cell variant.
VARIANTS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
VARIANT_IDS = ["rnn-tanh", "rnn-relu", "lstm", "gru"]


def state_arrays(cell, state):
    """``[h]`` for rnn and gru, ``[h, c]`` for lstm."""
    return list(state) if cell == "lstm" else [state]


def state_from_arrays(cell, arrays):
    """Inverse of :func:`state_arrays`."""
    return tuple(arrays) if cell == "lstm" else arrays[0]


def state_names(cell):
    """Names of a state's arrays: ``["h"]``, or ``["h", "c"]`` for lstm."""
    return ["h", "c"] if cell == "lstm" else ["h"]


def map_state(state, function):
    """Apply ``function`` to every array of a state (array, tuple or None)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(function(part) for part in state)
    return function(state)


def flatten_results(cell, output, final_state, grads, d_x, d_initial_state):
    """Forward and backward results as one dict of named arrays.

    Returns
    -------
    dict of str to ndarray
        ``output``, ``final_h`` (``final_c``), ``grad_<key>`` for every
        parameter key, ``d_x``, ``d_initial_h`` (``d_initial_c``).
    """
    results = {"output": output}
    for name, part in zip(
        state_names(cell), state_arrays(cell, final_state), strict=True
    ):
        results[f"final_{name}"] = part
    results.update({f"grad_{key}": value for key, value in grads.items()})
    results["d_x"] = d_x
    for name, part in zip(
        state_names(cell), state_arrays(cell, d_initial_state), strict=True
    ):
        results[f"d_initial_{name}"] = part
    return results


def run_rnntools(problem, arrays, **overrides):
    """``rnn_forward`` then ``rnn_backward`` on a problem.

    Parameters
    ----------
    problem : RNNProblem
    arrays : RNNArrays
        Their dtype is the compute dtype.
    **overrides
        Replace ``x``, ``params``, ``d_output``, ``d_final_state`` or any
        keyword argument of ``rnn_forward``.

    Returns
    -------
    dict of str to ndarray
        See :func:`flatten_results`.
    """
    kwargs = {
        "x": arrays.x,
        "params": arrays.params,
        "d_output": arrays.d_output,
        "d_final_state": arrays.d_final_state,
        **problem.forward_kwargs(arrays),
        **overrides,
    }
    d_output = kwargs.pop("d_output")
    d_final_state = kwargs.pop("d_final_state")
    output, final_state, cache = rnn_forward(**kwargs)
    grads, d_x, d_initial_state = rnn_backward(cache, d_output, d_final_state)
    return flatten_results(
        problem.cell, output, final_state, grads, d_x, d_initial_state
    )


def run_naive(problem, arrays):
    """Like :func:`run_rnntools`, through ``naive_forward`` / ``naive_backward``."""
    kwargs = problem.forward_kwargs(arrays)
    output, final_state = naive_forward(arrays.x, arrays.params, **kwargs)
    grads, d_x, d_initial_state = naive_backward(
        arrays.x,
        arrays.params,
        d_output=arrays.d_output,
        d_final_state=arrays.d_final_state,
        **kwargs,
    )
    return flatten_results(
        problem.cell, output, final_state, grads, d_x, d_initial_state
    )


def as_float64(arrays):
    """The same problem's arrays, converted exactly to float64."""

    def to_float64(value):
        return value.astype(np.float64)

    return type(arrays)(
        x=to_float64(arrays.x),
        params={key: to_float64(value) for key, value in arrays.params.items()},
        lengths=arrays.lengths,
        initial_state=map_state(arrays.initial_state, to_float64),
        d_output=to_float64(arrays.d_output),
        d_final_state=map_state(arrays.d_final_state, to_float64),
    )


def scaled_error(actual, desired, floor=0.0):
    """``max |actual - desired| / max(max |desired|, floor)``; 0 if they are equal.

    The error of every element is measured against the scale of the whole
    array: an element that is small only because terms cancelled carries the
    rounding error of those terms, so an element-wise relative error would be
    meaningless for it. ``floor`` does the same for a whole array that is
    small because its terms cancelled (a one-element bias gradient, say).
    """
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    difference = np.max(np.abs(actual - desired), initial=0.0)
    if difference == 0:
        return 0.0
    scale = max(np.max(np.abs(desired), initial=0.0), floor)
    return difference / scale if scale > 0 else np.inf


def assert_results_close(actual, desired, rtol, floor=0.0):
    """Every array of ``desired`` matched by ``actual`` within ``rtol``.

    Parameters
    ----------
    actual, desired : dict of str to ndarray
        As returned by :func:`run_rnntools` / :func:`run_naive`.
    rtol : float
        Bound of :func:`scaled_error`.
    floor : float, default 0
        Smallest scale an array is measured against (see
        :func:`scaled_error`).
    """
    assert actual.keys() == desired.keys()
    errors = []
    for name, expected in desired.items():
        assert actual[name].shape == expected.shape, name
        error = scaled_error(actual[name], expected, floor)
        if not error <= rtol:
            errors.append(f"{name}: scaled error {error:.3g} > {rtol:.3g}")
    assert not errors, "\n".join(errors)


def assert_results_equal(actual, desired):
    """Bit-for-bit equality (NaN nowhere) of two :func:`run_rnntools` results."""
    assert actual.keys() == desired.keys()
    for name, expected in desired.items():
        assert actual[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(actual[name], expected, err_msg=name)
