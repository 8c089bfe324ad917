"""``row_invariant_matmul``: every row's bits independent of the batch.

Each ``out[r, j]`` must be the one chain of fused multiply-adds from zero over
``k`` ascending, whichever register tile computes it: the same bits as the
plain row-by-row loop, for every ``M`` (every tile shape and remainder), any
row order, and both dtypes; with a bias, that chain plus the bias, rounded
once (the bits of ``out += bias`` afterwards). ``row_invariant_gathered_matmul``
(every row its own ``b`` and depth) must give each row the bits of that row's
own product.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

from rnntools.kernels.row_invariant import (
    BLOCK_BYTES,
    TILE_ROWS,
    _row_by_row,
    gate_panel_bias,
    pack_gate_panels,
    pack_panels,
    panel_columns,
    row_invariant_gathered_matmul,
    row_invariant_matmul,
    row_invariant_matmul_add,
)

# (K, N): tile-sized, ragged right edges (partial vectors and single
# columns), a single column, an empty depth, and one panel's width exactly
# (32 float64, 64 float32 columns: packed and unpacked are one layout).
DEPTHS_AND_WIDTHS = [(32, 128), (64, 256), (33, 77), (5, 200), (1, 17), (0, 40),
                     (17, 16), (3, 1), (128, 100), (300, 136), (9, 32),
                     (9, 64)]  # fmt: skip


def product(kernel, a, b, bias=None, cols=None):
    out = np.full((a.shape[0], b.shape[1] if cols is None else cols), np.nan, a.dtype)
    kernel(a, b, out, np.empty(0, a.dtype) if bias is None else bias)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("depth", "width"), DEPTHS_AND_WIDTHS)
def test_every_row_count_gives_the_row_by_row_bits(dtype, depth, width):
    rng = np.random.default_rng(depth * 1000 + width)
    a = rng.standard_normal((40, depth)).astype(dtype)
    b = rng.standard_normal((depth, width)).astype(dtype)
    reference = product(_row_by_row, a, b)
    bias = rng.standard_normal(width).astype(dtype)
    with_bias = reference + bias
    np.testing.assert_array_equal(product(_row_by_row, a, b, bias), with_bias)
    for rows in [*range(1, 14), 18, 25, 40]:
        np.testing.assert_array_equal(
            product(row_invariant_matmul, a[:rows], b), reference[:rows]
        )
        np.testing.assert_array_equal(
            product(row_invariant_matmul, a[:rows], b, bias), with_bias[:rows]
        )
        # Adding a matrix, or out's own values (a single row then does not
        # stream b over them): the chain first, then one rounded add.
        out = rng.standard_normal((rows, width)).astype(dtype)
        expected = out + reference[:rows]
        np.testing.assert_array_equal(
            product(row_invariant_matmul, a[:rows], b, out.ravel()), expected
        )
        row_invariant_matmul_add(a[:rows], b, out)
        np.testing.assert_array_equal(out, expected)
        # b packed in panels: the same bits, with and without an addend.
        packed = pack_panels(b)
        np.testing.assert_array_equal(
            product(row_invariant_matmul, a[:rows], packed, cols=width),
            reference[:rows],
        )
        np.testing.assert_array_equal(
            product(row_invariant_matmul, a[:rows], packed, bias, width),
            with_bias[:rows],
        )
        out = expected - reference[:rows]
        row_invariant_matmul_add(a[:rows], packed, out)
        np.testing.assert_array_equal(out, expected)
    # float64 BLAS as a sanity bound on the values themselves: K products of
    # numbers ~1 carry a rounding error of about K * eps relative.
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(
        reference, a.astype(np.float64) @ b, rtol=0, atol=10 * max(depth, 1) * eps * 4
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_past_one_block_give_the_row_by_row_bits(dtype):
    # BLOCK_BYTES follows the machine's L2 (256 KiB to 1 MiB of a): rows of
    # 2048 numbers, two blocks and a remainder of the block's tiles, b packed
    # (several panels, as an LSTM backward step's product) and in place.
    depth, width = 2048, 136
    itemsize = np.dtype(dtype).itemsize
    block_rows = BLOCK_BYTES // (depth * itemsize) // TILE_ROWS * TILE_ROWS
    rows = 2 * block_rows + TILE_ROWS + 1
    rng = np.random.default_rng(rows)
    a = rng.standard_normal((rows, depth)).astype(dtype)
    b = rng.standard_normal((depth, width)).astype(dtype)
    reference = product(_row_by_row, a, b)
    np.testing.assert_array_equal(product(row_invariant_matmul, a, b), reference)
    np.testing.assert_array_equal(
        product(row_invariant_matmul, a, pack_panels(b), cols=width), reference
    )
    # The last row alone (a single tail row) and rows from the second block.
    np.testing.assert_array_equal(
        product(row_invariant_matmul, a[-1:], b), reference[-1:]
    )
    middle = slice(block_rows - 2, block_rows + 3)
    np.testing.assert_array_equal(
        product(row_invariant_matmul, a[middle], b), reference[middle]
    )


@given(
    st.integers(1, 60),
    st.integers(1, 40),
    st.integers(1, 150),
    st.sampled_from([np.float32, np.float64]),
    st.randoms(use_true_random=False),
)
def test_rows_follow_their_data_in_any_order(rows, depth, width, dtype, random):
    rng = np.random.default_rng(rows * depth * width)
    a = rng.standard_normal((rows, depth)).astype(dtype)
    b = rng.standard_normal((depth, width)).astype(dtype)
    out = product(row_invariant_matmul, a, b)
    order = list(range(rows))
    random.shuffle(order)
    np.testing.assert_array_equal(
        product(row_invariant_matmul, a[order], b), out[order]
    )
    row = random.randrange(rows)
    np.testing.assert_array_equal(
        product(row_invariant_matmul, a[row : row + 1], b)[0], out[row]
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 31, 32, 64, 100, 128, 130])
def test_packed_panels_hold_b_column_panel_by_panel(dtype, width):
    b = np.arange(3 * width, dtype=dtype).reshape(3, width)
    panel = panel_columns(dtype)
    panels = -(-width // panel)
    padded = np.zeros((3, panels * panel), dtype)
    padded[:, :width] = b
    expected = padded.reshape(3, panels, panel).transpose(1, 0, 2).reshape(-1, panel)
    np.testing.assert_array_equal(pack_panels(b), expected)
    # A transposed view packs the transpose of its base.
    np.testing.assert_array_equal(pack_panels(np.ascontiguousarray(b.T).T), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hidden", [1, 8, 16, 20, 32, 40])
def test_gate_panels_hold_each_units_four_gates_together(dtype, hidden):
    """Column ``g * lanes + l`` of panel ``p`` is gate ``g`` of unit
    ``p * lanes + l`` (zero past ``H``), and a product against the packed
    weight gives the plain product's columns in that order, bit for bit."""
    rng = np.random.default_rng(hidden)
    depth = 7
    b = rng.standard_normal((depth, 4 * hidden)).astype(dtype)
    bias = rng.standard_normal(4 * hidden).astype(dtype)
    lanes = panel_columns(dtype) // 4
    panels = -(-hidden // lanes)
    order = np.full(panels * 4 * lanes, -1)  # the column of b, or -1: zero
    for p in range(panels):
        for gate in range(4):
            for lane in range(lanes):
                unit = p * lanes + lane
                if unit < hidden:
                    order[(p * 4 + gate) * lanes + lane] = gate * hidden + unit
    padded_b = np.where(order >= 0, b[:, order], 0)
    padded_bias = np.where(order >= 0, bias[order], 0)
    packed = pack_gate_panels(b, hidden)
    np.testing.assert_array_equal(pack_panels(padded_b), packed)
    np.testing.assert_array_equal(
        pack_gate_panels(np.ascontiguousarray(b.T).T, hidden), packed
    )
    np.testing.assert_array_equal(gate_panel_bias(bias, hidden), padded_bias)
    a = rng.standard_normal((9, depth)).astype(dtype)
    got = product(row_invariant_matmul, a, packed, padded_bias, cols=len(order))
    plain = product(row_invariant_matmul, a, b, bias)
    used = order >= 0
    np.testing.assert_array_equal(got[:, used], plain[:, order[used]])


def test_special_values_propagate_as_in_the_loop():
    a = np.array([[np.inf, 1.0], [0.0, -0.0], [np.nan, 2.0], [1e-310, 1.0]])
    b = np.array([[1.0, -1.0, 0.0], [2.0, 3.0, 1e-310]])
    np.testing.assert_array_equal(
        product(row_invariant_matmul, a, b), product(_row_by_row, a, b)
    )


@given(
    st.integers(1, 23),
    st.integers(0, 40),
    st.integers(1, 150),
    st.sampled_from([np.float32, np.float64]),
    st.randoms(use_true_random=False),
)
def test_gathered_rows_get_the_bits_of_their_own_product(
    rows, depth, width, dtype, random
):
    # Every tile row count (1-4, and the remainders of 5-23 rows), ragged
    # right edges (partial panels, vectors and single columns), depths from
    # 0 to K (rows of one tile that stop at different k), sources repeated.
    rng = np.random.default_rng(rows * 10_000 + depth * 200 + width)
    sources = 7
    b = rng.standard_normal((sources, depth, width)).astype(dtype)
    a = rng.standard_normal((rows, depth)).astype(dtype)
    source = np.array([random.randrange(sources) for _ in range(rows)])
    depths = np.array([random.randint(0, depth) for _ in range(rows)], np.int64)
    out = np.full((rows, width), np.nan, dtype)
    row_invariant_gathered_matmul(a, b, source * depth * width, depths, out)
    for r in range(rows):
        d = depths[r]
        expected = product(
            row_invariant_matmul,
            np.ascontiguousarray(a[r : r + 1, :d]),
            np.ascontiguousarray(b[source[r], :d]),
        )
        np.testing.assert_array_equal(out[r : r + 1], expected)
    # Reordering the rows moves their results and nothing else.
    order = rng.permutation(rows)
    shuffled = np.full_like(out, np.nan)
    row_invariant_gathered_matmul(
        a[order], b, source[order] * depth * width, depths[order], shuffled
    )
    np.testing.assert_array_equal(shuffled, out[order])


def test_kernels_call_the_product_compiled_once():
    # A kernel that multiplies calls the compiled product through its cell:
    # the register tiles (512-bit FMA vectors) are not in its own code.
    @njit
    def kernel(a, b, out, bias):
        row_invariant_matmul(a, b, out, bias)

    a, b = np.ones((7, 5), np.float32), np.ones((5, 70), np.float32)
    out = product(kernel, a, b)
    np.testing.assert_array_equal(out, product(_row_by_row, a, b))
    code = kernel.inspect_llvm(kernel.signatures[0])
    assert "rnntools_row_invariant_matmul_float32" in code
    assert "llvm.fma.v16f32" not in code


def test_the_first_product_of_a_process_compiles_it():
    # In a fresh process the cell of each dtype points to a trampoline,
    # which compiles (or loads) the product on its first call, multiplies,
    # and points the cell at the compiled function.
    script = textwrap.dedent(
        """
        import numpy as np
        from rnntools.kernels import row_invariant as ri

        for dtype in (np.float64, np.float32):
            cell = ri._PRODUCT_CELLS[np.dtype(dtype)]
            assert cell._compiled is None
            rng = np.random.default_rng(0)
            a = rng.standard_normal((9, 40)).astype(dtype)
            b = rng.standard_normal((40, 70)).astype(dtype)
            out, expected = np.empty((9, 70), dtype), np.empty((9, 70), dtype)
            ri.row_invariant_matmul(a, b, out, np.empty(0, dtype))
            ri._row_by_row(a, b, expected, np.empty(0, dtype))
            assert np.array_equal(out, expected)
            assert cell._cell.value == cell._compiled.address
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
