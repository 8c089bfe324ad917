"""The fast kernels of ``rnntools.functional`` equal the references of ``naive.py``.

``naive.py`` is checked against PyTorch and finite differences
(``test_naive.py``), so agreement here means the kernels are right. Every
result is compared: ``output``, the final state, the gradient of every
parameter, ``d_x`` and the gradient of the initial state, for hypothesis-drawn
problems over every cell variant, 1 to 3 layers, uni- and bidirectional,
full and ragged lengths, with and without an initial state.

Errors are measured against the scale of each array, or 1 if that is larger
(see :func:`helpers.scaled_error` and the tolerances below).
"""

import numpy as np
import pytest
from helpers import as_float64, assert_results_close, run_naive, run_rnntools
from hypothesis import assume, given
from naive import relu_margin
from strategies import rnn_problems

# float64: both sides do the same arithmetic in a different order (BLAS
# blocking, fused multiply-adds, another exp/tanh formula), each operation
# rounding by <= 1.1e-16 relative. The longest dependency chain of a drawn
# problem (T <= 6 steps x L <= 3 layers, forward then backward, each step a
# dot product of <= 15 terms and ~10 pointwise operations) has ~10^3
# operations, so the difference stays below ~1e-13 of the size of the terms
# even if every rounding error added up; 1e-12 is the brief's bound. Every
# result is a sum of products of O(1) terms (inputs and upstream gradients
# ~N(0, 1), weights <= 1, activations in (-1, 1)), so an array smaller than 1
# is small because its terms cancelled and keeps their absolute rounding
# error: errors are measured against max(scale, 1) (FLOOR). Measured over
# 6000 drawn problems: at most 3e-15; without the floor, a one-element bias
# gradient that cancelled to 1e-4 reached 9e-12. A real mistake (a wrong gate,
# a missing term, padding leaking in) is off by 1e-3 or more.
FLOAT64_RTOL = 1e-12
FLOOR = 1.0

# float32 kernels are compared with the float64 reference on the same
# (float32-representable) inputs, so the difference is float32's own rounding:
# unit roundoff u = 2**-24 ~ 6e-8 per operation. Along the ~10^3-operation
# chain above the worst case is 1e3 * u ~ 6e-5 of the size of the terms
# (errors of random sign typically grow like sqrt(1e3) * u ~ 2e-6 instead);
# hence 1e-4, measured against max(scale, 1) as in float64. Measured over
# 3000 drawn problems: at most 2e-6. Without the floor, one-element bias
# gradients that cancelled to ~3e-3 reached 2e-4.
# A formula mistake, a constant of the wrong value or float16-like precision
# shows up far above 1e-4.
FLOAT32_RTOL = 1e-4

# Nearer than this to the relu kink, the two sides may round a pre-activation
# to different sides of 0, and the gradients then legitimately differ by O(1).
# Pre-activations are O(1) sums whose rounding error is bounded as above
# (~1e-13 in float64, ~6e-5 and typically ~2e-6 in float32).
RELU_MARGINS = {np.float64: 1e-9, np.float32: 1e-4}


def assume_away_from_relu_kinks(problem, arrays):
    """Skip relu problems with a pre-activation within rounding reach of 0."""
    if problem.nonlinearity == "relu":
        margin = RELU_MARGINS[arrays.x.dtype.type]
        arrays = as_float64(arrays)
        assume(
            relu_margin(
                arrays.x,
                arrays.params,
                problem.bidirectional,
                arrays.lengths,
                arrays.initial_state,
            )
            > margin
        )


TOLERANCES = {np.float64: FLOAT64_RTOL, np.float32: FLOAT32_RTOL}
DTYPES = [
    pytest.param(np.float64, id="float64"),
    pytest.param(np.float32, id="float32"),
]


def check_against_naive(problem, dtype):
    """Kernels in ``dtype`` against the float64 reference on the same inputs."""
    arrays = problem.make_arrays(dtype)
    assume_away_from_relu_kinks(problem, arrays)
    actual = run_rnntools(problem, arrays)
    assert all(value.dtype == dtype for value in actual.values())
    expected = run_naive(problem, as_float64(arrays))
    assert_results_close(actual, expected, TOLERANCES[dtype], FLOOR)


@pytest.mark.parametrize("dtype", DTYPES)
@given(problem=rnn_problems())
def test_kernels_equal_naive(dtype, problem):
    check_against_naive(problem, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(problem=rnn_problems(bidirectional=True, ragged=True, min_layers=2))
def test_kernels_equal_naive_on_bidirectional_ragged_stacks(dtype, problem):
    """The hardest structure on its own, so that every run exercises it."""
    check_against_naive(problem, dtype)
