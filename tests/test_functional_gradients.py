"""``rnn_backward`` is the derivative of ``rnn_forward``: finite-difference checks.

The loss is ``sum(output * d_output) + sum(final_state * d_final_state)`` with
a random ``d_output`` (non-zero at padded steps too, where it must be ignored)
and a random ``d_final_state``, so every output element and every final state
matters. Its gradient with respect to every parameter array, ``x`` and the
initial state (the zero state, made explicit, when none is given) is checked
in float64 against central differences of ``rnn_forward`` itself:

* on the full structural grid (cell variant x {uni, bi} x {1, 2, 3 layers}
  x {full, ragged lengths} x {with, without initial state}), with sizes and
  seed drawn by hypothesis, one random direction per array (JAX's check:
  ``<grad, v>`` against ``(f(p + h v) - f(p - h v)) / 2h``), which keeps each
  example to two forward passes per array;
* element by element on a few small fixed problems.

See Also
--------
test_naive.py : the same checks for the NumPy references.
"""

import numpy as np
import pytest
from helpers import VARIANT_IDS, VARIANTS, run_rnntools, state_arrays, state_names
from hypothesis import assume, given
from hypothesis import strategies as st
from naive import relu_margin
from strategies import RNNProblem, rnn_problems

from rnntools import rnn_forward

# Central differences err by ~step**2 * |f'''| / 6 ~ 1e-13 (truncation) plus
# ~eps * |f| / step ~ 2e-10 * |f| (rounding; |f| is O(1..10) here). The check
# allows FD_RTOL of the gradient's norm (the relative error of the brief) plus
# FD_ATOL for gradients so small that the rounding dominates. The same values
# are used, and were measured with a wide margin, for the references in
# test_naive.py; a wrong derivative term is off by a sizeable fraction of the
# gradient.
FD_STEP = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-8
# A relu pre-activation within this distance of 0 could cross the kink inside
# the finite-difference step (perturbations move it by ~FD_STEP).
RELU_MARGIN = 100 * FD_STEP


def differentiable_inputs(problem, arrays):
    """Every array the loss depends on, by name: params, ``x``, initial state.

    Returns
    -------
    inputs : dict of str to ndarray
        Parameter keys, ``"x"``, ``"initial_h"`` (and ``"initial_c"``); a
        missing initial state is the zero state, made explicit.
    gradient_names : dict of str to str
        The name of each input's gradient in :func:`helpers.run_rnntools`'s
        results.
    """
    if arrays.initial_state is None:
        initial = [np.zeros(problem.state_shape) for _ in state_names(problem.cell)]
    else:
        initial = state_arrays(problem.cell, arrays.initial_state)
    inputs = {**arrays.params, "x": arrays.x}
    gradient_names = {key: f"grad_{key}" for key in arrays.params}
    gradient_names["x"] = "d_x"
    for name, value in zip(state_names(problem.cell), initial, strict=True):
        inputs[f"initial_{name}"] = value
        gradient_names[f"initial_{name}"] = f"d_initial_{name}"
    return inputs, gradient_names


def loss_of_inputs(problem, arrays, inputs):
    """The scalar loss, through ``rnn_forward``, as a function of the inputs."""
    params = {key: inputs[key] for key in arrays.params}
    initial = [inputs[f"initial_{name}"] for name in state_names(problem.cell)]
    kwargs = problem.forward_kwargs(arrays)
    kwargs["initial_state"] = tuple(initial) if problem.cell == "lstm" else initial[0]
    output, final_state, _ = rnn_forward(inputs["x"], params, **kwargs)
    total = np.sum(output * arrays.d_output)
    for state, d_state in zip(
        state_arrays(problem.cell, final_state),
        state_arrays(problem.cell, arrays.d_final_state),
        strict=True,
    ):
        total += np.sum(state * d_state)
    return total


def central_difference(problem, arrays, inputs, name, step):
    """``(loss(inputs[name] + step) - loss(inputs[name] - step)) / 2``."""
    plus = loss_of_inputs(problem, arrays, {**inputs, name: inputs[name] + step})
    minus = loss_of_inputs(problem, arrays, {**inputs, name: inputs[name] - step})
    return (plus - minus) / 2


def assume_away_from_relu_kinks(problem, arrays):
    """Skip relu problems whose pre-activations come within reach of 0."""
    if problem.nonlinearity == "relu":
        margin = relu_margin(
            arrays.x,
            arrays.params,
            problem.bidirectional,
            arrays.lengths,
            arrays.initial_state,
        )
        assume(margin > RELU_MARGIN)


GRID = [
    pytest.param(
        cell,
        nonlinearity,
        bidirectional,
        num_layers,
        ragged,
        with_initial_state,
        id=f"{variant_id}-{'bi' if bidirectional else 'uni'}-L{num_layers}"
        f"-{'ragged' if ragged else 'full'}-{'h0' if with_initial_state else 'zero'}",
    )
    for (cell, nonlinearity), variant_id in zip(VARIANTS, VARIANT_IDS, strict=True)
    for bidirectional in (False, True)
    for num_layers in (1, 2, 3)
    for ragged in (False, True)
    for with_initial_state in (False, True)
]


@pytest.mark.parametrize(
    "cell, nonlinearity, bidirectional, num_layers, ragged, with_initial_state", GRID
)
@given(data=st.data())
def test_gradients_match_directional_finite_differences(
    data, cell, nonlinearity, bidirectional, num_layers, ragged, with_initial_state
):
    """One random unit direction per input array, on the whole structural grid."""
    problem = data.draw(
        rnn_problems(
            cells=(cell,),
            nonlinearities=(nonlinearity,),
            min_layers=num_layers,
            max_layers=num_layers,
            bidirectional=bidirectional,
            ragged=ragged,
            with_initial_state=with_initial_state,
        ),
        label="problem",
    )
    if ragged:  # at least one sequence really is shorter than T
        assume(min(problem.lengths) < problem.seq_len)
    arrays = problem.make_arrays()
    assume_away_from_relu_kinks(problem, arrays)
    analytic = run_rnntools(problem, arrays)
    inputs, gradient_names = differentiable_inputs(problem, arrays)
    rng = np.random.default_rng(problem.seed)

    errors = []
    for name, value in inputs.items():
        gradient = analytic[gradient_names[name]]
        assert gradient.shape == value.shape, name
        direction = rng.standard_normal(value.shape)
        direction /= np.linalg.norm(direction)
        numerical = (
            central_difference(problem, arrays, inputs, name, FD_STEP * direction)
            / FD_STEP
        )
        expected = np.vdot(gradient, direction)
        tolerance = FD_RTOL * np.linalg.norm(gradient) + FD_ATOL
        if not abs(numerical - expected) <= tolerance:
            errors.append(
                f"{name}: <grad, v> = {expected!r}, finite difference {numerical!r}"
            )
    assert not errors, "\n".join(errors)


FIXED_PROBLEMS = [
    pytest.param(
        {
            "num_layers": 2,
            "bidirectional": True,
            "batch_size": 3,
            "seq_len": 4,
            "input_size": 2,
            "hidden_size": 2,
            "lengths": (2, 4, 1),
            "has_initial_state": True,
        },
        id="bi-L2-ragged-h0",
    ),
    pytest.param(
        {
            "num_layers": 3,
            "bidirectional": False,
            "batch_size": 2,
            "seq_len": 3,
            "input_size": 3,
            "hidden_size": 2,
            "lengths": None,
            "has_initial_state": False,
        },
        id="uni-L3-full-zero",
    ),
]


@pytest.mark.parametrize("structure", FIXED_PROBLEMS)
@pytest.mark.parametrize("cell, nonlinearity", VARIANTS, ids=VARIANT_IDS)
def test_gradients_match_elementwise_finite_differences(cell, nonlinearity, structure):
    """Every single entry of every gradient of a few small problems."""
    problem = RNNProblem(cell=cell, nonlinearity=nonlinearity, seed=3, **structure)
    arrays = problem.make_arrays()
    if nonlinearity == "relu":
        margin = relu_margin(
            arrays.x,
            arrays.params,
            problem.bidirectional,
            arrays.lengths,
            arrays.initial_state,
        )
        assert margin > RELU_MARGIN, "pick another seed: a pre-activation is near 0"
    analytic = run_rnntools(problem, arrays)
    inputs, gradient_names = differentiable_inputs(problem, arrays)

    for name, value in inputs.items():
        numerical = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            step = np.zeros_like(value)
            step[index] = FD_STEP
            numerical[index] = (
                central_difference(problem, arrays, inputs, name, step) / FD_STEP
            )
        np.testing.assert_allclose(
            analytic[gradient_names[name]],
            numerical,
            rtol=FD_RTOL,
            atol=FD_ATOL,
            err_msg=name,
        )
