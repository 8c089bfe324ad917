"""``@njit`` kernels: one layer, one direction, forward and BPTT.

Every kernel works on time-major, C-contiguous buffers allocated by
:mod:`rnntools.functional` and trusts them completely: no validation, no
allocation inside the time loop. The batch is sorted by decreasing length, so
at step ``s`` the active sequences are the first ``batch_sizes[s]`` rows (as in
PyTorch's packed sequences). Step ``s`` of sequence ``b`` is time
``t = s`` forwards and ``t = lengths[b] - 1 - s`` in reverse.

Shapes: ``T`` steps, ``B`` sequences, ``I`` input features, ``H`` hidden units,
``G`` gates (1 rnn, 3 gru, 4 lstm).

Strategy (as cuDNN and oneDNN do): one GEMM projects the inputs of all
timesteps (of a span of them in inference); each step
is one GEMM for the recurrent product plus one fused pointwise pass per
sequence (a wide LSTM's inference goes panel by panel instead, each panel's
gates activated as soon as computed: :func:`lstm_panel_layer`); in
backward, the weight gradients are one GEMM over all timesteps after the
time loop (:func:`layer_param_grads`). The forward products (input
projection and recurrent steps) run on
:func:`.row_invariant.row_invariant_matmul`, whose rows come out bit-identical
whatever the batch around them (so a sequence's outputs do not depend on the
batch, the position or the thread count) and which outruns BLAS at these
shapes; the backward products, summed over the batch anyway, run on BLAS,
float32 in blocks that OpenBLAS computes with its small-matrix kernels
(:mod:`rnntools.kernels.blas`).

The kernels are serial and release the GIL (``nogil=True``): sequences never
interact inside a layer, so :mod:`rnntools.functional` runs independent blocks
of the batch on separate threads, with no synchronisation inside the time loop.

Compilation options (caching, ``fastmath``, ``error_model``) are explained in
:mod:`rnntools.kernels._jit`.
"""

import numpy as np
from numba import njit

from .._arrays import column_sums
from ._jit import CACHE, KERNEL_OPTIONS, helper, wide_vectors
from .activations import (
    constants,
    gate_activations,
    gate_value,
    sigmoid,
    sigmoid_value,
    tanh,
    tanh_value,
)
from .blas import weight_gradient
from .row_invariant import (
    VECTOR_BYTES,
    _lanes,
    no_bias,
    row_invariant_matmul,
    row_invariant_matmul_add,
)

#: Options of the per-step helpers (``_lstm_forward_step``, ...), each called
#: from one layer loop: Numba inlines them there instead of compiling each as
#: a function of its own, whose code (register-tile products, activations)
#: LLVM then optimised twice, for the helper and again inside the loop (1.7 s
#: of a cold first LSTM fit of 10 s).
STEP_OPTIONS = {**KERNEL_OPTIONS, "inline": "always"}


@helper
def _copy(destination, source):
    """``destination[:] = source`` for 1-D rows, as a plain loop: Numba's
    slice assignment was measured 5x slower on rows of 64 numbers."""
    for j in range(source.shape[0]):
        destination[j] = source[j]


# Step loops index their 2-D and 3-D buffers in place (``gates[t, b,
# hidden + j]``), not through a view per row: a view costs an atomic reference
# count up and down, which in a loop over the sequences of a step took 12 % of
# an LSTM forward at 16x50x32x64 (and 4 % of a beam search's step); the loops
# vectorise all the same.


@helper
def _saved(t, buffer):
    """Where step ``t`` is saved in a ``(T, B, H)`` buffer for backward: ``t``,
    or 0 in a one-step buffer (a working row that nothing reads back)."""
    return min(t, buffer.shape[0] - 1)


@helper
def _step_time(s, b, lengths, reverse):
    return lengths[b] - 1 - s if reverse else s


@njit(**STEP_OPTIONS)
def _add_output_grads(d_h, d_out, out_col, active, s, lengths, reverse):
    """``d_h[b] += d_out[t, b, out_col:out_col+H]`` at step ``s`` of each of
    the first ``active`` sequences: the output gradient added to the state's
    in a loop of its own before a backward step's gate gradients (the same
    sums), whose loop then reads one row fewer (LSTM backward, one thread,
    32x50x32x64: 1018-1052 -> 1005-1023 us)."""
    hidden = d_h.shape[1]
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        d_out_row = d_out[t, b, out_col : out_col + hidden]
        for j in range(hidden):
            d_h[b, j] += d_out_row[j]


@helper
def _copy_finite(destination, source):
    """:func:`_copy`, and whether every value copied was finite (``v - v``
    is 0 for a finite ``v``, NaN otherwise: one OR over the row, which LLVM
    vectorises with the copy)."""
    bad = 0
    for j in range(source.shape[0]):
        value = source[j]
        destination[j] = value
        bad |= np.int32((value - value) != 0)
    return bad == 0


@njit(**KERNEL_OPTIONS)
def gather_span(inp, inp_rows, lengths, start, span_inputs):
    """``span_inputs[s, b] = inp[inp_rows[b], start + s]``: a span of the
    caller's batch-first inputs made time-major, zeros at padded steps
    (padding may hold anything, NaN included). Returns whether every value
    gathered (the unpadded steps) was finite: ``d_output`` is checked here,
    on each block's thread, not in a pass of its own before the blocks
    (2.8 ms of an LSTM backward at 256x50x64x512, on one thread).

    A function of its own, as :func:`scatter_span` (inlined into the layer
    kernels, they cost the same compile time: 0.1-0.2 s each, of a cold
    start's 5.8). Also called from Python: a block's ``d_output`` made
    time-major in :func:`rnntools.functional.rnn_backward`, without the GIL
    (reading it in place in the backward kernels instead cost 0.3 s more of
    a cold start, and the same run time).
    """
    span, batch, features = span_inputs.shape
    finite = True
    for s in range(span):
        for b in range(batch):
            # Views made inside each branch: one made before the branch kept
            # the copy from being vectorised (4x slower).
            if start + s < lengths[b]:
                finite &= _copy_finite(span_inputs[s, b], inp[inp_rows[b], start + s])
            else:
                row = span_inputs[s, b]
                for j in range(features):
                    row[j] = 0
    return finite


@njit(**KERNEL_OPTIONS)
def scatter_span(out_span, lengths, start, out, out_rows, out_col):
    """Columns ``out_col:out_col+H`` of rows ``out_rows`` of the batch-first
    ``out`` at a span's times, from the time-major ``out_span``; 0 at padded
    steps. Also called from Python: a block's ``d_x`` into the caller's
    (:func:`rnntools.functional.rnn_backward`), without the GIL."""
    span, batch, hidden = out_span.shape
    # Through one 1-D view of the row's columns: ``out[r, t, out_col + j]``
    # was not vectorised (a span at 16x50x64: 31 us, this way 4.4); through
    # three (the row, its columns, ``out_span[s, b]``), each an atomic
    # reference count up and down, 18.
    for b in range(batch):
        row = out_rows[b]
        for s in range(span):
            columns = out[row, start + s, out_col : out_col + hidden]
            if start + s < lengths[b]:
                for j in range(hidden):
                    columns[j] = out_span[s, b, j]
            else:
                for j in range(hidden):
                    columns[j] = 0


#: Bytes of gates per span of steps in a training forward (see
#: :func:`_span_steps`), as in inference (``functional.INFERENCE_SPAN_BYTES``):
#: a span's gates are still in cache when its steps read them. Training
#: forward, 2 threads, against all steps projected at once (three alternated
#: runs, medians of 15 calls): LSTM 128x100x128x256 30.0-31.5 -> 29.2-29.4 ms,
#: 64x100x64x128 unchanged within noise; GRU and RNN 3-8 % faster at
#: 128x100x128x256 and 256x50x64x512. 2**19 and 2**21 measured alike, 2**22
#: lost at 64x100x64x128.
TRAINING_SPAN_BYTES = 2**20


@njit(**STEP_OPTIONS)
def _span_inputs(inp, inp_rows, inp_span, lengths, start, count):
    """The layer input of the ``count`` steps from time ``start``, time-major
    ``(count, B, I)``: ``inp``'s own (time-major) steps, or the block's rows
    of the batch-first ``inp`` gathered into ``inp_span`` (into their own
    steps of a ``T``-step ``inp_span``, kept for backward); and whether the
    values gathered were all finite (True for ``inp``'s own steps)."""
    if inp_rows.shape[0] == 0:
        return inp[start : start + count], True
    # inp is (B_all, T, I): T-step spans keep every step at its time.
    at = start if inp_span.shape[0] == inp.shape[1] else 0
    span_inputs = inp_span[at : at + count]
    return span_inputs, gather_span(inp, inp_rows, lengths, start, span_inputs)


@helper
def _span_steps(steps, batch, width, itemsize):
    """Steps per span of a training forward: :data:`TRAINING_SPAN_BYTES` of
    gates, at least one step."""
    return max(1, min(steps, TRAINING_SPAN_BYTES // (batch * width * itemsize)))


# --------------------------------------------------------------------- LSTM


@njit(**STEP_OPTIONS)
def _lstm_forward_step(
    active, s, lengths, reverse, w_hh_t, h, c, gathered, cell_tanh,
    tanh_columns, out, out_col, gates, h_prev, c_prev, tanh_c,
):  # fmt: skip
    hidden = h.shape[1]
    # The recurrent product is added to the input projection in ``gates``
    # (row_invariant_matmul_add), and the activations overwrite it: in place
    # where the step's sequences share a time (forwards, or equal lengths),
    # else gathered into one block and scattered back, one call for the step
    # (ragged bidirectional 32x50x32x64 forward, one thread, medians of three
    # rounds: 2.58-2.76 ms, against 2.74-3.03 with one call per sequence).
    uniform = not reverse or lengths[0] == lengths[active - 1]
    if uniform:
        # Any active sequence's time; not the literal 0, which compiled a
        # second _step_time (Literal[int](0)).
        step_gates = gates[_step_time(s, active - 1, lengths, reverse), :active]
    else:
        step_gates = gathered[:active]
        for b in range(active):
            _copy(step_gates[b], gates[_step_time(s, b, lengths, reverse), b])
    row_invariant_matmul_add(h[:active], w_hh_t, step_gates)
    gate_activations(step_gates, tanh_columns)
    # Rows indexed in place, not through a view per sequence (``c[b]``):
    # each view costs an atomic reference count up and down
    # (12 % of a block's forward at 16x50x32x64).
    saving = h_prev.shape[0] > 0
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        if not uniform:
            for j in range(step_gates.shape[1]):
                gates[t, b, j] = step_gates[b, j]
        if saving:
            for j in range(hidden):
                h_prev[t, b, j] = h[b, j]
                c_prev[t, b, j] = c[b, j]
        for j in range(hidden):
            c[b, j] = (
                step_gates[b, hidden + j] * c[b, j]
                + step_gates[b, j] * step_gates[b, 2 * hidden + j]
            )
    cell_tanh = cell_tanh[:active]
    tanh(c[:active].reshape(active * hidden), cell_tanh.reshape(active * hidden))
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        if saving:
            for j in range(hidden):
                tanh_c[t, b, j] = cell_tanh[b, j]
        out_row = out[t, b, out_col : out_col + hidden]
        for j in range(hidden):
            h[b, j] = step_gates[b, 3 * hidden + j] * cell_tanh[b, j]
            out_row[j] = h[b, j]


@njit(**KERNEL_OPTIONS)
def lstm_forward_layer(
    inp, inp_rows, inp_span, w_ih_t, bias, w_hh_t, lengths, batch_sizes, reverse,
    h, c, out, out_rows, out_span, out_col, gates, h_prev, c_prev, tanh_c,
):  # fmt: skip
    """LSTM over one layer and direction: the input projection and the time
    loop, a span of steps at a time.

    One call does a block's whole layer, its inputs gathered and its outputs
    scattered here: in inference the functional API then runs almost no
    Python between a block's kernels, where each hand-back of the GIL waited
    for the other thread (with :func:`rnntools.functional._inference_block`,
    LSTM inference at 32x50x32x64 on two threads went from 0.52-0.55 to
    0.45 ms).

    Parameters
    ----------
    inp : ndarray of shape (T, B, I), or (B_all, T, I) with ``inp_rows``
        The layer input: time-major, or the caller's batch-first array.
    inp_rows : int64 ndarray of shape (0,) or (B,)
        Empty for a time-major ``inp``; else the rows of ``inp`` that are
        this block's sequences (gathered a span at a time).
    inp_span : ndarray of shape (S, B, I), or (0, B, I) with no ``inp_rows``
        Scratch for the gathered inputs of a span; with ``S = T`` (training),
        out: every step's input, time-major, zeros at padded steps, each step
        gathered into its own (the caller zeroes steps that no sequence
        reaches: their span is skipped).
    w_ih_t : ndarray of shape (P*I, W)
        ``weight_ih.T`` packed in ``P`` panels of ``W`` columns by
        :func:`.row_invariant.pack_panels` (the caller packs once per call,
        for every block and step).
    bias : ndarray of shape (4H,)
        ``bias_ih + bias_hh``.
    w_hh_t : ndarray of shape (P*H, W)
        ``weight_hh.T``, packed alike.
    lengths : int64 ndarray of shape (B,)
        Sorted in decreasing order.
    batch_sizes : int64 ndarray of shape (T,)
        Number of sequences longer than each step.
    reverse : bool
        Run from each sequence's last step to its first.
    h, c : ndarray of shape (B, H)
        In: initial state. Out: final state (each sequence's own last step).
    out : ndarray of shape (T, B, D*H), or (B_all, T, D*H) with ``out_rows``
        The layer output, columns ``out_col:out_col+H`` written at the active
        steps: time-major (padding left as it is), or the caller's
        batch-first array (rows ``out_rows``, 0 at padded steps).
    out_rows : int64 ndarray of shape (0,) or (B,)
    out_span : ndarray of shape (S, B, H), or (0, B, H) with no ``out_rows``
        Scratch for a span of output on its way to a batch-first ``out``.
    out_col : int
    gates : ndarray of shape (S, B, 4H)
        Out: gate activations ``i, f, g, o`` (of the last span). ``S = T``
        when training (backward reads them all: the inputs are still projected
        a span of :func:`_span_steps` at a time, into their own steps, where
        the direction allows spans); in inference any ``S``, but ``S < T`` in
        reverse only without padding.
    h_prev, c_prev : ndarray of shape (T, B, H)
        Out: the state each step started from (saved for backward). Of shape
        ``(0, B, H)`` in inference: nothing is saved.
    tanh_c : ndarray of shape (T, B, H) or (0, B, H)
        Out: ``tanh(c_t)`` (saved for backward).

    Returns
    -------
    finite : bool
        Whether the values gathered from a batch-first ``inp`` (its unpadded
        steps) were all finite; True for a time-major ``inp``. The caller
        raises on False (the outputs are then meaningless): the check costs
        nothing here, where a pass of its own over ``x`` before the kernels
        took 0.3-0.7 ms of an LSTM inference at 128x100x128x256.
    """
    wide_vectors()
    steps = batch_sizes.shape[0]
    span, batch, width = gates.shape
    hidden = width // 4
    gathered = np.empty((batch, width), dtype=gates.dtype)
    cell_tanh = np.empty((batch, hidden), dtype=gates.dtype)
    tanh_columns = np.ones(width, dtype=gates.dtype)
    tanh_columns[2 * hidden : 3 * hidden] = 2  # the g gate
    features = inp.shape[2]
    # Spans of fewer than T steps run forwards, or backwards in a block
    # without padding: step s of a span is then its time s (or count - 1 - s)
    # for every sequence, as if all had the span's length.
    span_lengths = np.empty(batch, dtype=np.int64)
    batch_first = out_rows.shape[0] > 0
    # Gates of every step (training): projected a span at a time all the
    # same, into their own steps, so that a span's gates are still in cache
    # when its steps read them.
    every_step = span == steps
    if every_step and (not reverse or lengths[batch - 1] == steps):
        span = _span_steps(steps, batch, width, gates.itemsize)
    finite = True
    for first in range(0, steps, span):
        count = min(span, steps - first)
        start = steps - first - count if reverse else first  # earliest time
        target = out_span[:count] if batch_first else out[start : start + count]
        if batch_sizes[first] > 0:
            span_inputs, gathered_finite = _span_inputs(
                inp, inp_rows, inp_span, lengths, start, count
            )
            finite &= gathered_finite
            span_gates = gates[start : start + count] if every_step else gates[:count]
            row_invariant_matmul(
                span_inputs.reshape(count * batch, features),
                w_ih_t,
                span_gates.reshape(count * batch, width),
                bias,
            )
            for b in range(batch):
                span_lengths[b] = lengths[b] if count == steps else count
            column = 0 if batch_first else out_col
            for s in range(count):
                active = batch_sizes[first + s]
                if active == 0:
                    break
                _lstm_forward_step(
                    active, s, span_lengths, reverse, w_hh_t, h, c, gathered,
                    cell_tanh, tanh_columns, target, column, span_gates,
                    h_prev[start : start + count], c_prev[start : start + count],
                    tanh_c[start : start + count],
                )  # fmt: skip
        if batch_first:
            scatter_span(target, lengths, start, out, out_rows, out_col)
    return finite


#: In inference, an LSTM whose gates take at least this many bytes a row
#: (``4 H`` times the item size; ``H >= 512`` in float32, 256 in float64)
#: runs panel by panel (:func:`lstm_panel_layer`); smaller ones a step at
#: once (:func:`lstm_forward_layer`), whose step's gates stay in cache
#: anyway, where the product calls of every panel cost more than they saved.
#: One thread, float32, alternated runs against the step at once, best of
#: five: 128x50x64x512 0.92-0.96x the time, 8x50x32x512 0.69-0.73x; at
#: ``H = 256`` 8x50x32x256 1.10x, 32x100x128x256 1.00x; with an earlier
#: version of the kernel, 16x50x32x64 1.06x and 16x100x64x128 1.09x.
GATE_PANEL_ROW_BYTES = 8192


def gate_panels(hidden, dtype):
    """Whether an LSTM layer of ``hidden`` units runs its inference panel by
    panel, by :func:`lstm_panel_layer` (see :data:`GATE_PANEL_ROW_BYTES`):
    its width a multiple of the SIMD vector's lanes, so that every panel
    holds whole units."""
    itemsize = np.dtype(dtype).itemsize
    lanes = VECTOR_BYTES // itemsize
    return hidden % lanes == 0 and 4 * hidden * itemsize >= GATE_PANEL_ROW_BYTES


@njit(**STEP_OPTIONS)
def _lstm_panel_step(
    active, s, lengths, reverse, inputs, w_ih_t, bias, w_hh_t, h, c, h_next,
    block_buffer, x_rows, cells, cells_tanh, tanh_columns, out, out_col,
):  # fmt: skip
    # Panel by panel: each panel of the gate-interleaved weights
    # (pack_gate_panels) gives the four gates of ``units`` hidden units, the
    # input projection then the recurrent product added to it, and its units
    # are activated and their state updated while the (B, 4 units) block is
    # still in L1. A step at once wrote (B, 4H) gates that had left L2 (the
    # weights streaming through it) by the time the activations read them;
    # a span's input projection, computed before its steps, had too. The next
    # h waits in h_next until every panel has read h. Each element's
    # arithmetic is _lstm_forward_step's: the same bits.
    features = inputs.shape[2]
    hidden = h.shape[1]
    units = _lanes(block_buffer)
    width = 4 * units
    uniform = not reverse or lengths[0] == lengths[active - 1]
    if uniform:
        x_step = inputs[_step_time(s, active - 1, lengths, reverse), :active]
    else:
        x_step = x_rows[:active]
        for b in range(active):
            _copy(x_step[b], inputs[_step_time(s, b, lengths, reverse), b])
    block = block_buffer.reshape(block_buffer.size)[: active * width]
    block = block.reshape(active, width)
    for p in range(hidden // units):
        row_invariant_matmul(
            x_step, w_ih_t[p * features : (p + 1) * features], block,
            bias[p * width : (p + 1) * width],
        )  # fmt: skip
        row_invariant_matmul_add(
            h[:active], w_hh_t[p * hidden : (p + 1) * hidden], block
        )
        # The passes of _lstm_forward_step over the block, while in L1 (and
        # the same helpers: compiled once for both).
        gate_activations(block, tanh_columns)
        first = p * units
        for b in range(active):
            for u in range(units):
                cell = (
                    block[b, units + u] * c[b, first + u]
                    + block[b, u] * block[b, 2 * units + u]
                )
                c[b, first + u] = cell
                cells[b * units + u] = cell
        tanh(cells[: active * units], cells_tanh[: active * units])
        for b in range(active):
            for u in range(units):
                h_next[b, first + u] = (
                    block[b, 3 * units + u] * cells_tanh[b * units + u]
                )
    for b in range(active):
        out_row = out[_step_time(s, b, lengths, reverse), b, out_col : out_col + hidden]
        for j in range(hidden):
            h[b, j] = h_next[b, j]
            out_row[j] = h_next[b, j]


@njit(**KERNEL_OPTIONS)
def lstm_panel_layer(
    inp, inp_rows, inp_span, w_ih_t, bias, w_hh_t, lengths, batch_sizes, reverse,
    h, c, out, out_rows, out_span, out_col, span,
):  # fmt: skip
    """LSTM inference over one layer and direction, panel by panel, for the
    layers where :func:`gate_panels` holds: :func:`lstm_forward_layer`'s
    inference (the same bits), each step's input projected in the step.

    A kernel of its own, compiled on its first call: the LSTMs that do not
    need it (an LSTM classifier's first ``fit`` + ``predict``) do not
    compile it (inlined into :func:`lstm_forward_layer`, it added 0.8-1.0 s
    to that first call with an empty cache).

    Parameters
    ----------
    inp, inp_rows, inp_span, lengths, batch_sizes, reverse
        As in :func:`lstm_forward_layer` (``inp_span`` of ``span`` steps
        where used).
    h, c, out, out_rows, out_span, out_col
        As in :func:`lstm_forward_layer` (``out_span`` of ``span`` steps
        where used).
    w_ih_t : ndarray of shape (P*I, W)
        ``weight_ih.T`` by :func:`.row_invariant.pack_gate_panels`.
    bias : ndarray of shape (P*W,)
        ``bias_ih + bias_hh`` by :func:`.row_invariant.gate_panel_bias`.
    w_hh_t : ndarray of shape (P*H, W)
        ``weight_hh.T`` by :func:`.row_invariant.pack_gate_panels`.
    span : int
        Steps of input gathered and of output scattered at a time (``T`` in
        reverse with padding: see :func:`lstm_forward_layer`).

    Returns
    -------
    finite : bool
        As :func:`lstm_forward_layer`'s.
    """
    wide_vectors()
    steps = batch_sizes.shape[0]
    batch, hidden = h.shape
    features = inp.shape[2]
    units = _lanes(h)
    dtype = h.dtype
    block = np.empty((batch, 4 * units), dtype=dtype)
    h_next = np.empty((batch, hidden), dtype=dtype)
    x_rows = np.empty((batch, features), dtype=dtype)
    cells = np.empty(batch * units, dtype=dtype)
    cells_tanh = np.empty(batch * units, dtype=dtype)
    tanh_columns = np.ones(4 * units, dtype=dtype)
    tanh_columns[2 * units : 3 * units] = 2  # the g gate
    span_lengths = np.empty(batch, dtype=np.int64)
    batch_first = out_rows.shape[0] > 0
    finite = True
    for first in range(0, steps, span):
        count = min(span, steps - first)
        start = steps - first - count if reverse else first  # earliest time
        target = out_span[:count] if batch_first else out[start : start + count]
        if batch_sizes[first] > 0:
            span_inputs, gathered_finite = _span_inputs(
                inp, inp_rows, inp_span, lengths, start, count
            )
            finite &= gathered_finite
            for b in range(batch):
                span_lengths[b] = lengths[b] if count == steps else count
            column = 0 if batch_first else out_col
            for s in range(count):
                active = batch_sizes[first + s]
                if active == 0:
                    break
                _lstm_panel_step(
                    active, s, span_lengths, reverse, span_inputs, w_ih_t, bias,
                    w_hh_t, h, c, h_next, block, x_rows, cells, cells_tanh,
                    tanh_columns, target, column,
                )  # fmt: skip
        if batch_first:
            scatter_span(target, lengths, start, out, out_rows, out_col)
    return finite


@njit(**STEP_OPTIONS)
def _lstm_backward_step(
    active, s, lengths, reverse, w_hh, d_out, out_col, gates, c_prev, tanh_c,
    d_h, d_c, d_gates, step_grads,
):  # fmt: skip
    _, one, _ = constants(gates)
    hidden = d_h.shape[1]
    _add_output_grads(d_h, d_out, out_col, active, s, lengths, reverse)
    # Rows indexed in place, not through views (see _lstm_forward_step).
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        for j in range(hidden):
            i_gate = gates[t, b, j]
            f_gate = gates[t, b, hidden + j]
            g_gate = gates[t, b, 2 * hidden + j]
            o_gate = gates[t, b, 3 * hidden + j]
            tc = tanh_c[t, b, j]
            dh = d_h[b, j]
            dc = d_c[b, j] + dh * o_gate * (one - tc * tc)
            step_grads[b, j] = dc * g_gate * i_gate * (one - i_gate)
            step_grads[b, hidden + j] = dc * c_prev[t, b, j] * f_gate * (one - f_gate)
            step_grads[b, 2 * hidden + j] = dc * i_gate * (one - g_gate * g_gate)
            step_grads[b, 3 * hidden + j] = dh * tc * o_gate * (one - o_gate)
            d_c[b, j] = dc * f_gate
        for j in range(step_grads.shape[1]):
            d_gates[t, b, j] = step_grads[b, j]
    row_invariant_matmul(step_grads[:active], w_hh, d_h[:active], no_bias(d_h))


@njit(**KERNEL_OPTIONS)
def lstm_backward_layer(
    d_out, out_col, w_hh, gates, c_prev, tanh_c, lengths, batch_sizes, reverse,
    d_h, d_c, d_gates,
):  # fmt: skip
    """BPTT through one LSTM layer and direction.

    Parameters
    ----------
    d_out : ndarray of shape (T, B, D*H)
        Upstream gradient of the layer output; columns ``out_col:out_col+H``
        are read, at active positions only.
    out_col : int
    w_hh : ndarray of shape (P*4H, W)
        ``weight_hh`` (``(4H, H)``) packed in ``P`` panels of ``W`` columns by
        :func:`.row_invariant.pack_panels`, by the caller once per call.
    gates, c_prev, tanh_c : ndarray
        Saved by :func:`lstm_forward_layer`.
    lengths, batch_sizes : int64 ndarray
        As in :func:`lstm_forward_layer`.
    reverse : bool
    d_h, d_c : ndarray of shape (B, H)
        In: gradient of the final state. Out: gradient of the initial state.
    d_gates : ndarray of shape (T, B, 4H)
        Out: gradient of the gate pre-activations; zero at padded positions.
    """
    wide_vectors()
    steps, batch, width = gates.shape
    step_grads = np.empty((batch, width), dtype=gates.dtype)
    for s in range(steps - 1, -1, -1):
        active = batch_sizes[s]
        if active == 0:
            continue
        _lstm_backward_step(
            active, s, lengths, reverse, w_hh, d_out, out_col, gates,
            c_prev, tanh_c, d_h, d_c, d_gates, step_grads,
        )  # fmt: skip
    _zero_padding(d_gates, lengths)


# ---------------------------------------------------------------------- GRU


@njit(**STEP_OPTIONS)
def _gru_forward_step(
    active, s, lengths, reverse, w_hh_t, b_hn, h, pre, rz_pre, activated,
    candidate, new_gate, out, out_col, gates, h_prev, hn,
):  # fmt: skip
    hidden = h.shape[1]
    pre = pre[:active]
    rz_pre = rz_pre[:active]
    act = activated[:active]
    candidate = candidate[:active]
    new_gate = new_gate[:active]
    row_invariant_matmul(h[:active], w_hh_t, pre, no_bias(pre))
    # Rows indexed in place, not through views (see _lstm_forward_step).
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        for j in range(2 * hidden):
            rz_pre[b, j] = pre[b, j] + gates[t, b, j]
    # One sigmoid pass over the r and z columns of every row, as one block.
    size = active * 2 * hidden
    sigmoid(rz_pre.reshape(size), act.reshape(size))
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        at = _saved(t, hn)
        for j in range(hidden):
            hn[at, b, j] = pre[b, 2 * hidden + j] + b_hn[j]
            candidate[b, j] = gates[t, b, 2 * hidden + j] + act[b, j] * hn[at, b, j]
    tanh(candidate.reshape(active * hidden), new_gate.reshape(active * hidden))
    saving = h_prev.shape[0] > 0
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        for j in range(2 * hidden):
            gates[t, b, j] = act[b, j]
        if saving:  # all T steps (training), as for the lstm
            for j in range(hidden):
                h_prev[t, b, j] = h[b, j]
        out_row = out[t, b, out_col : out_col + hidden]
        for j in range(hidden):
            gates[t, b, 2 * hidden + j] = new_gate[b, j]
            h[b, j] = new_gate[b, j] + act[b, hidden + j] * (h[b, j] - new_gate[b, j])
            out_row[j] = h[b, j]


@njit(**KERNEL_OPTIONS)
def gru_forward_layer(
    inp, inp_rows, inp_span, w_ih_t, bias, w_hh_t, b_hn, lengths, batch_sizes,
    reverse, h, out, out_rows, out_span, out_col, gates, h_prev, hn,
):  # fmt: skip
    """GRU (PyTorch's reset-after form) over one layer and direction.

    ``r = σ(x W_ir + b_ir + h W_hr + b_hr)``, ``z`` alike,
    ``n = tanh(x W_in + b_in + r * (h W_hn + b_hn))``, ``h' = (1 - z) n + z h``.

    Parameters
    ----------
    inp, inp_rows, inp_span, w_ih_t, w_hh_t, lengths, batch_sizes, reverse
        As in :func:`lstm_forward_layer`, with ``3H`` gate columns.
    out, out_rows, out_span, out_col
        As in :func:`lstm_forward_layer`.
    bias : ndarray of shape (3H,)
        ``bias_ih`` plus the ``r`` and ``z`` blocks of ``bias_hh``.
    b_hn : ndarray of shape (H,)
        The ``n`` gate's recurrent bias (inside the reset product).
    h : ndarray of shape (B, H)
        In: initial state. Out: final state.
    gates : ndarray of shape (S, B, 3H)
        Out: activations ``r, z, n`` (``S`` as in :func:`lstm_forward_layer`).
    h_prev : ndarray of shape (T, B, H) or (0, B, H)
        Out: the state each step started from (nothing in inference).
    hn : ndarray of shape (T, B, H) or (1, B, H)
        Out: ``h W_hn + b_hn`` (one working step in inference).

    Returns
    -------
    finite : bool
        As :func:`lstm_forward_layer`'s.
    """
    wide_vectors()
    steps = batch_sizes.shape[0]
    span, batch, width = gates.shape
    hidden = width // 3
    pre = np.empty((batch, width), dtype=gates.dtype)
    rz_pre = np.empty((batch, 2 * hidden), dtype=gates.dtype)
    activated = np.empty((batch, 2 * hidden), dtype=gates.dtype)
    candidate = np.empty((batch, hidden), dtype=gates.dtype)
    new_gate = np.empty((batch, hidden), dtype=gates.dtype)
    features = inp.shape[2]
    # Spans of fewer than T steps run forwards, or backwards in a block
    # without padding: step s of a span is then its time s (or count - 1 - s)
    # for every sequence, as if all had the span's length.
    span_lengths = np.empty(batch, dtype=np.int64)
    batch_first = out_rows.shape[0] > 0
    every_step = span == steps  # training: see lstm_forward_layer
    if every_step and (not reverse or lengths[batch - 1] == steps):
        span = _span_steps(steps, batch, width, gates.itemsize)
    finite = True
    for first in range(0, steps, span):
        count = min(span, steps - first)
        start = steps - first - count if reverse else first  # earliest time
        target = out_span[:count] if batch_first else out[start : start + count]
        if batch_sizes[first] > 0:
            span_inputs, gathered_finite = _span_inputs(
                inp, inp_rows, inp_span, lengths, start, count
            )
            finite &= gathered_finite
            span_gates = gates[start : start + count] if every_step else gates[:count]
            row_invariant_matmul(
                span_inputs.reshape(count * batch, features),
                w_ih_t,
                span_gates.reshape(count * batch, width),
                bias,
            )
            for b in range(batch):
                span_lengths[b] = lengths[b] if count == steps else count
            column = 0 if batch_first else out_col
            # hn: every step's (training) or a working row (inference).
            span_hn = hn[start : start + count] if hn.shape[0] == steps else hn[:1]
            for s in range(count):
                active = batch_sizes[first + s]
                if active == 0:
                    break
                _gru_forward_step(
                    active, s, span_lengths, reverse, w_hh_t, b_hn, h, pre,
                    rz_pre, activated, candidate, new_gate, target, column,
                    span_gates, h_prev[start : start + count], span_hn,
                )  # fmt: skip
        if batch_first:
            scatter_span(target, lengths, start, out, out_rows, out_col)
    return finite


@njit(**STEP_OPTIONS)
def _gru_backward_step(
    active, s, lengths, reverse, w_hh, d_out, out_col, gates, h_prev, hn,
    d_h, d_h_direct, d_gates_ih, step_grads, d_gates_hh,
):  # fmt: skip
    _, one, _ = constants(gates)
    hidden = d_h.shape[1]
    _add_output_grads(d_h, d_out, out_col, active, s, lengths, reverse)
    # Rows indexed in place, not through views (see _lstm_forward_step).
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        for j in range(hidden):
            r_gate = gates[t, b, j]
            z_gate = gates[t, b, hidden + j]
            n_gate = gates[t, b, 2 * hidden + j]
            dh = d_h[b, j]
            d_n = dh * (one - z_gate) * (one - n_gate * n_gate)
            d_r = d_n * hn[t, b, j] * r_gate * (one - r_gate)
            d_z = dh * (h_prev[t, b, j] - n_gate) * z_gate * (one - z_gate)
            d_gates_ih[t, b, j] = d_r
            d_gates_ih[t, b, hidden + j] = d_z
            d_gates_ih[t, b, 2 * hidden + j] = d_n
            step_grads[b, j] = d_r
            step_grads[b, hidden + j] = d_z
            step_grads[b, 2 * hidden + j] = d_n * r_gate
            d_gates_hh[t, b, j] = d_n * r_gate
            d_h_direct[b, j] = dh * z_gate
    row_invariant_matmul(step_grads[:active], w_hh, d_h[:active], no_bias(d_h))
    for b in range(active):
        for j in range(hidden):
            d_h[b, j] += d_h_direct[b, j]


@njit(**KERNEL_OPTIONS)
def gru_backward_layer(
    d_out, out_col, w_hh, gates, h_prev, hn, lengths, batch_sizes, reverse,
    d_h, d_gates_ih, d_gates_hh,
):  # fmt: skip
    """BPTT through one GRU layer and direction.

    Parameters
    ----------
    d_out, out_col, w_hh, lengths, batch_sizes, reverse
        As in :func:`lstm_backward_layer`.
    gates, h_prev, hn : ndarray
        Saved by :func:`gru_forward_layer`.
    d_h : ndarray of shape (B, H)
        In: gradient of the final state. Out: gradient of the initial state.
    d_gates_ih : ndarray of shape (T, B, 3H)
        Out: gradient of ``x W_ih + b_ih``.
    d_gates_hh : ndarray of shape (T, B, H)
        Out: gradient of the ``n`` block of ``h W_hh + b_hh`` (which the
        reset gate scales). Its ``r`` and ``z`` blocks are those of
        ``d_gates_ih``: not stored twice (two ``T B H`` arrays of a training
        step's memory).
    """
    wide_vectors()
    steps, batch, width = gates.shape
    hidden = width // 3
    step_grads = np.empty((batch, width), dtype=gates.dtype)
    d_h_direct = np.empty((batch, hidden), dtype=gates.dtype)
    for s in range(steps - 1, -1, -1):
        active = batch_sizes[s]
        if active == 0:
            continue
        _gru_backward_step(
            active, s, lengths, reverse, w_hh, d_out, out_col, gates,
            h_prev, hn, d_h, d_h_direct, d_gates_ih, step_grads, d_gates_hh,
        )  # fmt: skip
    _zero_padding(d_gates_ih, lengths)
    _zero_padding(d_gates_hh, lengths)


# ---------------------------------------------------------------- Elman RNN


@njit(**STEP_OPTIONS)
def _rnn_forward_step(
    active, s, lengths, reverse, w_hh_t, relu, h, pre, activated, out, out_col,
    gates, h_prev,
):  # fmt: skip
    zero, _, _ = constants(gates)
    hidden = h.shape[1]
    pre = pre[:active]
    act = activated[:active]
    row_invariant_matmul(h[:active], w_hh_t, pre, no_bias(pre))
    # Rows indexed in place, not through views (see _lstm_forward_step).
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        for j in range(hidden):
            pre[b, j] += gates[t, b, j]
    if relu:
        for b in range(active):
            for j in range(hidden):
                act[b, j] = max(pre[b, j], zero)
    else:
        tanh(pre.reshape(active * hidden), act.reshape(active * hidden))
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        at = _saved(t, h_prev)
        out_row = out[t, b, out_col : out_col + hidden]
        for j in range(hidden):
            gates[t, b, j] = act[b, j]
            h_prev[at, b, j] = h[b, j]
            h[b, j] = act[b, j]
            out_row[j] = act[b, j]


@njit(**KERNEL_OPTIONS)
def rnn_forward_layer(
    inp, inp_rows, inp_span, w_ih_t, bias, w_hh_t, relu, lengths, batch_sizes,
    reverse, h, out, out_rows, out_span, out_col, gates, h_prev,
):  # fmt: skip
    """Elman RNN ``h' = act(x W_ih + b_ih + h W_hh + b_hh)`` over one layer.

    Parameters
    ----------
    inp, inp_rows, inp_span, w_ih_t, bias, w_hh_t, lengths, batch_sizes, reverse
        As in :func:`lstm_forward_layer`, with ``H`` gate columns.
    out, out_rows, out_span, out_col
        As in :func:`lstm_forward_layer`.
    relu : bool
        ``max(0, .)`` instead of ``tanh``.
    h : ndarray of shape (B, H)
        In: initial state. Out: final state.
    gates : ndarray of shape (S, B, H)
        Out: the new states ``h'`` (saved for backward; ``S`` as in
        :func:`lstm_forward_layer`).
    h_prev : ndarray of shape (T, B, H) or (1, B, H)
        Out: the state each step started from (one step only in inference).

    Returns
    -------
    finite : bool
        As :func:`lstm_forward_layer`'s.
    """
    wide_vectors()
    steps = batch_sizes.shape[0]
    span, batch, width = gates.shape
    hidden = width  # one gate
    pre = np.empty((batch, hidden), dtype=gates.dtype)
    activated = np.empty((batch, hidden), dtype=gates.dtype)
    features = inp.shape[2]
    # Spans of fewer than T steps run forwards, or backwards in a block
    # without padding: step s of a span is then its time s (or count - 1 - s)
    # for every sequence, as if all had the span's length.
    span_lengths = np.empty(batch, dtype=np.int64)
    batch_first = out_rows.shape[0] > 0
    every_step = span == steps  # training: see lstm_forward_layer
    if every_step and (not reverse or lengths[batch - 1] == steps):
        span = _span_steps(steps, batch, width, gates.itemsize)
    finite = True
    for first in range(0, steps, span):
        count = min(span, steps - first)
        start = steps - first - count if reverse else first  # earliest time
        target = out_span[:count] if batch_first else out[start : start + count]
        if batch_sizes[first] > 0:
            span_inputs, gathered_finite = _span_inputs(
                inp, inp_rows, inp_span, lengths, start, count
            )
            finite &= gathered_finite
            span_gates = gates[start : start + count] if every_step else gates[:count]
            row_invariant_matmul(
                span_inputs.reshape(count * batch, features),
                w_ih_t,
                span_gates.reshape(count * batch, width),
                bias,
            )
            for b in range(batch):
                span_lengths[b] = lengths[b] if count == steps else count
            column = 0 if batch_first else out_col
            for s in range(count):
                active = batch_sizes[first + s]
                if active == 0:
                    break
                _rnn_forward_step(
                    active, s, span_lengths, reverse, w_hh_t, relu, h, pre,
                    activated, target, column, span_gates, h_prev,
                )  # fmt: skip
        if batch_first:
            scatter_span(target, lengths, start, out, out_rows, out_col)
    return finite


def rnn_previous_states(states, h0, lengths, reverse, h_prev):
    """The state each step of an Elman RNN started from, rebuilt from the
    states :func:`rnn_forward_layer` saved (in training it keeps no
    ``h_prev`` of its own: that was a copy of ``states``, shifted).

    Plain numpy (copies): nothing to compile.

    Parameters
    ----------
    states : ndarray of shape (T, B, H)
        The ``gates`` :func:`rnn_forward_layer` wrote: ``h'`` at each active
        step, finite numbers elsewhere.
    h0 : ndarray of shape (B, H)
        The initial state.
    lengths : int64 ndarray of shape (B,)
    reverse : bool
    h_prev : ndarray of shape (T, B, H)
        Out: ``h0`` at each sequence's first step (time 0, or its last time
        in reverse), else the state of the step before (time ``t - 1``, or
        ``t + 1`` in reverse); finite at padded steps.
    """
    if reverse:
        h_prev[:-1] = states[1:]
        h_prev[-1] = 0
        h_prev[lengths - 1, np.arange(len(lengths))] = h0
    else:
        h_prev[1:] = states[:-1]
        h_prev[0] = h0


@njit(**STEP_OPTIONS)
def _rnn_backward_step(
    active, s, lengths, reverse, w_hh, relu, d_out, out_col, gates,
    d_h, d_gates, step_grads,
):  # fmt: skip
    zero, one, _ = constants(gates)
    hidden = d_h.shape[1]
    _add_output_grads(d_h, d_out, out_col, active, s, lengths, reverse)
    # Rows indexed in place, not through views (see _lstm_forward_step).
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        if relu:
            for j in range(hidden):
                grad = d_h[b, j] if gates[t, b, j] > zero else zero
                step_grads[b, j] = grad
                d_gates[t, b, j] = grad
        else:
            for j in range(hidden):
                act = gates[t, b, j]
                grad = d_h[b, j] * (one - act * act)
                step_grads[b, j] = grad
                d_gates[t, b, j] = grad
    row_invariant_matmul(step_grads[:active], w_hh, d_h[:active], no_bias(d_h))


@njit(**KERNEL_OPTIONS)
def rnn_backward_layer(
    d_out, out_col, w_hh, gates, relu, lengths, batch_sizes, reverse,
    d_h, d_gates,
):  # fmt: skip
    """BPTT through one Elman RNN layer and direction.

    Parameters
    ----------
    d_out, out_col, w_hh, lengths, batch_sizes, reverse
        As in :func:`lstm_backward_layer`.
    gates : ndarray of shape (T, B, H)
        The states saved by :func:`rnn_forward_layer`.
    relu : bool
    d_h : ndarray of shape (B, H)
        In: gradient of the final state. Out: gradient of the initial state.
    d_gates : ndarray of shape (T, B, H)
        Out: gradient of the pre-activations; zero at padded positions.
    """
    wide_vectors()
    steps, batch, hidden = gates.shape
    step_grads = np.empty((batch, hidden), dtype=gates.dtype)
    for s in range(steps - 1, -1, -1):
        active = batch_sizes[s]
        if active == 0:
            continue
        _rnn_backward_step(
            active, s, lengths, reverse, w_hh, relu, d_out, out_col,
            gates, d_h, d_gates, step_grads,
        )  # fmt: skip
    _zero_padding(d_gates, lengths)


# ------------------------------------------------------- weight gradients


@helper
def _zero_padding(buffer, lengths):
    """Set ``buffer[t, b] = 0`` for ``t >= lengths[b]``."""
    for b in range(buffer.shape[1]):
        for t in range(lengths[b], buffer.shape[0]):
            buffer[t, b] = 0


#: :func:`layer_param_grads` packs the unpadded rows when they are fewer
#: than this fraction of ``T * B``. Packing copies ``G*H + H + I`` numbers per
#: unpadded row to skip ``2 G*H (2 I + H)`` flops per padded row; LSTM
#: forward+backward, one layer, float32, 2 threads, packed against not, at
#: fill (unpadded fraction) 0.97 / 0.89 / 0.8 / 0.75: 32x44x32x128 +5 / +1 /
#: +3 / +1 %, 128x100x128x256 +6 / +1 / -2 / -7 %; at fill 0.6,
#: 32x44x32x128 -10 to -14 %.
PACK_FILL = 0.75


def layer_param_grads(
    inp, h_prev, w_ih, d_gates_ih, d_gates_hh, d_w_ih, d_w_hh, d_b_ih, d_b_hh,
    d_inp, valid_rows=None,
):  # fmt: skip
    """Weight, bias and input gradients of one layer and direction.

    One GEMM each over the ``T * B`` rows, after the time loop. Padded rows of
    ``d_gates_*`` are zero, and ``inp`` and ``h_prev`` are finite there, so
    padding contributes nothing; where it is most of the work (see
    :data:`PACK_FILL`), the unpadded rows ``valid_rows`` are first copied
    together and the padding skipped. Plain Python around compiled code (an
    ``@njit`` kernel here compiled the products once more: 0.7 s of a cold
    first LSTM fit).

    Parameters
    ----------
    inp : ndarray of shape (T, B, I)
    h_prev : ndarray of shape (T, B, H)
    w_ih : ndarray of shape (G*H, I)
    d_gates_ih : ndarray of shape (T, B, G*H)
        Gradient of the input pre-activations.
    d_gates_hh : ndarray of shape (T, B, G*H), or (T, B, H) for the gru
        Gradient of the recurrent pre-activations: the same array as
        ``d_gates_ih`` for rnn and lstm; for the gru, its ``n`` block only
        (the ``r`` and ``z`` blocks are ``d_gates_ih``'s).
    d_w_ih : ndarray of shape (G*H, I)
        Out.
    d_w_hh : ndarray of shape (G*H, H)
        Out.
    d_b_ih, d_b_hh : ndarray of shape (G*H,)
        Out.
    d_inp : ndarray of shape (T, B, I)
        Out: gradient of the layer input from this direction (0 at padding).
    valid_rows : int64 ndarray of shape (N,), optional
        Increasing indices of the unpadded steps among the ``T * B`` rows
        (``t * B + b``). None: all rows are taken as they are.

    All C-contiguous.
    """
    steps, batch, features = inp.shape
    hidden = h_prev.shape[2]
    rows = steps * batch
    width = d_gates_ih.shape[2]
    g_ih = d_gates_ih.reshape(rows, width)
    h_prev_2d = h_prev.reshape(rows, hidden)
    inp_2d = inp.reshape(rows, features)
    d_inp_2d = d_inp.reshape(rows, features)
    packed = valid_rows is not None and len(valid_rows) < PACK_FILL * rows
    if packed:
        g_ih, h_prev_2d, inp_2d = (
            _take_rows(array, valid_rows) for array in (d_gates_ih, h_prev, inp)
        )
        d_gates_hh = (
            g_ih if d_gates_hh is d_gates_ih else _take_rows(d_gates_hh, valid_rows)
        )
        all_d_inp, d_inp_2d = d_inp_2d, np.empty_like(inp_2d)
        rows = len(valid_rows)
    weight_gradient(g_ih, inp_2d, d_w_ih)
    row_invariant_matmul(
        g_ih,
        np.ascontiguousarray(w_ih),
        d_inp_2d,
        np.empty(0, dtype=d_inp.dtype),  # no bias
    )
    if packed:
        all_d_inp[...] = 0
        all_d_inp[valid_rows] = d_inp_2d
    column_sums(g_ih, out=d_b_ih)
    shared = width - d_gates_hh.shape[-1]  # the gru's r and z blocks, else 0
    g_hh = d_gates_hh.reshape(rows, width - shared)
    if shared:
        # A strided view of g_ih: np.matmul hands BLAS its row stride (np.dot
        # copied it: two T B H arrays more at the peak).
        # Tiny gradients may underflow, as in every other product here, but
        # numpy checks the FPU flags after BLAS and would warn (or raise).
        with np.errstate(under="ignore"):
            np.matmul(g_ih[:, :shared].T, h_prev_2d, out=d_w_hh[:shared])
        d_b_hh[:shared] = d_b_ih[:shared]
    weight_gradient(g_hh, h_prev_2d, d_w_hh[shared:])
    if shared:
        column_sums(g_hh, out=d_b_hh[shared:])
    else:  # rnn, lstm: g_hh is g_ih, whose column sums are d_b_ih
        d_b_hh[...] = d_b_ih


def _take_rows(array, rows):
    """``array`` ``(T, B, F)`` as ``T * B`` rows, the rows ``rows`` of it:
    a new C-contiguous ``(len(rows), F)`` array."""
    flat = array.reshape(-1, array.shape[-1])
    out = np.empty((len(rows), flat.shape[1]), dtype=flat.dtype)
    # mode="clip": np.take buffers ``out`` in the default mode ("raise").
    return np.take(flat, rows, axis=0, out=out, mode="clip")


@njit(cache=CACHE, error_model="numpy", nogil=True, no_cfunc_wrapper=True)
def adam_update(param, grad, first, second, step, beta_1, one_minus_beta_1,
                beta_2, one_minus_beta_2, epsilon):  # fmt: skip
    """One Adam step of a parameter, elementwise and in place, rounding for
    rounding as :class:`rnntools.optim.AdamOptimizer`'s numpy expressions
    (no ``fastmath``: no fused multiply-add), in one pass instead of a dozen
    numpy calls (most of the optimizer's time on a small model).

    Parameters
    ----------
    param, grad, first, second : ndarray of shape (n,)
        The parameter, its gradient and its two moments, one dtype.
    step : float64
        The bias-corrected learning rate (numpy computes its product with the
        first moment in float64).
    beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon : scalar
        In the arrays' dtype (``1 - beta`` rounded from float64, as numpy
        casts the Python float).
    """
    wide_vectors()
    for i in range(param.shape[0]):
        g = grad[i]
        m = first[i] * beta_1
        m = m + one_minus_beta_1 * g
        v = second[i] * beta_2
        v = v + one_minus_beta_2 * g * g
        first[i] = m
        second[i] = v
        update = step * m / (np.sqrt(v) + epsilon)
        param[i] = param[i] - param.dtype.type(update)


# ------------------------------------------------------ single-step inference
# One timestep of one layer for a batch of independent rows (decoding,
# streaming). The arithmetic is the layer loops' own, operation for
# operation (row-invariant input product, then bias, then the row-invariant
# recurrent product added inside the activations), so a step gives the bits
# of the layer loops, and each row's result is the same whatever the batch
# around it: a beam or a prompt decodes identically alone and in any batch.


@njit(**KERNEL_OPTIONS)
def _step_input(x, w_ih_t, bias, gates):
    """``gates = x @ w_ih_t + bias`` row by row (as the layer kernels do)."""
    row_invariant_matmul(x, w_ih_t, gates, bias)


@helper
def lstm_step(x, w_ih_t, w_hh_t, bias, tanh_columns, h, c, h_out, c_out, gates,
              input_ready, recurrent_ready):  # fmt: skip
    """One LSTM step of one layer: ``(h, c) -> (h_out, c_out)``.

    Parameters
    ----------
    x : ndarray of shape (B, I)
    w_ih_t : ndarray of shape (I, 4H), or (P*I, W)
        ``weight_ih.T``, C-contiguous, as it is or packed in panels by
        :func:`.row_invariant.pack_panels` (as :func:`prepare_step
        <rnntools.functional.prepare_step>` lays it out).
    w_hh_t : ndarray of shape (H, 4H), or (P*H, W)
        ``weight_hh.T``, likewise.
    bias : ndarray of shape (4H,)
        ``bias_ih + bias_hh``.
    tanh_columns : ndarray of shape (4H,)
        1 for sigmoid columns, 2 for the g gate (see ``gate_activations``).
    h, c : ndarray of shape (B, H)
        The state; read only.
    h_out, c_out : ndarray of shape (B, H)
        Out: the next state.
    gates : ndarray of shape (B, 4H)
        Scratch.
    input_ready : bool
        ``gates`` already holds ``x W_ih + bias`` (``x`` is then unused).
    recurrent_ready : bool
        ``gates`` already holds the recurrent product too (``h`` is then
        unused: see :func:`stack_step`'s ``parents``).
    """
    wide_vectors()
    batch, hidden = h_out.shape
    if not input_ready:
        _step_input(x, w_ih_t, bias, gates)
    if not recurrent_ready:
        row_invariant_matmul_add(h, w_hh_t, gates)
    # One pass, each element's four gates in registers: the arithmetic of
    # gate_activations() on the gates and tanh() on the cell, element by
    # element (the same bits), where passes over (B, 4H) blocks left L2 once
    # a beam search's hundreds of rows were decoded.
    # Rows indexed in place, not through views (see the note on views after _copy).
    for b in range(batch):
        for j in range(hidden):
            i = gate_value(gates, gates[b, j], tanh_columns[j])
            f_col, g_col, o_col = hidden + j, 2 * hidden + j, 3 * hidden + j
            f = gate_value(gates, gates[b, f_col], tanh_columns[f_col])
            g = gate_value(gates, gates[b, g_col], tanh_columns[g_col])
            o = gate_value(gates, gates[b, o_col], tanh_columns[o_col])
            cell = f * c[b, j] + i * g
            c_out[b, j] = cell
            # tanh_columns types tanh_value's constants: 1-D, as tanh()
            # passes (the 2-D gates compiled a second tanh_value).
            h_out[b, j] = o * tanh_value(tanh_columns, cell)


@helper
def gru_step(x, w_ih_t, w_hh_t, bias, b_hn, h, h_out, gates, pre,
             input_ready, recurrent_ready):  # fmt: skip
    """One GRU step of one layer (PyTorch's reset-after form): ``h -> h_out``.

    Parameters
    ----------
    x, w_ih_t, w_hh_t
        As in :func:`lstm_step`, with ``3H`` gate columns.
    bias : ndarray of shape (3H,)
        ``bias_ih`` plus the ``r`` and ``z`` blocks of ``bias_hh``.
    b_hn : ndarray of shape (H,)
        The ``n`` block of ``bias_hh`` (inside the reset product).
    h : ndarray of shape (B, H)
        Read only.
    h_out : ndarray of shape (B, H)
        Out.
    gates, pre : ndarray of shape (B, 3H)
        Scratch.
    input_ready : bool
        ``gates`` already holds ``x W_ih + bias`` (``x`` is then unused).
    recurrent_ready : bool
        ``pre`` already holds the recurrent product ``h W_hh``.
    """
    wide_vectors()
    batch, hidden = h.shape
    if not input_ready:
        _step_input(x, w_ih_t, bias, gates)
    if not recurrent_ready:
        row_invariant_matmul(h, w_hh_t, pre, no_bias(pre))
    n_col = 2 * hidden
    # One pass, each element's gates in registers: the arithmetic of
    # sigmoid() on r and z and tanh() on the candidate, element by element
    # (the same bits), where passes over (B, 3H) blocks left L2 once a beam
    # search's thousand rows were decoded (a GRU captioner, H = 64: this
    # function took 31 % of beam search's time, 19 % of greedy search's).
    # Rows indexed in place, not through views (see the note on views after _copy).
    for b in range(batch):
        for j in range(hidden):
            # b_hn types the constants: a 1-D reference, as sigmoid() and
            # tanh() pass, so that the helpers compile once (a 2-D one
            # compiled a second sigmoid_value).
            r = sigmoid_value(b_hn, pre[b, j] + gates[b, j])
            z = sigmoid_value(b_hn, pre[b, hidden + j] + gates[b, hidden + j])
            candidate = gates[b, n_col + j] + r * (pre[b, n_col + j] + b_hn[j])
            n = tanh_value(b_hn, candidate)
            h_out[b, j] = n + z * (h[b, j] - n)


@helper
def rnn_step(x, w_ih_t, w_hh_t, bias, relu, h, h_out, gates, pre,
             input_ready, recurrent_ready):  # fmt: skip
    """One Elman step of one layer: ``h_out = act(x W_ih + b + h W_hh)``.

    Parameters
    ----------
    x, w_ih_t, w_hh_t
        As in :func:`lstm_step`, with ``H`` gate columns.
    bias : ndarray of shape (H,)
        ``bias_ih + bias_hh``.
    relu : bool
    h : ndarray of shape (B, H)
        Read only.
    h_out : ndarray of shape (B, H)
        Out.
    gates, pre : ndarray of shape (B, H)
        Scratch.
    input_ready : bool
        ``gates`` already holds ``x W_ih + bias`` (``x`` is then unused).
    recurrent_ready : bool
        ``pre`` already holds the recurrent product ``h W_hh`` (``h`` is then
        unused).
    """
    wide_vectors()
    zero, _, _ = constants(gates)
    batch, hidden = h_out.shape
    if not input_ready:
        _step_input(x, w_ih_t, bias, gates)
    if not recurrent_ready:
        row_invariant_matmul(h, w_hh_t, pre, no_bias(pre))
    for b in range(batch):
        for j in range(hidden):
            pre[b, j] += gates[b, j]
    if relu:
        for b in range(batch):
            for j in range(hidden):
                h_out[b, j] = max(pre[b, j], zero)
    else:
        tanh(pre.reshape(batch * hidden), h_out.reshape(batch * hidden))


@helper
def _finite(flat):
    """Whether every element of the 1-D ``flat`` is finite (``v - v`` is 0
    for a finite ``v``, NaN otherwise): one OR over the whole array, which
    LLVM vectorises (an early return per element did not: 5x slower, a
    seventh of a decoding step)."""
    bad = 0
    for i in range(flat.shape[0]):
        value = flat[i]
        bad |= np.int32((value - value) != 0)
    return bad == 0


@njit(**KERNEL_OPTIONS)
def stack_step(relu, x, x_projected, w_ih0_t, w_ih_rest_t, w_hh_t, bias, b_hn,
               tanh_columns, h, c, parents, h_out, c_out, scratch):  # fmt: skip
    """One timestep of a unidirectional stack of ``L`` layers, in one call.

    The cell is the one whose own argument is given: ``tanh_columns`` the
    LSTM's, ``b_hn`` the GRU's, ``relu`` the RNN's; the other two are None.
    Numba prunes a branch on ``argument is not None`` only where the
    argument is None (not where it is an array), so each cell's call has a
    branch of its own: a specialisation compiles one cell. (All three in one
    kernel, linked again into every decoding kernel, were most of a language
    model's first ``generate``; see :mod:`.decoder`.)

    Parameters
    ----------
    relu : bool or None
        The RNN's: ReLU instead of tanh; None for the other cells.
    x : ndarray of shape (B, I), or (B, G*H) if ``x_projected``
    x_projected : bool
        ``x`` is already the first layer's gate input ``x W_ih + bias`` (a
        decoder looks it up per token: see
        :func:`rnntools.kernels.decoder.decoder_step`); it is then used as the
        first layer's gate buffer and overwritten; it is not checked (the
        caller checks the table its rows come from).
    w_ih0_t : ndarray of shape (I, G*H), or (P*I, W) packed
        The first layer's ``weight_ih.T`` (unused if ``x_projected``); packed
        in panels by :func:`.row_invariant.pack_panels` or not, as every
        weight here.
    w_ih_rest_t : ndarray of shape (L - 1, H, G*H), or (L - 1, P*H, W)
        The other layers' ``weight_ih.T``.
    w_hh_t : ndarray of shape (L, H, G*H), or (L, P*H, W)
    bias : ndarray of shape (L, G*H)
        Fused biases (as in :func:`lstm_step`, :func:`gru_step`,
        :func:`rnn_step`).
    b_hn : ndarray of shape (L, H), or None
        The GRU's ``n`` block of ``bias_hh``; None for the other cells.
    tanh_columns : ndarray of shape (G*H,), or None
        The LSTM's (see :func:`lstm_step`); None for the other cells.
    h, c : ndarray of shape (L, U, H)
        The state (``c`` is read by the LSTM only); read only. ``U = B``
        without ``parents``.
    parents : int64 ndarray of shape (B,) or (0,)
        Row ``b`` continues the state ``h[:, parents[b]]`` (beam search:
        beams that share a parent share its state). Each recurrent product
        is then computed once per state (``U`` rows) and added to every row
        that continues it: the same bits as one row per beam, since a row's
        product does not depend on the rows around it. ``U <= B``, not
        checked. Empty: row ``b`` continues ``h[:, b]``.
    h_out, c_out : ndarray of shape (L, B, H)
        Out: the next state (``c_out`` written by the LSTM only).
    scratch : ndarray of shape (B, 2 * G*H), with parents (B, 3 * G*H + 2 * H)
        Scratch, kept by the caller between steps (fresh pages cost more than
        the step itself at large batches).

    Returns
    -------
    finite : bool
        Whether ``x`` (unless ``x_projected``), ``h`` and ``c`` were all
        finite; when False the outputs are meaningless and the caller raises.
    """
    # Projected rows come from a table the caller has checked once.
    # Flat (1-D) arguments: one _finite for the 2-D x and the 3-D states.
    if not (
        (x_projected or _finite(x.ravel()))
        and _finite(h.ravel())
        and _finite(c.ravel())
    ):
        return False
    batch = x.shape[0]
    hidden = h.shape[2]
    cell_width = c.shape[2]
    width = bias.shape[1]
    flat = scratch.reshape(batch * scratch.shape[1])
    size = batch * width
    gates = flat[:size].reshape(batch, width)
    pre = flat[size : 2 * size].reshape(batch, width)
    shared = parents.shape[0] > 0
    if shared:
        offset = 2 * size
        states = h.shape[1]
        products = flat[offset : offset + states * width].reshape(states, width)
        offset += size
        h_rows = flat[offset : offset + batch * hidden].reshape(batch, hidden)
        offset += batch * hidden
        c_rows = flat[offset : offset + batch * cell_width].reshape(batch, cell_width)
    layer_input = x
    for layer in range(h.shape[0]):
        w_ih_t = w_ih0_t if layer == 0 else w_ih_rest_t[layer - 1]
        input_ready = x_projected and layer == 0
        layer_gates = x if input_ready else gates
        layer_h = h[layer]
        layer_c = c[layer]
        if shared:
            # Each state's product once, then every row its parent's: the
            # input part first (the product is added to it, as in the steps).
            if not input_ready:
                _step_input(layer_input, w_ih_t, bias[layer], gates)
                input_ready = True
            row_invariant_matmul(layer_h, w_hh_t[layer], products, no_bias(products))
            # Each row's parent state too, where the step reads it after the
            # product: the LSTM's c, the GRU's h (the RNN reads neither).
            # In place, not through views (see the note on views after _copy).
            for b in range(batch):
                parent = parents[b]
                # lstm (for the other cells this branch is pruned; for the
                # lstm the else stays compiled: plain loops, no calls)
                if tanh_columns is not None:
                    for j in range(cell_width):
                        c_rows[b, j] = layer_c[parent, j]
                    for j in range(width):
                        layer_gates[b, j] = layer_gates[b, j] + products[parent, j]
                else:
                    if b_hn is not None:  # gru
                        for j in range(hidden):
                            h_rows[b, j] = layer_h[parent, j]
                    for j in range(width):
                        pre[b, j] = products[parent, j]
            layer_h = h_rows
            layer_c = c_rows
        # One branch per cell, each pruned where its argument is None.
        if tanh_columns is not None:
            lstm_step(
                layer_input, w_ih_t, w_hh_t[layer], bias[layer], tanh_columns,
                layer_h, layer_c, h_out[layer], c_out[layer], layer_gates,
                input_ready, shared,
            )  # fmt: skip
        if b_hn is not None:
            gru_step(
                layer_input, w_ih_t, w_hh_t[layer], bias[layer], b_hn[layer],
                layer_h, h_out[layer], layer_gates, pre, input_ready,
                shared,
            )  # fmt: skip
        if relu is not None:
            rnn_step(
                layer_input, w_ih_t, w_hh_t[layer], bias[layer], relu, layer_h,
                h_out[layer], layer_gates, pre, input_ready, shared,
            )  # fmt: skip
        layer_input = h_out[layer]
    return True


@njit(**KERNEL_OPTIONS)
def state_step(relu, x, w_ih0_t, w_ih_rest_t, w_hh_t, bias, b_hn, tanh_columns,
               h, c, state_out, output, scratch):  # fmt: skip
    """:func:`stack_step` as :func:`rnntools.functional.rnn_step` calls it:
    the new state in one array, the step's output copied out, the scratch
    allocated here for small batches.

    At batch 1 (an LSTM, H = 128) the step's Python around the kernel cost
    as much as the kernel: the output's copy, the views of a kept scratch
    buffer and two more arguments each cost more than doing it here.

    Parameters
    ----------
    relu, x, w_ih0_t, w_ih_rest_t, w_hh_t, bias, b_hn, tanh_columns, h, c
        As in :func:`stack_step` (``x`` not projected, every row its own
        state).
    state_out : ndarray of shape (S, L, B, H)
        Out: the new state, ``h`` then (the LSTM's, ``S = 2``) ``c``.
    output : ndarray of shape (B, H)
        Out: the last layer's new ``h``.
    scratch : ndarray of shape (B, 2 * G*H), or (0, 2 * G*H)
        Scratch kept by the caller (fresh pages cost more than the step at
        large batches); with no rows it is allocated here (a small block
        comes from the allocator's free list).

    Returns
    -------
    finite : bool
        As in :func:`stack_step`.
    """
    if scratch.shape[0] == 0:
        scratch = np.empty((x.shape[0], scratch.shape[1]), dtype=scratch.dtype)
    parents = np.empty(0, dtype=np.int64)
    h_out = state_out[0]
    if not stack_step(relu, x, False, w_ih0_t, w_ih_rest_t, w_hh_t, bias, b_hn,
                      tanh_columns, h, c, parents, h_out,
                      state_out[state_out.shape[0] - 1], scratch):  # fmt: skip
        return False
    last = h_out[h_out.shape[0] - 1]
    for b in range(output.shape[0]):
        for j in range(output.shape[1]):
            output[b, j] = last[b, j]
    return True


# --------------------------------------------------------------- embeddings


@njit(**KERNEL_OPTIONS)
def embedding_gather(ids, weight, out):
    """``out[n] = weight[ids[n]]``.

    Parameters
    ----------
    ids : int64 ndarray of shape (N,)
        In ``[0, V)``.
    weight : ndarray of shape (V, E)
    out : ndarray of shape (N, E)
        Output.
    """
    # In place, not through views (see the note on views after _copy).
    for n in range(ids.shape[0]):
        row = ids[n]
        for j in range(weight.shape[1]):
            out[n, j] = weight[row, j]


@njit(**KERNEL_OPTIONS)
def embedding_scatter_add(ids, d_out, d_weight):
    """``d_weight[ids[n]] += d_out[n]`` for every ``n``, in order.

    Parameters
    ----------
    ids : int64 ndarray of shape (N,)
        In ``[0, V)``.
    d_out : ndarray of shape (N, E)
    d_weight : ndarray of shape (V, E)
        Accumulated into.
    """
    for n in range(ids.shape[0]):
        row = d_weight[ids[n]]
        d_row = d_out[n]
        for j in range(row.shape[0]):
            row[j] += d_row[j]
