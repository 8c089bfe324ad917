"""The vectorised activations of the CPU kernels (``kernels.activations``)
against long-double references, and their documented edge cases.

The recurrent kernels are checked end to end elsewhere (naive references,
PyTorch, finite differences); here each function is checked alone, over a
million-scale grid that reaches the range-reduction and flush boundaries.
"""

import numpy as np
import pytest

from rnntools.kernels.activations import gate_activations, sigmoid, tanh, work_size

DTYPES = [np.float32, np.float64]
# exp(a) is flushed to zero below these (documented in kernels.activations).
EXP_FLOOR = {np.float32: -87.33, np.float64: -708.39}
# After the exact range reduction, about six rounded operations (polynomial,
# scale, 1 + e, the division, the reflection) each add at most half an ulp;
# measured at most 2.5 (float32) and 4.8 (float64) ulps.
MAX_ULPS = 6


def arguments(dtype):
    rng = np.random.default_rng(0)
    limit = -EXP_FLOOR[dtype] + 20
    return np.concatenate(
        [
            rng.standard_normal(50_000) * 5,
            np.linspace(-limit, limit, 50_001),
            np.logspace(-30, 3, 500),
            -np.logspace(-30, 3, 500),
        ]
    ).astype(dtype)


def ulps(value, reference, dtype):
    """|value - reference| in units of the last place of the reference."""
    spacing = np.spacing(np.abs(reference).astype(dtype)).astype(np.longdouble)
    return np.abs(value.astype(np.longdouble) - reference) / spacing


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_within_ulps(dtype):
    z = arguments(dtype)
    out = np.empty_like(z)
    sigmoid(z, out, np.empty(work_size(z.size), dtype))
    reference = 1 / (1 + np.exp(-z.astype(np.longdouble)))
    normal = z > EXP_FLOOR[dtype]  # below: flushed to exactly 0
    assert ulps(out[normal], reference[normal], dtype).max() <= MAX_ULPS
    assert np.all(out[~normal] == 0)
    assert np.all((out >= 0) & (out <= 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_within_ulps(dtype):
    z = arguments(dtype)
    out = np.empty_like(z)
    tanh(z, out, np.empty(work_size(z.size), dtype))
    reference = np.tanh(z.astype(np.longdouble))
    assert ulps(out, reference, dtype).max() <= MAX_ULPS
    assert np.all(np.abs(out) <= 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_cases(dtype):
    z = np.array([0.0, -0.0, 1e4, -1e4, np.inf, -np.inf, np.nan], dtype=dtype)
    out = np.empty_like(z)
    work = np.empty(work_size(z.size), dtype)
    tanh(z, out, work)
    np.testing.assert_array_equal(out[:6], [0.0, -0.0, 1, -1, 1, -1])
    assert np.signbit(out[1]) and not np.signbit(out[0])  # odd at +-0
    assert np.isnan(out[6])
    sigmoid(z, out, work)
    np.testing.assert_array_equal(out[:6], [0.5, 0.5, 1, 0, 1, 0])
    assert np.isnan(out[6])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", [sigmoid, tanh])
def test_in_place(dtype, function):
    """``z`` may be ``out`` itself (the loop reads each element first)."""
    z = arguments(dtype)
    expected = np.empty_like(z)
    work = np.empty(work_size(z.size), dtype)
    function(z, expected, work)
    function(z, z, work)
    np.testing.assert_array_equal(z, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gate_activations_by_column(dtype):
    """Sigmoid columns as :func:`sigmoid` (bit for bit: the same operations
    on ``recurrent + gates``); tanh columns as ``2 sigmoid(2x) - 1``, whose
    error is absolute: within 2 ulps of 1 (documented)."""
    rng = np.random.default_rng(1)
    rows, width = 97, 64  # rows not a multiple of any vector width
    recurrent = (rng.standard_normal((rows, width)) * 10).astype(dtype)
    gates = (rng.standard_normal((rows, width)) * 10).astype(dtype)
    columns = np.ones(width, dtype)
    columns[16:32] = 2
    z = recurrent + gates
    out = gates.copy()
    gate_activations(recurrent, out, columns, np.empty(work_size(width), dtype))
    expected = np.empty_like(z)
    sigmoid(z.ravel(), expected.ravel(), np.empty(work_size(z.size), dtype))
    sigmoid_columns = columns == 1
    np.testing.assert_array_equal(out[:, sigmoid_columns], expected[:, sigmoid_columns])
    reference = np.tanh(z[:, ~sigmoid_columns].astype(np.longdouble))
    error = np.abs(out[:, ~sigmoid_columns].astype(np.longdouble) - reference)
    assert error.max() <= 2 * np.finfo(dtype).eps
