"""Parity of ``rnntools.functional`` with ``torch.nn.RNN/LSTM/GRU``.

The same parameters (PyTorch's own ``state_dict`` layout, loaded with
``load_state_dict``) must give the same ``output`` and final state, and
``rnn_backward`` the same gradients as torch autograd, for the loss
``sum(output * d_output) + sum(final_state * d_final_state)``. Ragged batches
go through ``pack_padded_sequence(enforce_sorted=False)`` and
``pad_packed_sequence(total_length=T)``, which defines the packed-sequence
semantics that ``lengths`` promises. Skipped when torch is not installed.
"""

import numpy as np
import pytest
from helpers import (
    VARIANT_IDS,
    VARIANTS,
    assert_results_close,
    flatten_results,
    run_rnntools,
    state_arrays,
    state_from_arrays,
    state_names,
)
from hypothesis import given
from strategies import RNNProblem, rnn_problems

from rnntools import init_params

pytestmark = pytest.mark.torch

# Errors are measured against max(scale of the array, 1): every result is a
# sum of products of O(1) terms, and an array smaller than 1 is small because
# those terms cancelled, so it keeps their absolute rounding error (see
# test_functional_naive.py, where this was measured).
FLOOR = 1.0
# Both sides compute in float64 and differ only in rounding (BLAS summation
# order, different but equivalent exp/tanh/sigmoid formulas): ~1e-16 per
# operation over ~1e3 dependent operations (see test_functional_naive.py)
# stays below ~1e-13; 1e-10 is the brief's bound and a wide margin, while a
# semantic difference (gate order, reset-gate placement, where the reverse
# direction starts) is off by 1e-3 or more.
FLOAT64_RTOL = 1e-10
# Both sides round in float32 (u = 6e-8) along ~1e3 dependent operations:
# errors of random sign leave each within ~sqrt(1e3) * u ~ 2e-6 of the exact
# result (measured against the float64 reference in test_functional_naive.py),
# so 1e-4 (the brief's bound) holds their difference with a wide margin.
# Measured over 1500 drawn problems: at most 1.6e-6 (float64: 4e-15).
FLOAT32_RTOL = 1e-4

TOLERANCES = {np.float64: FLOAT64_RTOL, np.float32: FLOAT32_RTOL}


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_module(torch, problem, dtype):
    module_class = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    extra = {"nonlinearity": problem.nonlinearity} if problem.cell == "rnn" else {}
    return module_class[problem.cell](
        problem.input_size,
        problem.hidden_size,
        num_layers=problem.num_layers,
        bidirectional=problem.bidirectional,
        batch_first=True,
        dtype={np.float64: torch.float64, np.float32: torch.float32}[dtype],
        **extra,
    )


def run_torch(torch, problem, arrays):
    """Forward and autograd backward of the torch module on the same problem.

    Returns
    -------
    dict of str to ndarray
        Named like :func:`helpers.run_rnntools`'s results.
    """
    dtype = arrays.x.dtype.type
    module = torch_module(torch, problem, dtype)
    module.load_state_dict(
        {name: torch.from_numpy(value) for name, value in arrays.params.items()}
    )
    x = torch.tensor(arrays.x, requires_grad=True)
    if arrays.initial_state is None:
        initial_arrays = [
            np.zeros(problem.state_shape, dtype) for _ in state_names(problem.cell)
        ]
    else:
        initial_arrays = state_arrays(problem.cell, arrays.initial_state)
    initial = [torch.tensor(state, requires_grad=True) for state in initial_arrays]
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

    total = torch.sum(output * torch.from_numpy(arrays.d_output))
    for state, d_state in zip(
        state_arrays(problem.cell, final_state),
        state_arrays(problem.cell, arrays.d_final_state),
        strict=True,
    ):
        total = total + torch.sum(state * torch.from_numpy(d_state))
    total.backward()
    return flatten_results(
        problem.cell,
        output.detach().numpy(),
        state_from_arrays(
            problem.cell,
            [s.detach().numpy() for s in state_arrays(problem.cell, final_state)],
        ),
        {name: value.grad.numpy() for name, value in module.named_parameters()},
        x.grad.numpy(),
        state_from_arrays(problem.cell, [state.grad.numpy() for state in initial]),
    )


def check_against_torch(torch, problem, dtype):
    arrays = problem.make_arrays(dtype)
    actual = run_rnntools(problem, arrays)
    expected = run_torch(torch, problem, arrays)
    assert list(actual) == list(expected)
    assert all(value.dtype == dtype for value in actual.values())
    assert_results_close(actual, expected, TOLERANCES[dtype], FLOOR)


def hard_problem(cell, nonlinearity, seed=0):
    """3 layers, bidirectional, unsorted ragged lengths (T, 1 and between), h_0."""
    return RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=3,
        bidirectional=True,
        batch_size=4,
        seq_len=6,
        input_size=3,
        hidden_size=5,
        lengths=(3, 6, 1, 4),
        has_initial_state=True,
        seed=seed,
    )


DTYPES = [
    pytest.param(np.float64, id="float64"),
    pytest.param(np.float32, id="float32"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, nonlinearity", VARIANTS, ids=VARIANT_IDS)
def test_bidirectional_multilayer_ragged_batch_matches_torch(
    torch, cell, nonlinearity, dtype
):
    check_against_torch(torch, hard_problem(cell, nonlinearity), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, nonlinearity", VARIANTS, ids=VARIANT_IDS)
def test_long_batch_matches_torch(torch, cell, nonlinearity, dtype):
    """Longer sequences and wider layers than hypothesis draws."""
    problem = RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=2,
        bidirectional=True,
        batch_size=7,
        seq_len=40,
        input_size=6,
        hidden_size=16,
        lengths=(40, 1, 17, 39, 40, 2, 25),
        has_initial_state=False,
        seed=1,
    )
    check_against_torch(torch, problem, dtype)


@given(problem=rnn_problems())
def test_matches_torch_float64(torch, problem):
    check_against_torch(torch, problem, np.float64)


@given(problem=rnn_problems())
def test_matches_torch_float32(torch, problem):
    check_against_torch(torch, problem, np.float32)


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_init_params_matches_torch_state_dict(torch, cell, bidirectional, num_layers):
    module = torch_module(
        torch,
        RNNProblem(cell, "tanh", num_layers, bidirectional, 1, 1, 3, 4, None, False, 0),
        np.float32,
    )
    params = init_params(
        cell, 3, 4, num_layers=num_layers, bidirectional=bidirectional, random_state=0
    )
    state_dict = module.state_dict()
    assert list(params) == list(state_dict)
    for name, value in params.items():
        assert value.shape == tuple(state_dict[name].shape), name
        assert value.dtype == np.float32, name
    module.load_state_dict(
        {name: torch.from_numpy(value) for name, value in params.items()}, strict=True
    )
