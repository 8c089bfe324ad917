"""``rnntools._arrays``: ``transposed`` (a C-contiguous ``array.T``, chunked
or not) and ``column_sums``."""

import numpy as np
import pytest

from rnntools._arrays import column_sums, transposed


@pytest.mark.parametrize(
    "shape",
    # one copy (small; rows too long to chunk), chunks that divide the rows
    # and a ragged last chunk, single rows and columns
    [(3, 5), (256, 5000), (2048, 64), (1000, 64), (4099, 17), (1, 100), (100, 1)],
)
@pytest.mark.parametrize("dtype", [None, np.float64])
def test_transposed_is_a_contiguous_copy_of_the_transpose(shape, dtype):
    array = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    result = transposed(array, dtype)
    assert result.flags.c_contiguous
    assert result.dtype == (array.dtype if dtype is None else dtype)
    np.testing.assert_array_equal(result, array.T.astype(result.dtype))


def test_transposed_reads_strided_views():
    array = np.arange(4000.0 * 30).reshape(4000, 30)[::2, ::3]
    np.testing.assert_array_equal(transposed(array), array.T)


@pytest.mark.parametrize("shape", [(2000, 23), (7, 256), (1, 3), (0, 4), (5, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_sums_are_the_sums_over_axis_0(shape, dtype):
    matrix = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    result = column_sums(matrix)
    assert result.dtype == dtype and result.shape == (shape[1],)
    # Summed in BLAS's order, not NumPy's. Against the float64 sums: N
    # roundings of partial sums of size ~sqrt(N) (45 at N = 2000), which
    # add up like a random walk: sqrt(2000) * 45 * 6e-8 ~ 1.2e-4 in float32
    # (1e-3 leaves a factor 8; these inputs are fixed), ~1e-13 in float64.
    exact = matrix.astype(np.float64).sum(axis=0)
    tolerance = 1e-3 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(result, exact, rtol=0, atol=tolerance)
    out = np.full(shape[1], np.nan, dtype=dtype)
    assert column_sums(matrix, out=out) is out
    np.testing.assert_array_equal(out, result)
