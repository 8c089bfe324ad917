"""Matrix products in blocks that OpenBLAS computes with its small-matrix kernels.

Numba's ``np.dot`` calls SciPy's OpenBLAS. For single-precision products of at
most ``100**3`` multiply-adds (``M * N * K``), that OpenBLAS (0.3.30,
SkylakeX kernels on this AVX-512 machine) runs a kernel that packs nothing;
above it, the general kernel packs both operands on every call. The per-step
products of a recurrent layer are just above the line, and pay for packing
the whole recurrent weight at every timestep. Measured on one thread,
GFLOP/s of ``np.dot`` then of the same product in blocks:

====================  ========  ========
M x K x N              np.dot    blocks
====================  ========  ========
32 x 128 x 512            73       115
64 x 1024 x 256           86       115
128 x 512 x 2048          87       108
800 x 32 x 256            91       112
12800 x 128 x 1024        95        89
====================  ========  ========

So :func:`matmul` splits a float32 product into blocks of at most
:data:`SMALL_GEMM` multiply-adds, 64 columns wide, each one BLAS call on
strided views (no copies). The blocks re-read ``a`` once per 64 columns of
the result, which loses once ``a`` no longer stays in cache (the last row:
``a`` is 6.2 MiB), hence :data:`MAX_SPLIT_BYTES`; per-step products are far
below it. Float64 keeps one call: its small kernel gained little or lost
(measured 44-57 GFLOP/s either way).

:func:`matmul_tn` (``a.T @ b``, the weight gradients: a sum over all
``T * B`` rows) also splits that sum and accumulates. There the blocks re-read
``a`` once per 64 columns of the result, which pays while ``a`` stays in
cache and loses once it streams from memory (``a`` is ``rows x M``; 3200 x 512
is 6.25 MiB):

=====================  ========  ========
rows x M x N            np.dot    blocks
=====================  ========  ========
800 x 256 x 32             71       114
1600 x 128 x 8             29        81
3200 x 512 x 128           77       100
6400 x 1024 x 256          89        78
6400 x 2048 x 512          97        74
=====================  ========  ========

hence :data:`MAX_TN_BYTES`. But wherever ``a.T @ b`` has many outputs the
blocks lose to NumPy's own OpenBLAS (0.3.31 on the Xeon with AVX-512 of
2026-11-30; SciPy's is 0.3.30), called from Python, so
:func:`weight_gradient` hands those products to NumPy. One thread, GFLOP/s,
best of 30 calls, Numba's ``np.dot`` or blocks (:func:`matmul_tn`) then
NumPy's ``np.matmul(a.T, b)``:

=====================  ===========  =======
rows x M x N            matmul_tn    NumPy
=====================  ===========  =======
400 x 256 x 64             179        131
1600 x 128 x 32            156        110
6400 x 128 x 32            105         88
3200 x 256 x 64            138        123
1600 x 256 x 128           122        136
400 x 1024 x 256           109        146
3200 x 512 x 128           114        138
1000 x 2048 x 512           92        152
6400 x 1024 x 256          123        136
6400 x 2048 x 512          136        146
=====================  ===========  =======

hence :data:`NUMPY_TN_OUTPUTS`.

The calls go through ``numba_xxgemm``, the C helper behind Numba's own
``np.dot`` (it resolves SciPy's ``sgemm``/``dgemm`` when first called), so
kernels that use it stay cacheable.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.linalg import (
    check_blas_return,
    ensure_blas,
    get_blas_kind,
    make_constant_slot,
)

from ._jit import KERNEL_OPTIONS, OVERLOAD_OPTIONS, SIMD_VECTOR_BYTES

#: Largest ``rows * cols * depth`` of one block: OpenBLAS's small-matrix
#: kernels take products up to ``100**3`` multiply-adds.
SMALL_GEMM = 1_000_000
#: Columns per block (four AVX-512 vectors of float32).
BLOCK_COLUMNS = 64
#: :func:`matmul` splits only while ``a`` is at most this many bytes.
MAX_SPLIT_BYTES = 4 * 2**20
#: :func:`matmul_tn` splits only while ``a`` is at most this many bytes.
MAX_TN_BYTES = 8 * 2**20
#: :func:`weight_gradient` calls NumPy's BLAS from this many elements of the
#: result (``M * N``) on, and wherever :func:`matmul_tn` would not split.
NUMPY_TN_OUTPUTS = 32 * 1024
#: Whether :func:`weight_gradient` uses :func:`matmul_tn`'s blocks at all:
#: only on a CPU with AVX-512, where OpenBLAS runs its SkylakeX kernels, which
#: have the small-matrix kernels the blocks are made for. With AVX2 only
#: (Haswell kernels, no small-matrix kernels) NumPy's BLAS won at every
#: weight gradient of the benchmark shapes: one thread of a Zen 3 EPYC,
#: GFLOP/s, best of 5, two rounds, ``matmul_tn`` then ``np.matmul(a.T, b)``:
#: 800 x 256 x 32 41-53 / 75-77, 800 x 256 x 64 63 / 85-86, 1600 x 128 x 32
#: 38-55 / 53-58, 800 x 192 x 64 43-62 / 63-84, 800 x 64 x 32 35-51 / 50-74.
TN_BLOCKS_PAY = SIMD_VECTOR_BYTES >= 64
#: Rows of the result per :func:`matmul_tn` block (the summed dimension then
#: takes what :data:`SMALL_GEMM` leaves).
TN_BLOCK_ROWS = 128

_CHAR = ir.IntType(8)
_VOID_P = ir.IntType(8).as_pointer()


@intrinsic
def _gemm_block(
    typingctx, a, a_start, lda, transpose_a, b, b_start, ldb, out, out_start, ldc,
    rows, cols, depth, accumulate,
):  # fmt: skip
    """``out[block] (+)= op(a[block]) @ b[block]`` on row-major blocks of C arrays.

    Each block starts at a flat element offset (``*_start``) of its array and
    has a leading dimension (``ld*``, elements between rows). ``op(a)`` is
    ``rows x depth``: the block of ``a`` itself, or with ``transpose_a``
    (nonzero) the transpose of a ``depth x rows`` block. ``b`` is
    ``depth x cols``, ``out`` is ``rows x cols``; ``accumulate`` (nonzero)
    adds to ``out`` instead of overwriting it. Nothing is checked: the caller
    keeps every block inside its array.
    """
    arrays = (a, b, out)
    if not all(
        isinstance(array, types.Array)
        and array.layout == "C"
        and array.dtype in (types.float32, types.float64)
        and array.dtype == a.dtype
        for array in arrays
    ):
        return None
    ensure_blas()
    signature = types.void(
        a, a_start, lda, transpose_a, b, b_start, ldb, out, out_start, ldc, rows,
        cols, depth, accumulate,
    )  # fmt: skip

    def codegen(context, builder, sig, args):
        intp = context.get_value_type(types.intp)
        values = [
            context.cast(builder, value, value_type, types.intp)
            if isinstance(value_type, types.Integer)
            else value
            for value, value_type in zip(args, sig.args, strict=True)
        ]
        (
            a_v, a_0, lda_v, transpose_v, b_v, b_0, ldb_v, out_v, out_0, ldc_v,
            m, n, k, accumulate_v,
        ) = values  # fmt: skip

        def pointer(array_type, array, start):
            data = context.make_array(array_type)(context, builder, array).data
            return builder.bitcast(builder.gep(data, [start]), _VOID_P)

        dtype = sig.args[0].dtype
        # Numba's helper behind np.dot (numba.np.linalg.call_xxgemm).
        function_type = ir.FunctionType(
            ir.IntType(32),
            [
                _CHAR,  # kind: "s" or "d"
                _CHAR,  # transa
                _CHAR,  # transb
                intp,  # m
                intp,  # n
                intp,  # k
                _VOID_P,  # alpha
                _VOID_P,  # a
                intp,  # lda
                _VOID_P,  # b
                intp,  # ldb
                _VOID_P,  # beta
                _VOID_P,  # c
                intp,  # ldc
            ],
        )
        function = cgutils.get_or_insert_function(
            builder.module, function_type, "numba_xxgemm"
        )
        zero = ir.Constant(intp, 0)
        alpha = make_constant_slot(context, builder, dtype, 1.0)
        beta = cgutils.alloca_once_value(
            builder,
            builder.select(
                builder.icmp_signed("!=", accumulate_v, zero),
                context.get_constant_generic(builder, dtype, 1.0),
                context.get_constant_generic(builder, dtype, 0.0),
            ),
        )
        no_transpose = ir.Constant(_CHAR, ord("n"))
        transpose = builder.select(
            builder.icmp_signed("!=", transpose_v, zero),
            ir.Constant(_CHAR, ord("t")),
            no_transpose,
        )
        # BLAS is column-major: out^T (cols x rows) = b^T @ op(a)^T, and a
        # row-major block read column-major is its transpose.
        status = builder.call(
            function,
            (
                ir.Constant(_CHAR, ord(get_blas_kind(dtype))),
                no_transpose,
                transpose,
                n,
                m,
                k,
                builder.bitcast(alpha, _VOID_P),
                pointer(sig.args[4], b_v, b_0),
                ldb_v,
                pointer(sig.args[0], a_v, a_0),
                lda_v,
                builder.bitcast(beta, _VOID_P),
                pointer(sig.args[7], out_v, out_0),
                ldc_v,
            ),
        )
        check_blas_return(context, builder, status)
        return context.get_dummy_value()

    return signature, codegen


def _blocks_pay(array):
    """Whether :func:`matmul` splits products of ``array``'s dtype (for
    ``@njit`` code): float32 only, see the module."""
    raise NotImplementedError("only callable from @njit code")


@overload(_blocks_pay, jit_options=OVERLOAD_OPTIONS)
def _blocks_pay_overload(array):
    pays = isinstance(array, types.Array) and array.dtype == types.float32
    return lambda array: pays


@njit(**KERNEL_OPTIONS)
def matmul(a, b, out):
    """``out = a @ b`` for C-contiguous 2-D arrays, in blocks for OpenBLAS's
    small-matrix kernels where that was measured faster (see the module).

    Parameters
    ----------
    a : ndarray of shape (M, K)
    b : ndarray of shape (K, N)
    out : ndarray of shape (M, N)
        Output; must not overlap ``a`` or ``b``.
    """
    rows, depth = a.shape
    cols = b.shape[1]
    if (
        not _blocks_pay(a)
        or rows * cols * depth <= SMALL_GEMM  # small enough (or empty) already
        or a.nbytes > MAX_SPLIT_BYTES
    ):
        np.dot(a, b, out)
        return
    # Rows per block: a multiple of 8 (the small kernels' tile height) that
    # keeps the block small. Below 8 rows (K > 1953) one call: blocks of
    # 8 x 32 instead measured slower at K = 2048 (52 against 64-72 GFLOP/s).
    block_cols = min(cols, BLOCK_COLUMNS)
    block_rows = SMALL_GEMM // (depth * block_cols) // 8 * 8
    if block_rows < 8:
        np.dot(a, b, out)
        return
    block_rows = min(rows, block_rows)
    for first_col in range(0, cols, block_cols):
        width = min(block_cols, cols - first_col)
        for first_row in range(0, rows, block_rows):
            height = min(block_rows, rows - first_row)
            _gemm_block(
                a, first_row * depth, depth, 0,
                b, first_col, cols,
                out, first_row * cols + first_col, cols,
                height, width, depth, 0,
            )  # fmt: skip


@njit(**KERNEL_OPTIONS)
def matmul_tn(a, b, out):
    """``out = a.T @ b`` for C-contiguous 2-D arrays, in blocks for
    OpenBLAS's small-matrix kernels where that was measured faster.

    Parameters
    ----------
    a : ndarray of shape (K, M)
    b : ndarray of shape (K, N)
    out : ndarray of shape (M, N)
        Output; must not overlap ``a`` or ``b``.
    """
    depth, rows = a.shape
    cols = b.shape[1]
    block_rows = min(rows, TN_BLOCK_ROWS)
    block_cols = min(cols, BLOCK_COLUMNS)
    if (
        not _blocks_pay(a)
        or rows * cols * depth <= SMALL_GEMM
        or a.nbytes > MAX_TN_BYTES
    ):
        np.dot(a.T, b, out)
        return
    block_depth = SMALL_GEMM // (block_rows * block_cols)
    for first_row in range(0, rows, block_rows):
        height = min(block_rows, rows - first_row)
        for first_col in range(0, cols, block_cols):
            width = min(block_cols, cols - first_col)
            for first in range(0, depth, block_depth):
                _gemm_block(
                    a, first * rows + first_row, rows, 1,
                    b, first * cols + first_col, cols,
                    out, first_row * cols + first_col, cols,
                    height, width, min(block_depth, depth - first), first,
                )  # fmt: skip


def weight_gradient(a, b, out):
    """``out = a.T @ b`` (a weight gradient: a sum over all ``T * B`` rows),
    by :func:`matmul_tn`'s blocks where they were measured faster (see
    :data:`TN_BLOCKS_PAY`), else by NumPy's BLAS (see the module). Plain
    Python: it picks one of two compiled products.

    Parameters
    ----------
    a : ndarray of shape (K, M)
    b : ndarray of shape (K, N)
    out : ndarray of shape (M, N)
        Output; must not overlap ``a`` or ``b``.

    All C-contiguous, one dtype.
    """
    rows, cols = out.shape
    if (
        TN_BLOCKS_PAY
        and a.dtype == np.float32
        and rows * cols < NUMPY_TN_OUTPUTS
        and a.nbytes <= MAX_TN_BYTES
    ):
        matmul_tn(a, b, out)
        return
    # Tiny gradients may underflow, as in every other product here, but NumPy
    # checks the FPU flags after BLAS and would warn (or raise).
    with np.errstate(under="ignore"):
        np.matmul(a.T, b, out=out)
