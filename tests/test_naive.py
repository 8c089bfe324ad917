"""Tests that prove the references in ``naive.py`` right.

The fast kernels are checked against ``naive_forward`` / ``naive_backward``,
so those must be right on their own: here they are checked against PyTorch
(the contract's semantics) and against central finite differences (the
backward pass is the exact derivative of the forward pass).
"""

import numpy as np
import pytest
from helpers import state_arrays, state_from_arrays
from hypothesis import assume, given
from naive import make_params, naive_backward, naive_forward, relu_margin, sigmoid
from strategies import RNNProblem, rnn_problems

VARIANTS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]

# Both sides compute in float64 and differ only in rounding: BLAS summation
# order and equivalent but different formulas (e.g. of the sigmoid). Each
# operation errs by ~1e-16 relative, and a few hundred dependent operations
# (T steps x L layers, forward then backward) keep the difference below
# ~1e-13; 1e-10 leaves a wide margin, while a real mistake (a gate in the wrong
# place, a missing term, padding leaking in) shows up at 1e-3 or more.
TORCH_RTOL = 1e-10
TORCH_ATOL = 1e-10

# Central differences err by ~step**2 * |f'''| / 6 ~ 1e-13 (truncation) plus
# ~eps * |f| / step ~ 2e-10 * |f| (rounding; |f| is O(1..10) here). The check
# allows FD_RTOL of the gradient's norm plus FD_ATOL for gradients so small
# that the rounding dominates (a zero gradient leaves f exactly unchanged).
# Over 1000 drawn problems the worst error was 4% of this tolerance, while a
# wrong derivative term is off by a sizeable fraction of the gradient.
FD_STEP = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-8
# A relu pre-activation within this distance of 0 could cross the kink inside
# the finite-difference step (perturbations move it by ~FD_STEP).
RELU_MARGIN = 100 * FD_STEP


def hard_problem(cell, nonlinearity, seed=0):
    """3 layers, bidirectional, ragged lengths (full, 1 and in between), h_0 given."""
    return RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=3,
        bidirectional=True,
        batch_size=3,
        seq_len=5,
        input_size=3,
        hidden_size=4,
        lengths=(3, 5, 1),
        has_initial_state=True,
        seed=seed,
    )


def state_names(cell):
    """Names of the initial state's arrays: ``h_0`` (and ``c_0`` for lstm)."""
    return ["h_0", "c_0"] if cell == "lstm" else ["h_0"]


def initial_state_or_zeros(problem, arrays):
    """The initial state as a list of arrays, zeros when it is None."""
    if arrays.initial_state is None:
        return [np.zeros(problem.state_shape) for _ in state_names(problem.cell)]
    return state_arrays(problem.cell, arrays.initial_state)


def sequence_state(cell, state, b):
    """Sequence `b`'s part of a state (arrays cut to ``(L*D, 1, H)``), or None."""
    if state is None:
        return None
    return state_from_arrays(cell, [s[:, b : b + 1] for s in state_arrays(cell, state)])


def loss(cell, output, final_state, d_output, d_final_state):
    """``sum(output * d_output) + sum(final_state * d_final_state)``."""
    total = np.sum(output * d_output)
    for state, d_state in zip(
        state_arrays(cell, final_state), state_arrays(cell, d_final_state), strict=True
    ):
        total += np.sum(state * d_state)
    return total


def assert_close_to_torch(actual, desired, name):
    np.testing.assert_allclose(
        actual, desired, rtol=TORCH_RTOL, atol=TORCH_ATOL, err_msg=name
    )


# --------------------------------------------------------------------------
# Against PyTorch
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_reference(torch, problem, arrays):
    """Forward and backward of ``torch.nn.RNN/LSTM/GRU`` on the same problem.

    Returns
    -------
    dict
        ``output``, ``final_state`` (list of arrays), ``grads`` (dict),
        ``d_x`` and ``d_initial_state`` (list of arrays), all NumPy.
    """
    module_class = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    extra = {"nonlinearity": problem.nonlinearity} if problem.cell == "rnn" else {}
    module = module_class[problem.cell](
        problem.input_size,
        problem.hidden_size,
        num_layers=problem.num_layers,
        bidirectional=problem.bidirectional,
        batch_first=True,
        dtype=torch.float64,
        **extra,
    )
    module.load_state_dict(
        {name: torch.from_numpy(value) for name, value in arrays.params.items()}
    )

    x = torch.tensor(arrays.x, requires_grad=True)
    initial = [
        torch.tensor(state, requires_grad=True)
        for state in initial_state_or_zeros(problem, arrays)
    ]

    hx = state_from_arrays(problem.cell, initial)
    if arrays.lengths is None:
        output, final_state = module(x, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.from_numpy(arrays.lengths), batch_first=True, enforce_sorted=False
        )
        packed_output, final_state = module(packed, hx)
        output, _ = torch.nn.utils.rnn.pad_packed_sequence(
            packed_output, batch_first=True, total_length=problem.seq_len
        )

    final = state_arrays(problem.cell, final_state)
    d_final = state_arrays(problem.cell, arrays.d_final_state)
    total = torch.sum(output * torch.from_numpy(arrays.d_output))
    for state, d_state in zip(final, d_final, strict=True):
        total = total + torch.sum(state * torch.from_numpy(d_state))
    total.backward()
    return {
        "output": output.detach().numpy(),
        "final_state": [state.detach().numpy() for state in final],
        "grads": {
            name: value.grad.numpy() for name, value in module.named_parameters()
        },
        "d_x": x.grad.numpy(),
        "d_initial_state": [state.grad.numpy() for state in initial],
    }


def check_against_torch(torch, problem):
    arrays = problem.make_arrays()
    kwargs = problem.forward_kwargs(arrays)
    expected = torch_reference(torch, problem, arrays)

    output, final_state = naive_forward(arrays.x, arrays.params, **kwargs)
    grads, d_x, d_initial_state = naive_backward(
        arrays.x,
        arrays.params,
        d_output=arrays.d_output,
        d_final_state=arrays.d_final_state,
        **kwargs,
    )

    assert_close_to_torch(output, expected["output"], "output")
    for index, state in enumerate(state_arrays(problem.cell, final_state)):
        assert_close_to_torch(state, expected["final_state"][index], f"state {index}")
    assert list(grads) == list(expected["grads"])
    for name, grad in grads.items():
        assert_close_to_torch(grad, expected["grads"][name], name)
    assert_close_to_torch(d_x, expected["d_x"], "d_x")
    for index, d_state in enumerate(state_arrays(problem.cell, d_initial_state)):
        assert_close_to_torch(
            d_state, expected["d_initial_state"][index], f"d_initial_state {index}"
        )


@pytest.mark.torch
@pytest.mark.parametrize("cell, nonlinearity", VARIANTS)
def test_matches_torch_bidirectional_multilayer_ragged(torch, cell, nonlinearity):
    check_against_torch(torch, hard_problem(cell, nonlinearity))


@pytest.mark.torch
@given(problem=rnn_problems())
def test_matches_torch(torch, problem):
    check_against_torch(torch, problem)


@pytest.mark.torch
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_make_params_matches_torch_state_dict(torch, cell, bidirectional):
    module_class = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    module = module_class[cell](3, 4, num_layers=2, bidirectional=bidirectional)
    params = make_params(cell, 3, 4, 2, bidirectional, np.random.default_rng(0))
    expected = {name: tuple(value.shape) for name, value in module.state_dict().items()}
    assert {name: value.shape for name, value in params.items()} == expected
    assert list(params) == list(expected)


# --------------------------------------------------------------------------
# Against finite differences
# --------------------------------------------------------------------------


def differentiable_inputs(problem, arrays):
    """Every input the loss depends on, by name: params, ``x``, ``h_0`` (``c_0``).

    A missing initial state is the zero state, made explicit here.
    """
    initial = initial_state_or_zeros(problem, arrays)
    names = state_names(problem.cell)
    return {**arrays.params, "x": arrays.x, **dict(zip(names, initial, strict=True))}


def loss_of_inputs(problem, arrays, inputs):
    """The scalar loss as a function of :func:`differentiable_inputs`."""
    params = {name: inputs[name] for name in arrays.params}
    initial = [inputs[name] for name in state_names(problem.cell)]
    kwargs = problem.forward_kwargs(arrays)
    kwargs["initial_state"] = state_from_arrays(problem.cell, initial)
    output, final_state = naive_forward(inputs["x"], params, **kwargs)
    return loss(
        problem.cell, output, final_state, arrays.d_output, arrays.d_final_state
    )


def analytic_gradients(problem, arrays):
    """:func:`naive_backward`'s gradients, named like :func:`differentiable_inputs`."""
    grads, d_x, d_initial_state = naive_backward(
        arrays.x,
        arrays.params,
        d_output=arrays.d_output,
        d_final_state=arrays.d_final_state,
        **problem.forward_kwargs(arrays),
    )
    d_initial = state_arrays(problem.cell, d_initial_state)
    names = state_names(problem.cell)
    return {**grads, "x": d_x, **dict(zip(names, d_initial, strict=True))}


def central_difference(problem, arrays, inputs, name, step):
    """``(loss(inputs[name] + step) - loss(inputs[name] - step)) / 2``.

    `step` is an array of the shape of ``inputs[name]``; divide the result by
    its norm to get the directional derivative.
    """
    plus = loss_of_inputs(problem, arrays, {**inputs, name: inputs[name] + step})
    minus = loss_of_inputs(problem, arrays, {**inputs, name: inputs[name] - step})
    return (plus - minus) / 2


@given(problem=rnn_problems())
def test_backward_matches_directional_finite_differences(problem):
    """One random direction per input array: ⟨grad, v⟩ vs (f(p+hv) - f(p-hv))/2h."""
    arrays = problem.make_arrays()
    if problem.nonlinearity == "relu":
        kwargs = problem.forward_kwargs(arrays)
        del kwargs["cell"], kwargs["nonlinearity"]
        assume(relu_margin(arrays.x, arrays.params, **kwargs) > RELU_MARGIN)
    inputs = differentiable_inputs(problem, arrays)
    analytic = analytic_gradients(problem, arrays)
    assert analytic.keys() == inputs.keys()
    rng = np.random.default_rng(problem.seed)

    errors = []
    for name, value in inputs.items():
        direction = rng.standard_normal(value.shape)
        direction /= np.linalg.norm(direction)
        numerical = (
            central_difference(problem, arrays, inputs, name, FD_STEP * direction)
            / FD_STEP
        )
        expected = np.vdot(analytic[name], direction)
        tolerance = FD_RTOL * np.linalg.norm(analytic[name]) + FD_ATOL
        if abs(numerical - expected) > tolerance:
            errors.append(f"{name}: analytic {expected!r}, numerical {numerical!r}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("cell, nonlinearity", VARIANTS)
def test_backward_matches_elementwise_finite_differences(cell, nonlinearity):
    """Every single gradient entry of a small bidirectional 2-layer ragged problem."""
    problem = RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=2,
        bidirectional=True,
        batch_size=2,
        seq_len=3,
        input_size=2,
        hidden_size=2,
        lengths=(2, 3),
        has_initial_state=True,
        seed=1,
    )
    arrays = problem.make_arrays()
    if nonlinearity == "relu":
        margin = relu_margin(
            arrays.x, arrays.params, True, arrays.lengths, arrays.initial_state
        )
        assert margin > RELU_MARGIN, "pick another seed: a pre-activation is near 0"
    inputs = differentiable_inputs(problem, arrays)
    analytic = analytic_gradients(problem, arrays)

    for name, value in inputs.items():
        numerical = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            step = np.zeros_like(value)
            step[index] = FD_STEP
            numerical[index] = (
                central_difference(problem, arrays, inputs, name, step) / FD_STEP
            )
        np.testing.assert_allclose(
            analytic[name], numerical, rtol=FD_RTOL, atol=FD_ATOL, err_msg=name
        )


# --------------------------------------------------------------------------
# Semantics that need neither PyTorch nor finite differences
# --------------------------------------------------------------------------


@given(problem=rnn_problems(ragged=True, max_layers=2))
def test_ragged_batch_equals_sequences_run_alone(problem):
    """Padding (filled with NaN here) never influences anything.

    Each sequence of a ragged batch gives the same output, final state and
    gradients as when it runs alone, cut to its own length (to rounding: the
    batch sums the parameter gradients in another order).
    """
    arrays = problem.make_arrays()
    kwargs = problem.forward_kwargs(arrays)
    lengths = arrays.lengths
    x = arrays.x.copy()
    d_output = arrays.d_output.copy()
    for b, length in enumerate(lengths):
        x[b, length:] = np.nan
        d_output[b, length:] = np.nan

    output, final_state = naive_forward(x, arrays.params, **kwargs)
    grads, d_x, d_initial_state = naive_backward(
        x,
        arrays.params,
        d_output=d_output,
        d_final_state=arrays.d_final_state,
        **kwargs,
    )

    summed_grads = {name: np.zeros_like(value) for name, value in arrays.params.items()}
    for b, length in enumerate(lengths):
        alone = {
            **kwargs,
            "lengths": None,
            "initial_state": sequence_state(problem.cell, arrays.initial_state, b),
        }
        d_final_alone = sequence_state(problem.cell, arrays.d_final_state, b)
        output_b, final_b = naive_forward(x[b : b + 1, :length], arrays.params, **alone)
        grads_b, d_x_b, d_initial_b = naive_backward(
            x[b : b + 1, :length],
            arrays.params,
            d_output=d_output[b : b + 1, :length],
            d_final_state=d_final_alone,
            **alone,
        )

        np.testing.assert_allclose(
            output[b : b + 1, :length], output_b, rtol=1e-12, atol=1e-14
        )
        assert np.all(output[b, length:] == 0)
        np.testing.assert_allclose(
            d_x[b : b + 1, :length], d_x_b, rtol=1e-12, atol=1e-14
        )
        assert np.all(d_x[b, length:] == 0)
        for state, state_b in zip(
            state_arrays(problem.cell, final_state),
            state_arrays(problem.cell, final_b),
            strict=True,
        ):
            np.testing.assert_allclose(
                state[:, b : b + 1], state_b, rtol=1e-12, atol=1e-14
            )
        for d_state, d_state_b in zip(
            state_arrays(problem.cell, d_initial_state),
            state_arrays(problem.cell, d_initial_b),
            strict=True,
        ):
            np.testing.assert_allclose(
                d_state[:, b : b + 1], d_state_b, rtol=1e-12, atol=1e-14
            )
        for name in summed_grads:
            summed_grads[name] += grads_b[name]

    for name, grad in grads.items():
        np.testing.assert_allclose(
            grad, summed_grads[name], rtol=1e-10, atol=1e-12, err_msg=name
        )


@pytest.mark.parametrize("cell, nonlinearity", VARIANTS)
def test_missing_states_mean_zeros(cell, nonlinearity):
    problem = hard_problem(cell, nonlinearity)
    arrays = problem.make_arrays()
    kwargs = problem.forward_kwargs(arrays)
    zero_state = state_from_arrays(
        cell, [np.zeros(problem.state_shape) for _ in state_names(cell)]
    )

    implicit = naive_forward(
        arrays.x, arrays.params, **{**kwargs, "initial_state": None}
    )
    explicit = naive_forward(
        arrays.x, arrays.params, **{**kwargs, "initial_state": zero_state}
    )
    np.testing.assert_array_equal(implicit[0], explicit[0])

    implicit = naive_backward(
        arrays.x, arrays.params, d_output=arrays.d_output, **kwargs
    )
    explicit = naive_backward(
        arrays.x,
        arrays.params,
        d_output=arrays.d_output,
        d_final_state=zero_state,
        **kwargs,
    )
    for name in arrays.params:
        np.testing.assert_array_equal(implicit[0][name], explicit[0][name])
    np.testing.assert_array_equal(implicit[1], explicit[1])
    for d_state, d_state_explicit in zip(
        state_arrays(cell, implicit[2]), state_arrays(cell, explicit[2]), strict=True
    ):
        np.testing.assert_array_equal(d_state, d_state_explicit)


@pytest.mark.parametrize("cell, nonlinearity", VARIANTS)
def test_float32_input_computes_in_float32(cell, nonlinearity):
    problem = hard_problem(cell, nonlinearity)
    arrays = problem.make_arrays()
    kwargs = problem.forward_kwargs(arrays)
    x32 = arrays.x.astype(np.float32)

    output, final_state = naive_forward(x32, arrays.params, **kwargs)
    grads, d_x, d_initial_state = naive_backward(
        x32, arrays.params, d_output=arrays.d_output, **kwargs
    )
    output64, _ = naive_forward(arrays.x, arrays.params, **kwargs)

    results = [output, d_x, *grads.values()]
    results += state_arrays(cell, final_state) + state_arrays(cell, d_initial_state)
    assert all(result.dtype == np.float32 for result in results)
    # float32 rounding (~6e-8) amplified by a few dozen steps.
    np.testing.assert_allclose(output, output64, rtol=1e-4, atol=1e-5)


def test_sigmoid_is_stable_and_correct():
    z = np.array([-1e4, -800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0, 1e4])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        values = sigmoid(z)
        values32 = sigmoid(z.astype(np.float32))
    moderate = np.abs(z) <= 30
    np.testing.assert_allclose(
        values[moderate], 1 / (1 + np.exp(-z[moderate])), rtol=1e-15
    )
    assert values[0] == 0 and values[-1] == 1 and values[4] == 0.5
    assert values32.dtype == np.float32
    np.testing.assert_allclose(values32, values, atol=1e-7)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_huge_inputs_raise_no_floating_point_warnings(cell):
    problem = hard_problem(cell, "tanh")
    arrays = problem.make_arrays()
    kwargs = {**problem.forward_kwargs(arrays), "initial_state": None}
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        output, _ = naive_forward(1e4 * arrays.x, arrays.params, **kwargs)
        naive_backward(
            1e4 * arrays.x, arrays.params, d_output=arrays.d_output, **kwargs
        )
    assert np.all(np.abs(output) <= 1)


def test_make_params_bounds():
    rng = np.random.default_rng(0)
    params = make_params("gru", 3, 16, 2, True, rng)
    assert all(np.abs(value).max() <= 0.25 for value in params.values())
    assert all(np.abs(value).max() > 0.2 for value in params.values())
    scaled = make_params("rnn", 3, 16, 1, False, rng, dtype=np.float32, scale=0.01)
    assert all(value.dtype == np.float32 for value in scaled.values())
    assert all(np.abs(value).max() <= 0.01 for value in scaled.values())
