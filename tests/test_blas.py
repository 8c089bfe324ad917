"""``kernels.blas``: products split into blocks for OpenBLAS's small-matrix
kernels equal the unsplit product, and the recurrent kernels that use them
stay right where they do split."""

import numpy as np
import pytest
from helpers import as_float64, assert_results_close, run_naive, run_rnntools
from strategies import RNNProblem

from rnntools.kernels.blas import (
    MAX_SPLIT_BYTES,
    MAX_TN_BYTES,
    NUMPY_TN_OUTPUTS,
    SMALL_GEMM,
    matmul,
    matmul_tn,
    weight_gradient,
)

# float32 kernels against the float64 reference on the same inputs. Their
# longest dot products have 1024 terms (lstm backward: (B, 4H) @ (4H, H)), so
# one rounds by at most 1024 u ~ 6e-5 of the size of its terms and typically
# by ~sqrt(1024) u ~ 2e-6; measured: at most 1.1e-6 over the three cells.
# 1e-4 leaves that margin; a block computed from the wrong rows or columns, or
# never written, is off by O(1).
RTOL = 1e-4

# (M, K, N): one call (below SMALL_GEMM); blocks with partial rows and
# columns; fewer than 64 columns; blocks of 8 rows (deep K); one row; K too
# deep for any block; a too large to split (MAX_SPLIT_BYTES); the last two
# are one call each.
SHAPES = [
    (4, 8, 16),
    (32, 128, 512),
    (33, 130, 515),
    (200, 600, 40),
    (20, 1500, 130),
    (1, 1000, 1200),
    (5, 2000, 70),
    (9000, 130, 20),
]


def check_product(out, a, b, depth):
    exact = a.astype(np.float64) @ b.astype(np.float64)
    # A sum of `depth` products in any order is within depth * u * sum|terms|
    # of the exact value (the classical gamma_K bound); a block written to
    # the wrong place, summed twice or left unwritten (NaN) is off by O(1).
    magnitude = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    bound = depth * np.finfo(out.dtype).eps * magnitude
    assert np.all(np.abs(out - exact) <= bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul_equals_the_product(shape, dtype):
    rows, depth, cols = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, depth)).astype(dtype)
    b = rng.standard_normal((depth, cols)).astype(dtype)
    a_before, b_before = a.copy(), b.copy()
    out = np.full((rows, cols), np.nan, dtype)
    matmul(a, b, out)
    check_product(out, a, b, depth)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)


# (K, M, N) of a.T @ b, a of shape (K, M): one call; blocks with partial
# rows, columns and sums; a too large to split (MAX_TN_BYTES, one call).
TN_SHAPES = [
    (3, 4, 5),
    (800, 256, 32),
    (801, 257, 33),
    (1600, 128, 8),
    (9000, 300, 20),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", TN_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul_tn_equals_the_product(shape, dtype):
    depth, rows, cols = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((depth, rows)).astype(dtype)
    b = rng.standard_normal((depth, cols)).astype(dtype)
    a_before, b_before = a.copy(), b.copy()
    out = np.full((rows, cols), np.nan, dtype)
    matmul_tn(a, b, out)
    check_product(out, a.T, b, depth)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)


# (K, M, N): matmul_tn's blocks; NumPy's BLAS for many outputs (512 x 128),
# and for an a too large to split (9000 x 300 float32 is 10 MiB).
GRADIENT_SHAPES = [(801, 257, 33), (700, 512, 128), (9000, 300, 20)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", GRADIENT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_gradient_equals_the_product(shape, dtype):
    depth, rows, cols = shape
    rng = np.random.default_rng(1)
    a = rng.standard_normal((depth, rows)).astype(dtype)
    b = rng.standard_normal((depth, cols)).astype(dtype)
    a_before, b_before = a.copy(), b.copy()
    out = np.full((rows, cols), np.nan, dtype)
    weight_gradient(a, b, out)
    check_product(out, a.T, b, depth)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)


def test_weight_gradient_shapes_cover_both_paths():
    blocks = [
        rows * cols < NUMPY_TN_OUTPUTS and depth * rows * 4 <= MAX_TN_BYTES
        for depth, rows, cols in GRADIENT_SHAPES
    ]
    assert blocks == [True, False, False]


def test_weight_gradient_ignores_underflow():
    # Products of numbers ~1e-30 underflow float32; NumPy checks the FPU
    # flags after BLAS, which must not warn (or raise under np.errstate).
    a = np.full((700, 512), 1e-30, np.float32)
    b = np.full((700, 128), 1e-30, np.float32)
    out = np.full((512, 128), np.nan, np.float32)
    with np.errstate(all="raise"):
        weight_gradient(a, b, out)
    np.testing.assert_array_equal(out, 0)


def test_shapes_cover_both_paths():
    """At least one float32 shape splits, and one does not."""
    split = [
        rows * depth * cols > SMALL_GEMM and rows * depth * 4 <= MAX_SPLIT_BYTES
        for rows, depth, cols in SHAPES
    ]
    assert any(split) and not all(split)
    assert SHAPES[-1][0] * SHAPES[-1][1] * 4 > MAX_SPLIT_BYTES
    split = [
        depth * rows * cols > SMALL_GEMM and depth * rows * 4 <= MAX_TN_BYTES
        for depth, rows, cols in TN_SHAPES
    ]
    assert any(split) and not all(split)
    assert TN_SHAPES[-1][0] * TN_SHAPES[-1][1] * 4 > MAX_TN_BYTES


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_kernels_equal_naive_where_products_split(cell):
    """Per-step, input and weight-gradient products of 30 sequences x 256
    hidden units are split (e.g. lstm: 30 x 256 x 1024 per step, in blocks of
    48 rows at most); ragged, bidirectional, stacked, from an initial state."""
    problem = RNNProblem(
        cell=cell,
        nonlinearity="tanh",
        num_layers=2,
        bidirectional=True,
        batch_size=60,
        seq_len=3,
        input_size=40,
        hidden_size=256,
        lengths=tuple([3, 1, 2] * 20),
        has_initial_state=True,
        seed=1,
    )
    arrays = problem.make_arrays(np.float32)
    actual = run_rnntools(problem, arrays)
    expected = run_naive(problem, as_float64(arrays))
    assert_results_close(actual, expected, RTOL, floor=1.0)
