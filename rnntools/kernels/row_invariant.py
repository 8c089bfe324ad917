"""Row-invariant matrix products in register tiles: :func:`row_invariant_matmul`
(and :func:`row_invariant_gathered_matmul`, where every row of ``a`` has its
own ``b`` and depth: attention's scores and contexts, each decoded row against
its own source).

:func:`row_invariant_matmul` computes the same bits as a plain row-by-row
loop (:func:`_row_by_row`; every
``out[r, j]`` is ``acc = 0; acc = fma(a[r, k], b[k, j], acc)`` for ``k`` in
increasing order, then stored), but in register tiles: a tile of
``TILE_ROWS`` rows by ``TILE_VECTORS`` SIMD vectors of columns keeps its
sums in registers (24 ``zmm`` with AVX-512, 8 ``ymm`` with AVX2) for the
whole ``k`` loop, where ``_row_by_row``
loads and stores its row of sums at every ``k`` and streams all of ``b`` once
per row. The tiles are LLVM IR written by :func:`_make_tile` (vector phi
nodes and explicit ``llvm.fma`` calls): Numba has no way to keep an array of
accumulators in registers, and the explicit calls fix the operations whatever
the fast-math flags. Measured on one thread of this AVX-512 machine (Zen 5),
GFLOP/s, best of 31 interleaved runs (the machine is shared and noisy; see
``asv_benchmarks/bench_row_invariant.py``), float32 then float64 (``matmul``
is :func:`.blas.matmul`, ``row by row`` is :func:`_row_by_row`):

=====================  ===========  ============  ================
M x K x N               matmul       row by row    row_invariant_matmul
=====================  ===========  ============  ================
1 x 32 x 128             45 / 29      34 / 27        74 / 47
1 x 128 x 512            64 / 34      66 / 33        63 / 33
4 x 32 x 128             22 / 20      35 / 24       210 / 119
32 x 128 x 512           77 / 52      61 / 22       239 / 115
100 x 128 x 512         103 / 58      57 / 39       254 / 123
500 x 128 x 512         103 / 60      65 / 24       256 / 115
1600 x 32 x 256         105 / 57      84 / 30       262 / 111
12800 x 128 x 1024       56 / 51      30 / 19       122 / 105
=====================  ===========  ============  ================

The 12800 x 128 x 1024 product writes 52 MB of ``out`` and is bound by memory.

Why every path gives the same bits: each output element is one chain of fused
multiply-adds from zero over ``k`` ascending, in every tile shape (6 rows,
fewer rows at the bottom of ``a``, 1 to 2 rows with wider tiles, single
vectors and a masked part of one at the right edge, whose unused lanes are
neither read nor stored) and in :func:`_row_by_row`
(whose ``out_row[j] = 0; out_row[j] += value * b_row[j]`` LLVM contracts to
the same FMA, vector and scalar alike under ``fastmath={"contract"}``). An FMA
rounds once, and lanes never mix (no horizontal sums, no reassociation), so
the result of ``out[r, j]`` depends on ``a[r]`` and ``b[:, j]`` only: not on
``M``, not on the row's position, not on which tile computed it.
"""

import ctypes
import os
import sys
import threading
import traceback

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._jit import (
    CACHE,
    KERNEL_OPTIONS,
    L2_CACHE_BYTES,
    OVERLOAD_OPTIONS,
    SIMD_REGISTERS,
    SIMD_VECTOR_BYTES,
    helper,
)

#: Bytes of one SIMD vector: 64 with AVX-512, 32 with AVX2 (see
#: :func:`._jit._simd`).
VECTOR_BYTES = SIMD_VECTOR_BYTES
#: Vectors of columns per register tile: one per gate of an LSTM's
#: gate-interleaved weights (:func:`pack_gate_panels`). 64 columns of float32,
#: 32 of float64 with AVX-512; half that with AVX2.
TILE_VECTORS = 4
#: Rows of ``a`` per register tile: with AVX-512, 6 x 4 sums in 24 of the 32
#: ``zmm`` registers, 4 for the row of ``b``, one for the broadcast
#: ``a[r, k]``; with the 16 ``ymm`` registers of AVX2, 3 x 4 sums, the 3
#: broadcasts and one vector of ``b`` at a time (the tile's IR loads each
#: vector of ``b`` just before its row of FMAs: loaded all at once, they made
#: 17 live registers and the sums were spilled). One thread of a Zen 3 EPYC
#: (AVX2), float32, packed ``b``, GFLOP/s: AVX-512's 6 x 4 tiles (sums on the
#: stack at every ``k``) 23-28 (median of 7 rounds), 3 x 4 with all of
#: ``b`` loaded first 28-37; then, best of 7 in three alternated rounds,
#: 2 x 4 tiles 72-83 at 32 x 128 x 512 and 76-81 at 128 x 512 x 2048, 3 x 4
#: 97-99 and 95 (OpenBLAS sgemm 32-78 on this noisy VM).
TILE_ROWS = 6 if SIMD_REGISTERS >= 32 else 3
#: Vectors of columns per tile for the last one or two rows (a batch of one
#: or two rows: decoding): 8 independent sums per row instead of 4, enough to
#: cover the FMA latency.
WIDE_VECTORS = 8
#: Rows that take the wide tiles: one or two (16 sums) with AVX-512, one
#: (8 sums) with AVX2's 16 registers.
WIDE_ROWS = 2 if SIMD_REGISTERS >= 32 else 1
#: A single row streams ``b`` row by row (as :func:`_row_by_row`) once ``b``
#: exceeds this many bytes: the tiles read ``b`` in column panels, rows ``N``
#: apart, which at one row of ``a`` waits on L2 (measured at 1 x 128 x 512:
#: float64 30 GFLOP/s streaming against 22 in tiles, float32 even; at
#: 1 x 32 x 128, ``b`` in L1, tiles win 47 to 27).
STREAM_BYTES = 64 * 1024
#: Rows of ``a`` per block are chosen so that the block (``rows x K``) takes
#: at most this many bytes and stays in L2 while every column panel of ``b``
#: (``K x 64`` float32) passes over it: half the L2, between 256 KiB and
#: 1 MiB. One thread of a Xeon with 2 MiB of L2, float32, an LSTM backward
#: step's product at H=512 (128 x 2048 x 512, packed ``b``), two interleaved
#: rounds: blocks of 256 KiB (30 rows, every panel read again from L3 for
#: each) 2161-2240 us, 512 KiB 1932, 1 MiB (126 rows) 1704-1806 us; products
#: whose ``a`` fits one block either way are unchanged.
BLOCK_BYTES = min(max(L2_CACHE_BYTES // 2, 256 * 1024), 1024 * 1024)
#: Each ``k`` of a tile (but the masked and gathering ones) asks for row
#: ``k + PREFETCH_ROWS`` of ``b`` in L1 (``llvm.prefetch``): a column panel
#: of ``b`` deeper than L1 otherwise arrives from L2 only as the tile asks
#: for it. One thread of the Xeon VM, float32, packed ``b``, six alternated
#: runs, best (median) GFLOP/s against none: 128 x 512 x 2048 154 (151)
#: against 141 (139), 16 x 128 x 512 184 (181) against 158 (152); 8 and 16
#: rows ahead alike; no change where a panel fits L1 (250 x 160 x 512,
#: 32 x 64 x 256) or the product is bound by memory (6400 x 64 x 2048).
#: LSTM inference at 256x50x64x512 on two threads, five alternated rounds:
#: 107.7 (119.8) ms against 119.9 (130.8). A prefetch changes no value.
PREFETCH_ROWS = 8
#: Bytes of a cache line (x86-64): the unit of a prefetch.
CACHE_LINE_BYTES = 64


def _make_tile(row_counts, vectors, masked=False, gather=False):
    """Build an intrinsic that computes one register tile of ``a @ b``.

    The intrinsic, ``tile(a, a_start, lda, b, b_start, ldb, out, out_start,
    ldc, depth, rows, addend, addend_start, addend_ld, adding)``, sets the
    ``rows x (vectors * lanes)`` block of ``out`` that starts at flat element
    ``out_start`` (rows ``ldc`` elements apart) to the product of the ``rows
    x depth`` block of ``a`` at ``a_start`` (rows ``lda`` apart) and the
    ``depth x (vectors * lanes)`` block of ``b`` at ``b_start`` (rows ``ldb``
    apart), plus, if ``adding``, the block of the 1-D ``addend`` at
    ``addend_start`` (rows ``addend_ld`` apart: 0 for a bias row, ``ldc`` for
    ``out``'s own previous values), added to the finished sums before they
    are stored (the bits of ``out += addend`` after the product, without its
    pass). ``lanes`` is ``VECTOR_BYTES // itemsize`` (16 float32, 8 float64).
    ``rows`` (runtime) must be one of ``row_counts``: the IR holds one loop
    per count (anything else writes nothing). Nothing is checked: the caller
    keeps every block inside its array.

    With ``masked`` (``vectors`` 1), the intrinsic takes one more argument,
    ``used``: only the first ``used < lanes`` columns of the block are read
    and written (masked vector loads and stores: nothing past them is
    touched), the right edge of a product whose width is not a multiple of
    ``lanes``. The other lanes compute on zeros and are never stored.

    With ``gather``, every row of ``a`` has its own ``b``: the intrinsic is
    ``tile(a, a_start, lda, b, b_starts, b_col, ldb, out, out_start, ldc,
    depth, rows, depths)`` (then ``used`` with ``masked``) and row ``i`` of
    the tile is multiplied by the block of ``b`` (any C-contiguous array, read
    flat) at ``b_starts[i] + b_col``, over its own depth ``depths[i] <=
    depth`` (its sums are kept, not updated, at the ``k`` past it: the same
    chain as a tile of that depth), with no addend (attention: each decoded
    row against its own source's keys or memory, several rows in one ``k``
    loop instead of one latency-bound chain at a time).

    Each tile loop keeps its ``rows x vectors`` sums in vector phi nodes
    (registers) from zero; at each ``k`` (ascending) it broadcasts ``a[i, k]``
    of every row ``i``, then loads the vectors of row ``k`` of ``b`` one at a
    time and applies ``llvm.fma(a[i, k], b[k, j], sum)`` for every row
    (gathering: each row's own vectors, row by row); after the last ``k`` it
    stores the sums. The calls are plain ``llvm.fma``: LLVM
    neither splits nor reorders them, whatever the fast-math flags around.
    Unless ``masked`` or ``gather``, each ``k`` also prefetches row
    ``k + PREFETCH_ROWS`` of ``b`` (see :data:`PREFETCH_ROWS`).
    """

    def check_arrays(arrays, dtype):
        return all(
            isinstance(array, types.Array)
            and array.layout == "C"
            and array.dtype in (types.float32, types.float64)
            and array.dtype == dtype
            for array in arrays
        )

    def emit(context, builder, element, a_p, lda_v, b_rows, ldb_v, out_p, ldc_v,
             depth_v, rows_v, addend_p, addend_ld_v, adding_v,
             row_depths=None, used_v=None):  # fmt: skip
        """The tile's IR; ``b_rows(count)``: the pointer to row 0 of each
        row's ``b`` block (one pointer for all rows unless gathering);
        ``row_depths(count)``: each row's own depth (its sums stop changing
        past it), or None; ``used_v``: the columns used (``masked``)."""
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        size = context.get_abi_sizeof(element)
        lanes = VECTOR_BYTES // size
        vector = ir.VectorType(element, lanes)
        name = f"v{lanes}{'f32' if size == 4 else 'f64'}"
        fma = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(vector, [vector] * 3),
            "llvm.fma." + name,
        )

        def at(base, offset):
            return builder.bitcast(builder.gep(base, [offset]), vector.as_pointer())

        def constant(value):
            return ir.Constant(intp, value)

        byte_pointer = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        zero = ir.Constant(vector, None)
        broadcast = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        if masked:  # lane i is used where i < used
            lane_vector = ir.VectorType(intp, lanes)
            used = builder.insert_element(
                ir.Constant(lane_vector, ir.Undefined), used_v, ir.Constant(i32, 0)
            )
            used = builder.shuffle_vector(
                used, ir.Constant(lane_vector, ir.Undefined), broadcast
            )
            mask = builder.icmp_signed(
                "<", ir.Constant(lane_vector, list(range(lanes))), used
            )
            pointer_type = vector.as_pointer()
            masked_load = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(vector, [pointer_type, i32, mask.type, vector]),
                f"llvm.masked.load.{name}.p0",
            )
            masked_store = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [vector, pointer_type, i32, mask.type]),
                f"llvm.masked.store.{name}.p0",
            )

        def load(pointer):
            if masked:
                align = ir.Constant(i32, size)
                return builder.call(masked_load, [pointer, align, mask, zero])
            return builder.load(pointer, align=size)

        def store(value, pointer):
            if masked:
                align = ir.Constant(i32, size)
                builder.call(masked_store, [value, pointer, align, mask])
            else:
                builder.store(value, pointer, align=size)

        after = builder.append_basic_block("tile.after")
        switch = builder.switch(rows_v, after)
        for count in row_counts:
            entry = builder.append_basic_block(f"tile.rows{count}")
            switch.add_case(constant(count), entry)
            builder.position_at_end(entry)
            b_bases = b_rows(count)
            depths = None if row_depths is None else row_depths(count)
            loop = builder.append_basic_block(f"tile.rows{count}.loop")
            done = builder.append_basic_block(f"tile.rows{count}.done")
            builder.cbranch(builder.icmp_signed(">", depth_v, constant(0)), loop, done)

            builder.position_at_end(loop)
            k = builder.phi(intp)
            sums = [[builder.phi(vector) for _ in range(vectors)] for _ in range(count)]
            b_k = []
            if gather:
                for b_base in b_bases:
                    b_row = builder.gep(b_base, [builder.mul(k, ldb_v)])
                    b_k.append(
                        [load(at(b_row, constant(v * lanes))) for v in range(vectors)]
                    )
            else:
                b_row0 = builder.gep(b_bases[0], [builder.mul(k, ldb_v)])
            if not gather and not masked:
                ahead = builder.gep(
                    b_bases[0],
                    [builder.mul(builder.add(k, constant(PREFETCH_ROWS)), ldb_v)],
                )
                # One prefetch per 64-byte cache line of the row.
                for offset in range(0, vectors * VECTOR_BYTES, CACHE_LINE_BYTES):
                    line = builder.gep(ahead, [constant(offset // size)])
                    # A read (0), kept in every level (3), of data (1).
                    builder.call(
                        prefetch,
                        [builder.bitcast(line, byte_pointer), ir.Constant(i32, 0),
                         ir.Constant(i32, 3), ir.Constant(i32, 1)],
                    )  # fmt: skip

            def broadcast_a(i, k=k):
                """``a[i, k]`` in every lane."""
                a_ik = builder.load(
                    builder.gep(a_p, [builder.add(builder.mul(constant(i), lda_v), k)]),
                    align=size,
                )
                a_ik = builder.insert_element(
                    ir.Constant(vector, ir.Undefined), a_ik, ir.Constant(i32, 0)
                )
                return builder.shuffle_vector(
                    a_ik, ir.Constant(vector, ir.Undefined), broadcast
                )

            updated = [[None] * vectors for _ in range(count)]
            if gather:
                for i in range(count):
                    a_ik = broadcast_a(i)
                    # The row's chain ends at its own depth.
                    inside = (
                        None
                        if depths is None
                        else builder.icmp_signed("<", k, depths[i])
                    )
                    for v in range(vectors):
                        row_sum = builder.call(fma, [a_ik, b_k[i][v], sums[i][v]])
                        if depths is not None:
                            row_sum = builder.select(inside, row_sum, sums[i][v])
                        updated[i][v] = row_sum
            elif vectors <= count:
                # The row of b first, then row by row: the sums, the vectors
                # of b and one broadcast live (6 x 4 tiles: 29 registers).
                b_k = [load(at(b_row0, constant(v * lanes))) for v in range(vectors)]
                for i in range(count):
                    a_ik = broadcast_a(i)
                    for v in range(vectors):
                        updated[i][v] = builder.call(fma, [a_ik, b_k[v], sums[i][v]])
            else:
                # Every row's broadcast first, then vector by vector: the sums,
                # the broadcasts and one vector of b live (3 x 4 tiles: 16).
                a_k = [broadcast_a(i) for i in range(count)]
                for v in range(vectors):
                    b_v = load(at(b_row0, constant(v * lanes)))
                    for i in range(count):
                        updated[i][v] = builder.call(fma, [a_k[i], b_v, sums[i][v]])
            next_k = builder.add(k, constant(1))
            builder.cbranch(builder.icmp_signed("<", next_k, depth_v), loop, done)
            k.add_incoming(constant(0), entry)
            k.add_incoming(next_k, loop)
            for i in range(count):
                for v in range(vectors):
                    sums[i][v].add_incoming(zero, entry)
                    sums[i][v].add_incoming(updated[i][v], loop)

            builder.position_at_end(done)
            sums_out = []
            for i in range(count):
                for v in range(vectors):
                    result = builder.phi(vector)
                    result.add_incoming(zero, entry)
                    result.add_incoming(updated[i][v], loop)
                    sums_out.append(result)
            results = []
            for i in range(count):
                addend_row = builder.gep(
                    addend_p, [builder.mul(constant(i), addend_ld_v)]
                )
                for v in range(vectors):
                    addend = load(at(addend_row, constant(v * lanes)))
                    result = sums_out[i * vectors + v]
                    results.append(
                        builder.select(adding_v, builder.fadd(result, addend), result)
                    )
            for i in range(count):
                out_row = builder.gep(out_p, [builder.mul(constant(i), ldc_v)])
                for v in range(vectors):
                    store(results[i * vectors + v], at(out_row, constant(v * lanes)))
            builder.branch(after)
        builder.position_at_end(after)

    def to_intp(context, builder, sig, args):
        return [
            context.cast(builder, value, value_type, types.intp)
            if isinstance(value_type, types.Integer)
            else value
            for value, value_type in zip(args, sig.args, strict=True)
        ]

    def start(context, builder, array_type, array, offset):
        data = context.make_array(array_type)(context, builder, array).data
        return builder.gep(data, [offset])

    def gather_typing(a, a_start, lda, b, b_starts, b_col, ldb, out, out_start,
                      ldc, depth, rows, depths, used=None):  # fmt: skip
        if not check_arrays((a, b, out), a.dtype) or not all(
            isinstance(index, types.Array)
            and index.layout == "C"
            and index.dtype == types.int64
            for index in (b_starts, depths)
        ):
            return None
        arguments = (a, a_start, lda, b, b_starts, b_col, ldb, out, out_start,
                     ldc, depth, rows, depths)  # fmt: skip
        signature = types.void(*arguments, *([] if used is None else [used]))

        def codegen(context, builder, sig, args):
            values = to_intp(context, builder, sig, args)
            (a_v, a_0, lda_v, b_v, starts_v, b_col_v, ldb_v, out_v, out_0,
             ldc_v, depth_v, rows_v, depths_v) = values[:13]  # fmt: skip
            element = context.get_value_type(sig.args[0].dtype)
            a_p = start(context, builder, sig.args[0], a_v, a_0)
            out_p = start(context, builder, sig.args[7], out_v, out_0)
            b_data = context.make_array(sig.args[3])(context, builder, b_v).data
            intp = context.get_value_type(types.intp)

            def entries(index, array, count):
                data = context.make_array(sig.args[index])(context, builder, array).data
                return [
                    builder.load(builder.gep(data, [ir.Constant(intp, i)]))
                    for i in range(count)
                ]

            def b_rows(count):
                return [
                    builder.gep(b_data, [builder.add(offset, b_col_v)])
                    for offset in entries(4, starts_v, count)
                ]

            emit(context, builder, element, a_p, lda_v, b_rows, ldb_v, out_p,
                 ldc_v, depth_v, rows_v, out_p, ldc_v,
                 ir.Constant(ir.IntType(1), 0),
                 lambda count: entries(12, depths_v, count),
                 values[13] if masked else None)  # fmt: skip
            return context.get_dummy_value()

        return signature, codegen

    def tile_typing(a, a_start, lda, b, b_start, ldb, out, out_start, ldc, depth,
                    rows, addend, addend_start, addend_ld, adding,
                    used=None):  # fmt: skip
        if not check_arrays((a, b, out, addend), a.dtype):
            return None
        arguments = (a, a_start, lda, b, b_start, ldb, out, out_start, ldc, depth,
                     rows, addend, addend_start, addend_ld, adding)  # fmt: skip
        signature = types.void(*arguments, *([] if used is None else [used]))

        def codegen(context, builder, sig, args):
            values = to_intp(context, builder, sig, args)
            (a_v, a_0, lda_v, b_v, b_0, ldb_v, out_v, out_0, ldc_v, depth_v, rows_v,
             addend_v, addend_0, addend_ld_v, adding_v) = values[:15]  # fmt: skip
            element = context.get_value_type(sig.args[0].dtype)
            a_p = start(context, builder, sig.args[0], a_v, a_0)
            b_p = start(context, builder, sig.args[3], b_v, b_0)
            out_p = start(context, builder, sig.args[6], out_v, out_0)
            # Without an addend, the tile's own rows of ``out`` are read
            # (valid memory, about to be written) and not added.
            addend_p = builder.select(
                adding_v, start(context, builder, sig.args[11], addend_v, addend_0),
                out_p,
            )  # fmt: skip
            addend_ld_v = builder.select(adding_v, addend_ld_v, ldc_v)
            emit(context, builder, element, a_p, lda_v, lambda count: [b_p], ldb_v,
                 out_p, ldc_v, depth_v, rows_v, addend_p, addend_ld_v,
                 adding_v, None, values[15] if masked else None)  # fmt: skip
            return context.get_dummy_value()

        return signature, codegen

    if gather and masked:

        @intrinsic
        def masked_gather_tile(typingctx, a, a_start, lda, b, b_starts, b_col, ldb,
                               out, out_start, ldc, depth, rows, depths,
                               used):  # fmt: skip
            return gather_typing(a, a_start, lda, b, b_starts, b_col, ldb, out,
                                 out_start, ldc, depth, rows, depths, used)  # fmt: skip

        return masked_gather_tile
    if gather:

        @intrinsic
        def gather_tile(typingctx, a, a_start, lda, b, b_starts, b_col, ldb, out,
                        out_start, ldc, depth, rows, depths):  # fmt: skip
            return gather_typing(a, a_start, lda, b, b_starts, b_col, ldb, out,
                                 out_start, ldc, depth, rows, depths)  # fmt: skip

        return gather_tile
    if masked:

        @intrinsic
        def masked_tile(typingctx, a, a_start, lda, b, b_start, ldb, out,
                        out_start, ldc, depth, rows, addend, addend_start,
                        addend_ld, adding, used):  # fmt: skip
            return tile_typing(a, a_start, lda, b, b_start, ldb, out, out_start,
                               ldc, depth, rows, addend, addend_start, addend_ld,
                               adding, used)  # fmt: skip

        return masked_tile

    @intrinsic
    def tile(typingctx, a, a_start, lda, b, b_start, ldb, out, out_start, ldc,
             depth, rows, addend, addend_start, addend_ld, adding):  # fmt: skip
        return tile_typing(a, a_start, lda, b, b_start, ldb, out, out_start, ldc,
                           depth, rows, addend, addend_start, addend_ld,
                           adding)  # fmt: skip

    return tile


#: ``TILE_ROWS x TILE_VECTORS`` vectors, and fewer rows for the bottom of ``a``.
_tile = _make_tile(range(1, TILE_ROWS + 1), TILE_VECTORS)
#: ``WIDE_ROWS`` rows or fewer by ``WIDE_VECTORS`` vectors (batches of one or
#: two rows).
_wide_tile = _make_tile(range(1, WIDE_ROWS + 1), WIDE_VECTORS)
#: Up to ``TILE_ROWS`` rows by one vector, then by part of one: the right edge.
_vector_tile = _make_tile(range(1, TILE_ROWS + 1), 1)
_part_vector_tile = _make_tile(range(1, TILE_ROWS + 1), 1, masked=True)


def _lanes(array):
    """Elements of ``array``'s dtype per SIMD vector (for ``@njit`` code)."""
    raise NotImplementedError("only callable from @njit code")


@overload(_lanes, jit_options=OVERLOAD_OPTIONS)
def _lanes_overload(array):
    lanes = VECTOR_BYTES // (array.dtype.bitwidth // 8)
    return lambda array: lanes


@helper
def _right_edge(a, b, b_start, ldb, out, first_row, rows, first_col, addend,
                addend_ld):  # fmt: skip
    """Columns ``first_col:`` of rows ``first_row:first_row + rows``
    (``rows <= TILE_ROWS``) of ``out = a @ b (+ addend)``, where column
    ``first_col`` of ``b`` starts at element ``b_start`` and ``b``'s rows
    are ``ldb`` elements apart: one vector at a time, then the last part of
    one (masked; same operations as every tile). A column at a time in scalar
    registers, as before, ran at 12 GFLOP/s (100 x 128 @ 128 x 24 took 19 us,
    128 x 32 took 4.9)."""
    depth = a.shape[1]
    cols = out.shape[1]
    lanes = _lanes(a)
    a_start = first_row * depth
    adding = addend.shape[0] > 0
    vector_end = cols - (cols - first_col) % lanes
    for col in range(first_col, vector_end, lanes):
        _vector_tile(a, a_start, depth, b, b_start + col - first_col, ldb,
                     out, first_row * cols + col, cols, depth, rows,
                     addend, first_row * addend_ld + col, addend_ld,
                     adding)  # fmt: skip
    if vector_end < cols:
        _part_vector_tile(a, a_start, depth, b, b_start + vector_end - first_col,
                          ldb, out, first_row * cols + vector_end, cols, depth,
                          rows, addend, first_row * addend_ld + vector_end,
                          addend_ld, adding, cols - vector_end)  # fmt: skip


def panel_columns(dtype):
    """Columns per panel of :func:`pack_panels` for ``dtype`` (float32: 64,
    float64: 32): one register tile's width."""
    return TILE_VECTORS * VECTOR_BYTES // np.dtype(dtype).itemsize


def pack_panels(b):
    """``b`` in the panel layout :func:`row_invariant_matmul` reads fastest.

    Column panels of one register tile's width (:func:`panel_columns`), each
    stored whole, row after row: the panel ``p`` of the result is rows
    ``p * K`` to ``(p + 1) * K``, the last one zero-padded on the right. A
    tile then reads its ``b`` as one contiguous stream, where rows of ``b``
    itself are ``N`` apart: for ``N`` of 1024 float32 or more each row of the
    panel starts a new 4 KiB page, where Intel's L2 prefetcher stops (one
    thread of a Xeon with AVX-512, float32: 66 x 512 x 2048 at 66 GFLOP/s in
    place, 148 packed; 60 x 256 x 1024 126 / 176; 48 x 64 x 256 152 / 185).
    Pack once per call of a layer, for every step's product.

    Plain NumPy copies (a compiled loop cost 0.3 s of compilation per dtype
    in a cold first ``fit``, and ran no faster: ``w.T`` of a 2048 x 512
    float32 ``w`` 0.80 ms compiled, 0.69 ms this way; 1-5 us either way for
    the small weights).

    Parameters
    ----------
    b : ndarray of shape (K, N)
        Any layout (``w.T`` of a C-contiguous ``w`` packs ``w``'s transpose
        in the same pass).

    Returns
    -------
    packed : ndarray of shape (P * K, W)
        ``P = ceil(N / W)`` panels of ``W = panel_columns(b.dtype)`` columns,
        C-contiguous. Where ``N == W`` it is ``b`` itself, copied.
    """
    depth, cols = b.shape
    width = panel_columns(b.dtype)
    panels = -(-cols // width)
    full = cols // width  # panels without padding
    packed = np.empty((panels, depth, width), dtype=b.dtype)
    if full:
        packed[:full] = (
            b[:, : full * width].reshape(depth, full, width).transpose(1, 0, 2)
        )
    if full < panels:
        used = cols - full * width
        packed[full, :, :used] = b[:, full * width :]
        packed[full, :, used:] = 0
    return packed.reshape(panels * depth, width)


def _gate_panels(b, hidden):
    """``b`` (``K x 4H``) gate-interleaved, as a new ``(P, K, 4, lanes)``
    array (see :func:`pack_gate_panels`): one copy."""
    depth = b.shape[0]
    lanes = VECTOR_BYTES // b.dtype.itemsize
    panels = -(-hidden // lanes)
    full = hidden // lanes  # panels without padding
    packed = np.empty((panels, depth, TILE_VECTORS, lanes), dtype=b.dtype)
    blocks = b.reshape(depth, TILE_VECTORS, hidden)
    if full:
        packed[:full] = (
            blocks[:, :, : full * lanes]
            .reshape(depth, TILE_VECTORS, full, lanes)
            .transpose(2, 0, 1, 3)
        )
    if full < panels:
        used = hidden - full * lanes
        packed[full, :, :, :used] = blocks[:, :, full * lanes :]
        packed[full, :, :, used:] = 0
    return packed


def pack_gate_panels(b, hidden):
    """``b`` (``K x 4H``: an LSTM's ``weight.T``, its four gate blocks of
    ``H`` columns side by side) in the panel layout of :func:`pack_panels`,
    gate-interleaved: panel ``p`` holds, one vector of ``lanes`` columns per
    gate, the gates of the hidden units ``p*lanes`` to ``(p+1)*lanes`` (zero
    columns for the units past ``H``). Each register tile of a product
    against it then computes the four gates of whole hidden units, which the
    LSTM's inference kernel activates while the tile's block is in L1 (see
    :func:`.cpu.lstm_panel_layer`).

    Parameters
    ----------
    b : ndarray of shape (K, 4H)
        Any layout.
    hidden : int
        ``H``.

    Returns
    -------
    packed : ndarray of shape (P * K, W)
        ``P = ceil(H / lanes)`` panels of ``W = 4 * lanes`` columns
        (:func:`panel_columns`; ``lanes`` elements of ``b``'s dtype per SIMD
        vector), C-contiguous.
    """
    packed = _gate_panels(b, hidden)
    return packed.reshape(-1, packed.shape[2] * packed.shape[3])


def gate_panel_bias(bias, hidden):
    """A ``(4H,)`` bias in the column order of :func:`pack_gate_panels`
    (zeros past ``H``): ``(P * W,)``."""
    return _gate_panels(bias.reshape(1, -1), hidden).reshape(-1)


@njit(**KERNEL_OPTIONS)
def _row_by_row(a, b, out, bias):
    """``out = a @ b (+ bias)`` as a plain loop, row by row:
    ``out[r] = 0``, then ``out[r] += a[r, k] * b[k]`` for ``k`` ascending,
    which ``fastmath={"contract"}`` turns into one FMA per element and ``k``,
    then ``out[r] += bias`` unless ``bias`` is empty."""
    for r in range(a.shape[0]):
        out_row = out[r]
        for j in range(b.shape[1]):
            out_row[j] = 0
        for k in range(a.shape[1]):
            value = a[r, k]
            b_row = b[k]
            for j in range(b.shape[1]):
                out_row[j] += value * b_row[j]
        if bias.shape[0]:
            for j in range(b.shape[1]):
                out_row[j] += bias[j]


@helper
def no_bias(out):
    """An empty addend for :func:`row_invariant_matmul` (nothing is added)."""
    return out.reshape(out.size)[:0]


@njit(**KERNEL_OPTIONS, inline="always")
def row_invariant_matmul_add(a, b, out):
    """``out += a @ b`` in register tiles: each ``out[r, j]`` becomes
    ``out[r, j] + chain``, the chain of :func:`row_invariant_matmul` rounded
    first, so the same bits as ``out = out + row_invariant_matmul(a, b)``
    (an LSTM's gate pre-activations: the input projection plus the recurrent
    product), with neither a buffer for the product nor a pass over it.
    Inlined: one compiled product serves both.

    Parameters
    ----------
    a : ndarray of shape (M, K)
    b : ndarray of shape (K, N), or (P * K, W) packed by :func:`pack_panels`
        Same dtype (float32 or float64), C-contiguous.
    out : ndarray of shape (M, N)
        In and out, C-contiguous; must not overlap ``a`` or ``b``.
    """
    row_invariant_matmul(a, b, out, out.reshape(out.size))


@njit(**KERNEL_OPTIONS)
def row_invariant_matmul(a, b, out, bias):
    """``out = a @ b + bias`` in register tiles, bit for bit as
    :func:`_row_by_row` (``bias`` a row, or ``out``'s own values: see
    :func:`row_invariant_matmul_add`).

    The tiles (:func:`_tiled_matmul`) are compiled once per dtype, as a
    C function of their own (:func:`product_address`), and every kernel
    calls them there: linked into each kernel, as Numba links a callee, their
    code was optimised and compiled again in every kernel that multiplies
    (see :func:`_compiled_product`).

    Every ``out[r, j]`` is ``fma(a[r, K-1], b[K-1, j], ... fma(a[r, 0],
    b[0, j], 0))``: one chain of fused multiply-adds from zero, ``k``
    ascending, rounded once per step. Which tile computes an element (and so
    ``M`` and the row's position) changes how the chains are interleaved,
    never the chain: ``out[r]`` depends on ``a[r]`` and ``b`` alone, the same
    bits as :func:`_row_by_row`, which it can replace. (BLAS does not give
    this: its results change with ``M``.)

    Rows go by blocks of :data:`BLOCK_BYTES` of ``a``; in each block, column
    panels of ``TILE_VECTORS`` vectors of ``b`` (read in place, rows ``N``
    apart, or packed by :func:`pack_panels`, rows one panel apart), each
    swept by tiles of :data:`TILE_ROWS` rows. The last ``M % TILE_ROWS``
    rows of an unpacked ``b``: a single row with ``b`` over
    :data:`STREAM_BYTES` streams ``b`` as :func:`_row_by_row`; otherwise one
    or two rows take :data:`WIDE_VECTORS`-vector tiles over the columns they
    cover (two panels at once). The full panels left take the same tiles as
    the other rows, with fewer rows.
    Columns past the last full panel go one vector at a time, then the last
    part of one in a masked tile.

    A bias is added in the tiles, to the finished sums before they are
    stored: the bits of ``out += bias`` after the product, without a second
    pass over ``out`` (which cost a quarter of an LSTM's input projection at
    6400 x 64 x 2048: 2.4 ms after 7.8).

    Parameters
    ----------
    a : ndarray of shape (M, K)
    b : ndarray of shape (K, N), or (P * K, W) packed by :func:`pack_panels`
        Same dtype (float32 or float64), C-contiguous. Packed is told from
        ``W != N`` (where ``N == W`` the two layouts are one).
    out : ndarray of shape (M, N)
        Output, C-contiguous; must not overlap ``a`` or ``b``.
    bias : ndarray of shape (N,), (M*N,) or (0,)
        C-contiguous, same dtype: a row added to every row, a flattened
        ``(M, N)`` matrix added elementwise (it may be ``out`` itself), or
        empty (:func:`no_bias`) for nothing. One array type in every case, so
        that one compiled product serves them all.
    """
    _compiled_product(a, b, out, bias)


@njit(**KERNEL_OPTIONS, inline="always")
def _tiled_matmul(a, b, out, bias):
    """:func:`row_invariant_matmul`'s work, compiled only into the C
    functions of :func:`product_address` (the arguments as there); inlined
    there, not compiled on its own and linked in again (0.5 s more)."""
    rows, depth = a.shape
    cols = out.shape[1]
    lanes = _lanes(a)
    width = TILE_VECTORS * lanes
    # b packed in panels (pack_panels; the same layout as b itself where N is
    # one panel's width): each panel's rows are ``width`` apart, panels
    # ``depth * width`` elements apart. In place: rows ``cols`` apart.
    packed = b.shape[1] != cols
    ldb = width if packed else cols
    panel_step = depth * width if packed else width
    # Rows of the addend apart: 0 for a bias row (one row only: either).
    addend_ld = cols if bias.shape[0] != cols else 0
    # A single row streams b, overwriting out as it goes: not when adding out
    # to itself (the tiles are as fast in float32).
    in_place = bias.shape[0] > 0 and bias.ctypes.data == out.ctypes.data
    if rows == 1 and not packed and b.nbytes > STREAM_BYTES and not in_place:
        _row_by_row(a, b, out, bias)
        return
    adding = bias.shape[0] > 0
    full_cols = cols - cols % width
    full_rows = rows - rows % TILE_ROWS
    block = BLOCK_BYTES // max(1, depth * a.itemsize) // TILE_ROWS * TILE_ROWS
    block = max(TILE_ROWS, block)
    edge_start = full_cols // width * panel_step
    for first in range(0, full_rows, block):
        last = min(full_rows, first + block)
        for col in range(0, full_cols, width):
            b_start = col // width * panel_step
            for row in range(first, last, TILE_ROWS):
                _tile(a, row * depth, depth, b, b_start, ldb,
                      out, row * cols + col, cols, depth, TILE_ROWS,
                      bias, row * addend_ld + col, addend_ld,
                      adding)  # fmt: skip
        if full_cols < cols:
            for row in range(first, last, TILE_ROWS):
                # TILE_ROWS itself would be typed Literal[int](6): a second
                # specialisation of _right_edge to compile (0.2 s cold).
                tile_rows = min(TILE_ROWS, last - row)
                _right_edge(a, b, edge_start, ldb, out, row, tile_rows,
                            full_cols, bias, addend_ld)  # fmt: skip
    tail = rows - full_rows
    if tail == 0:
        return
    a_start = full_rows * depth
    done = 0
    if tail <= WIDE_ROWS and not packed:  # a wide tile spans two panels
        wide = WIDE_VECTORS * lanes
        done = cols - cols % wide
        for col in range(0, done, wide):
            _wide_tile(a, a_start, depth, b, col, cols,
                       out, full_rows * cols + col, cols, depth, tail,
                       bias, full_rows * addend_ld + col, addend_ld,
                       adding)  # fmt: skip
    # The full panels left (all of them below 3 rows too when the product is
    # narrower than a wide tile: one or two rows in single vectors, 2 to 4
    # sums in flight, took a quarter of an LSTM's backward products at
    # 32 x 256 x 64).
    for col in range(done, full_cols, width):
        _tile(a, a_start, depth, b, col // width * panel_step, ldb,
              out, full_rows * cols + col, cols, depth, tail,
              bias, full_rows * addend_ld + col, addend_ld,
              adding)  # fmt: skip
    _right_edge(a, b, edge_start, ldb, out, full_rows, tail, full_cols, bias,
                addend_ld)  # fmt: skip


# ------------------------------------------------ one compiled product per dtype
#
# Numba links the LLVM IR of every callee into its caller and optimises and
# compiles it again there: the tiles of _tiled_matmul were compiled again in
# every kernel that multiplies (an LSTM classifier's forward and backward
# layer kernels; a language model's five decoding kernels more). Compiled
# once instead, a language model's first fit, generate and predict took
# 16.2-17.7 s against 19.7-20.3 s (Xeon VM, empty cache, alternated runs),
# an LSTM classifier's first fit and predict 6.2-6.4 s against 6.4-6.8, and
# ``python -m rnntools.compile`` (float32) 66 s against 81. So they are
# compiled once per dtype,
# as a C function (a Numba ``cfunc``, cached like the kernels), and the
# kernels call it through a pointer that they load from a named cell
# (:func:`_compiled_product`): no tile is in any kernel's code.
#
# The cell's symbol is registered with LLVM when this module is imported,
# before any kernel that refers to it is compiled or loaded from the cache.
# It first points to a trampoline (ctypes) that compiles, or loads, the
# function on its first call and points the cell at it: a process that never
# multiplies in float64 never compiles the float64 product.

#: ``(a, M, K, b, rows of b, columns of b, out, N, bias, length of bias)``:
#: the arrays' data pointers and their shapes (all C-contiguous).
_PRODUCT_SIGNATURE = types.void(
    types.voidptr, types.intp, types.intp,
    types.voidptr, types.intp, types.intp,
    types.voidptr, types.intp,
    types.voidptr, types.intp,
)  # fmt: skip
_PRODUCT_CTYPE = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_ssize_t,
    ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_ssize_t,
    ctypes.c_void_p, ctypes.c_ssize_t,
    ctypes.c_void_p, ctypes.c_ssize_t,
)  # fmt: skip


def _product_float32(a, rows, depth, b, b_rows, b_cols, out, cols, bias, bias_size):
    _tiled_matmul(
        carray(a, (rows, depth), np.float32),
        carray(b, (b_rows, b_cols), np.float32),
        carray(out, (rows, cols), np.float32),
        carray(bias, (bias_size,), np.float32),
    )


def _product_float64(a, rows, depth, b, b_rows, b_cols, out, cols, bias, bias_size):
    _tiled_matmul(
        carray(a, (rows, depth), np.float64),
        carray(b, (b_rows, b_cols), np.float64),
        carray(out, (rows, cols), np.float64),
        carray(bias, (bias_size,), np.float64),
    )


class _ProductCell:
    """The address the kernels call for one dtype's product (see above)."""

    def __init__(self, dtype, function):
        self.symbol = f"rnntools_row_invariant_matmul_{np.dtype(dtype).name}"
        self._function = function
        self._compiled = None
        self._lock = threading.Lock()
        self._trampoline = _PRODUCT_CTYPE(self._first_call)
        first = ctypes.cast(self._trampoline, ctypes.c_void_p).value
        self._cell = ctypes.c_void_p(first)
        llvm.add_symbol(self.symbol, ctypes.addressof(self._cell))

    def address(self):
        """The compiled product's address (compiled, or loaded from the cache,
        on the first call); the cell points there from then on."""
        with self._lock:
            if self._compiled is None:
                # The kernels' options (a cfunc holds no GIL to release).
                self._compiled = cfunc(
                    _PRODUCT_SIGNATURE,
                    cache=CACHE,
                    fastmath=KERNEL_OPTIONS["fastmath"],
                    error_model=KERNEL_OPTIONS["error_model"],
                )(self._function)
                self._cell.value = self._compiled.address
        return self._compiled.address

    def _first_call(self, *args):
        try:
            address = self.address()
        except BaseException:  # cannot reach the kernel that called: stop
            traceback.print_exc()
            sys.stderr.write(
                f"rnntools: compiling {self.symbol} failed (above); aborting.\n"
            )
            sys.stderr.flush()
            os.abort()
        _PRODUCT_CTYPE(address)(*args)


_PRODUCT_CELLS = {
    np.dtype(np.float32): _ProductCell(np.float32, _product_float32),
    np.dtype(np.float64): _ProductCell(np.float64, _product_float64),
}


def product_address(dtype):
    """Compile (or load from the cache) the product for ``dtype``
    (``float32`` or ``float64``) now, and return its address: what the
    kernels call (``python -m rnntools.compile`` fills the cache with it)."""
    return _PRODUCT_CELLS[np.dtype(dtype)].address()


@intrinsic
def _compiled_product(typingctx, a, b, out, bias):
    """``_tiled_matmul(a, b, out, bias)`` through the compiled product of
    their dtype: the function pointer is loaded from its cell and called with
    the arrays' data pointers and shapes (C-contiguous arrays of one dtype)."""
    arrays = (a, b, out, bias)
    if not all(
        isinstance(array, types.Array)
        and array.layout == "C"
        and array.dtype == a.dtype
        and array.dtype in (types.float32, types.float64)
        for array in arrays
    ):
        return None
    symbol = _PRODUCT_CELLS[np.dtype(a.dtype.name)].symbol

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        pointer = ir.IntType(8).as_pointer()
        function_type = ir.FunctionType(
            ir.VoidType(),
            [pointer, intp, intp, pointer, intp, intp, pointer, intp, pointer, intp],
        )
        cell = builder.module.globals.get(symbol)
        if cell is None:  # declared here, defined by llvm.add_symbol
            cell = ir.GlobalVariable(builder.module, function_type.as_pointer(), symbol)
            cell.linkage = "external"
        values = []
        # Per array, the axes whose lengths the function takes.
        for array_type, value, axes in zip(
            signature.args, args, ((0, 1), (0, 1), (1,), (0,)), strict=True
        ):
            array = context.make_array(array_type)(context, builder, value)
            shape = cgutils.unpack_tuple(builder, array.shape)
            values.append(builder.bitcast(array.data, pointer))
            values.extend(shape[axis] for axis in axes)
        builder.call(builder.load(cell), values)
        return context.get_dummy_value()

    return types.void(*arrays), codegen


#: Rows and vectors of columns per tile of
#: :func:`row_invariant_gathered_matmul`: 8 sums, 8 vectors of ``b`` (two per
#: row) loaded per ``k``. Measured at 250 rows, float32: scores against
#: 64 x 32 keys took 22 us in 4 x 2 tiles, 35 in 8 x 1; contexts over
#: memory of 10-30 x 128, 34 in 4 x 2 tiles, 54 in 8 x 1, 60 row by row.
GATHER_ROWS = 4
GATHER_VECTORS = 2
_gather_tile = _make_tile(range(1, GATHER_ROWS + 1), GATHER_VECTORS, gather=True)
#: The right edge: one vector at a time, then the last part of one.
_gather_vector_tile = _make_tile(range(1, GATHER_ROWS + 1), 1, gather=True)
_gather_part_vector_tile = _make_tile(
    range(1, GATHER_ROWS + 1), 1, masked=True, gather=True
)


@njit(**KERNEL_OPTIONS)
def row_invariant_gathered_matmul(a, b, b_starts, depths, out):
    """``out[r] = a[r, :d_r] @ B_r[:d_r]`` where every row has its own matrix
    ``B_r`` and depth ``d_r = depths[r]``.

    ``B_r`` is the ``(K, N)`` block of ``b`` (read flat, rows ``N`` apart)
    that starts at element ``b_starts[r]``: Luong attention's scores of
    decoded rows, each against the keys of its own source, and its contexts,
    each over the memory of its own source's length. Each element is the
    chain of :func:`row_invariant_matmul` (fused multiply-adds from zero,
    ``k`` ascending, ``d_r`` of them), so the same bits as
    ``row_invariant_matmul(a[r:r+1, :d_r], B_r[:d_r], out[r:r+1], ...)``,
    but :data:`GATHER_ROWS` rows share one ``k`` loop (independent chains,
    where one row's chain waits on the FMA latency at every ``k``) and no
    call per row (which cost 140 ns: a 1 x 20 x 128 product, 250 times,
    took 40 us where one 250 x 20 x 128 product took 5).

    Parameters
    ----------
    a : ndarray of shape (M, K)
    b : ndarray
        Any shape, C-contiguous, the dtype of ``a``.
    b_starts : int64 ndarray of shape (M,)
        Flat offset of each ``B_r`` in ``b``.
    depths : int64 ndarray of shape (M,)
        Each row's depth, in ``[0, K]``. Nothing is checked: the caller keeps
        every ``B_r[:d_r]`` inside ``b``.
    out : ndarray of shape (M, N)
        Output, C-contiguous.
    """
    rows, depth = a.shape
    cols = out.shape[1]
    lanes = _lanes(a)
    width = GATHER_VECTORS * lanes
    panel_end = cols - cols % width
    vector_end = cols - cols % lanes
    for row in range(0, rows, GATHER_ROWS):
        count = min(GATHER_ROWS, rows - row)
        starts = b_starts[row : row + count]
        row_depths = depths[row : row + count]
        deepest = 0
        for i in range(count):
            deepest = max(deepest, row_depths[i])
        a_start = row * depth
        out_start = row * cols
        for col in range(0, panel_end, width):
            _gather_tile(a, a_start, depth, b, starts, col, cols,
                         out, out_start + col, cols, deepest, count,
                         row_depths)  # fmt: skip
        for col in range(panel_end, vector_end, lanes):
            _gather_vector_tile(a, a_start, depth, b, starts, col, cols,
                                out, out_start + col, cols, deepest, count,
                                row_depths)  # fmt: skip
        if vector_end < cols:
            _gather_part_vector_tile(a, a_start, depth, b, starts, vector_end,
                                     cols, out, out_start + vector_end, cols,
                                     deepest, count, row_depths,
                                     cols - vector_end)  # fmt: skip
