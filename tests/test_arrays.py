"""``rnntools._arrays.transposed``: a C-contiguous ``array.T``, chunked or not."""

import numpy as np
import pytest

from rnntools._arrays import transposed


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
