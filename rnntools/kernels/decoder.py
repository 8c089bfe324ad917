"""``@njit`` kernels of decoding: the generating decoder's whole step in one
call, and the whole of greedy search and of beam search for a block of rows.

One step of the decoder of :mod:`rnntools.estimators._generator`
(:func:`decoder_step`): embedding lookup → recurrent stack
(:func:`.cpu.stack_step`) → optional Luong attention (:func:`attention_step`,
then ``tanh(W_c [context; output])``) → optional merge vector → output layer
→ log-softmax with forbidden tokens. Called from Python it costs one call per
step instead of a dozen NumPy operations; inside :func:`greedy_block` and
:func:`beam_block` it costs no Python at all, so a block of rows is decoded to
the end on one thread with no synchronisation between steps.

Every product is :func:`.row_invariant.row_invariant_matmul` and every other
operation runs row by row, so a row's log-probabilities are bit-identical
whatever the rows around it: greedy search, beam search and sampling give an
input the same output alone and in any batch, on any number of threads.

The decoder's arrays travel as one tuple, ``model`` (see
:meth:`rnntools.estimators._decoder.DecoderArrays.kernel_model`):

``(embedding, relu, w_ih0_t, w_ih_rest_t, w_hh_t, bias, b_hn, tanh_columns,
attention_c_t, memory, keys_t, memory_lengths, merge, head_weight_t,
head_bias, mask, projected)``

- ``embedding`` ``(V_in, E)``, or with ``projected`` (bool, last) the first
  layer's gate input of every token, ``embedding @ w_ih0_t + bias[0]``
  ``(V_in, G*H)``: a lookup then replaces the input product of every step
  (the same numbers: the products are row-invariant);
- ``relu`` … ``tanh_columns`` as in :func:`.cpu.stack_step` (``relu`` None
  but for the RNN, ``b_hn`` but for the GRU, ``tanh_columns`` but for the
  LSTM);
- ``attention_c_t`` ``(H_mem + H, H)``, None without attention; ``memory``
  ``(R, S, H_mem)``, ``keys_t`` ``(R, H, S_pad)`` and ``memory_lengths``
  ``(R,)`` of the ``R`` conditioning rows (see :func:`attention_step`: the
  query is the decoder's output, "general" attention's ``weight_a`` is
  folded into the keys once per source);
- ``merge`` ``(R, M)`` joined to the output layer's input (``M = 0``: none);
- ``head_weight_t`` ``(H + M, V_pad)``, ``head_bias`` ``(V_pad,)``: the
  output layer, its columns padded with zeros to a multiple of the register
  tile's width (the products' edge columns go one at a time);
- ``mask`` ``(V_pad,)``: 0, or ``-inf`` for the tokens never emitted (the
  distribution is renormalised over the others) and the padding columns.

Unused arrays are empty of the right dtype and rank, but for the cell's and
the attention's, which are None: Numba then compiles the kernels for the one
cell and attention mode in use (it prunes a branch on ``argument is None``),
not for all of them. A GRU language model's first ``generate`` (beam search),
empty cache, alternated runs: 12.5 and 13.2 s with every cell and the
attention in one kernel, 8.8 and 9.4 s this way (LSTM: 13.7-13.8 -> 9.1-9.4
s; the first greedy ``predict`` after it 2.6-2.8 -> 2.1-2.2 s).
"""

import numpy as np
from numba import njit

from ._jit import KERNEL_OPTIONS, helper, wide_vectors
from .activations import constants, expm1_parts, tanh
from .cpu import _copy, embedding_gather, stack_step
from .row_invariant import (
    no_bias,
    row_invariant_gathered_matmul,
    row_invariant_matmul,
)

#: Source positions of the attention keys are padded to a multiple of this
#: (16 float32 in an AVX-512 vector): the scores of a row are computed over
#: whole vectors of positions, with no scalar tail.
KEY_POSITIONS = 16

#: Lanes of the log-softmax's reductions (a divisor of the padded vocabulary).
LOGIT_LANES = 16

#: Positions of ``memory`` and ``keys_t`` in the ``model`` tuple (read by
#: index here and in :mod:`rnntools.estimators._decoder`).
MODEL_MEMORY, MODEL_KEYS_T = 9, 10

#: Status codes of :func:`greedy_block`.
OK, NON_FINITE_STATE, NON_FINITE_LOG_PROBS, NO_ALLOWED_TOKEN = 0, 1, 2, 3


@njit(**KERNEL_OPTIONS)
def scratch_size(rows, model):
    """Length of the ``buffer`` :func:`decoder_step` needs for ``rows`` rows."""
    embedding, bias = model[0], model[5]
    memory, keys_t = model[MODEL_MEMORY], model[MODEL_KEYS_T]
    merge, head_weight_t = model[12], model[13]
    hidden = head_weight_t.shape[0] - merge.shape[1]
    width = bias.shape[1]
    per_row = (
        embedding.shape[1]  # x
        + 3 * width
        + 2 * hidden  # the stack's scratch (with parents)
        + memory.shape[2]
        + hidden  # combined
        + 2 * hidden  # attentional (pre-activation and tanh)
        + hidden
        + merge.shape[1]  # head input
        + 4 * head_weight_t.shape[1]  # logits, log_softmax_rows' work
        + 3 * keys_t.shape[2]
        + memory.shape[2]  # attention_step's work
    )
    return rows * per_row


@helper
def _take(buffer, offset, rows, cols):
    """A ``(rows, cols)`` C-contiguous view of ``buffer`` from ``offset``."""
    return buffer[offset : offset + rows * cols].reshape(
        rows, cols
    ), offset + rows * cols


# Inlined (Numba IR) into decoder_step, its only caller: not compiled on its
# own and then again in decoder_step, beam_block and greedy_block.
@njit(**KERNEL_OPTIONS, inline="always")
def log_softmax_rows(logits, mask, out, work):
    """``out[n] = log_softmax(logits[n] + mask)[:V]`` in float64.

    Parameters
    ----------
    logits : ndarray of shape (N, V_pad)
    mask : ndarray of shape (V_pad,)
        0 for the allowed tokens, ``-inf`` for the forbidden ones (whose
        log-probability is then ``-inf``, the others renormalised) and for
        the padding columns ``V_pad - V``. Padding ``V`` to a multiple of the
        vector loops' width keeps them out of LLVM's scalar remainder.
    out : float64 ndarray of shape (N, V)
        Output.
    work : ndarray of shape (>= 3 N V_pad,)
        Scratch, the dtype of ``logits``.

    Returns
    -------
    finite : bool
        False when an allowed logit is NaN or ``+inf`` (no distribution).
        A row whose allowed logits are all ``-inf`` gets ``-inf`` everywhere.

    Notes
    -----
    ``z - max(z) - log(sum(exp(z - max(z))))``: every ``exp`` argument is at
    most 0, so nothing overflows. The exponentials are
    :func:`.activations.expm1_parts` in the logits' dtype (vectorised, where a
    call to ``exp`` per element cost as much as the recurrent step), summed
    in float64, each of :data:`LOGIT_LANES` lanes over ``v`` ascending, then
    the lanes in order: the same operations for every row. A NaN or ``+inf``
    logit makes the sum NaN, which is how it is caught.
    """
    wide_vectors()
    zero, _, _ = constants(logits)
    rows = logits.shape[0]
    vocab = out.shape[1]
    padded = mask.shape[0]
    size = rows * padded
    shifted = work[:size].reshape(rows, padded)
    pm1 = work[size : 2 * size]
    scale = work[2 * size : 3 * size].reshape(rows, padded)
    best = np.empty(rows, dtype=logits.dtype)
    # Reductions over LOGIT_LANES interleaved lanes, then across the lanes in
    # order: vectorised, where one running max and one running sum were a
    # serial chain (LLVM keeps the order of IEEE operations).
    lane_best = np.empty(LOGIT_LANES, dtype=logits.dtype)
    lane_total = np.empty(LOGIT_LANES)
    for n in range(rows):
        row = logits[n]
        for j in range(LOGIT_LANES):
            lane_best[j] = row[j] + mask[j]
        for first in range(LOGIT_LANES, padded, LOGIT_LANES):
            for j in range(LOGIT_LANES):
                z = row[first + j] + mask[first + j]
                lane_best[j] = z if z > lane_best[j] else lane_best[j]
        row_best = lane_best[0]
        for j in range(1, LOGIT_LANES):
            row_best = max(row_best, lane_best[j])
        best[n] = row_best
        shifted_row = shifted[n]
        if row_best == -np.inf:  # no allowed token: exp(-inf) below
            row_best = zero
        for v in range(padded):
            shifted_row[v] = row[v] + mask[v] - row_best
    # One call for the block: the call's fixed cost (~45 ns) was half the
    # time of a row's.
    expm1_parts(shifted.reshape(size), pm1, scale.reshape(size))
    pm1 = pm1.reshape(rows, padded)
    for n in range(rows):
        row = logits[n]
        out_row = out[n]
        if best[n] == -np.inf:
            for v in range(vocab):
                out_row[v] = -np.inf
            continue
        scale_row = scale[n]
        pm1_row = pm1[n]
        for j in range(LOGIT_LANES):
            lane_total[j] = 0.0
        for first in range(0, padded, LOGIT_LANES):
            for j in range(LOGIT_LANES):
                v = first + j
                lane_total[j] += np.float64(scale_row[v] + scale_row[v] * pm1_row[v])
        total = 0.0
        for j in range(LOGIT_LANES):
            total += lane_total[j]
        if not np.isfinite(total):
            return False
        shift = np.float64(best[n]) + np.log(total)
        for v in range(vocab):
            out_row[v] = np.float64(row[v] + mask[v]) - shift
    return True


# Inlined into _attended, its only caller (as log_softmax_rows). _attended
# itself is not: its ``attention_c_t is None`` branch is pruned only in a
# function of its own (inlined, the language model's decoder failed to type).
@njit(**KERNEL_OPTIONS, inline="always")
def attention_step(query, decoder_output, memory, keys_t, memory_lengths, rows,
                   combined, weights, work):  # fmt: skip
    """One decoding step of Luong attention, row by row (batch-invariant).

    For every row ``n`` with source ``r = rows[n]``: scores
    ``query[n] . keys[r, s]`` over the source's ``memory_lengths[r]``
    positions, their softmax (0 beyond the length), and
    ``combined[n] = [sum_s weights[n, s] memory[r, s]; decoder_output[n]]``,
    the input of the output combination ``tanh(W_c combined)``. Every sum runs
    in a fixed order within its row (over ``k`` ascending for a score, over
    ``s`` ascending for the normaliser and the context), vectorised across
    positions and features, never across rows.

    Parameters
    ----------
    query : ndarray of shape (N, K)
        The decoder's output.
    decoder_output : ndarray of shape (N, H)
    memory : ndarray of shape (R, S, H_mem)
        Encoder outputs of every source.
    keys_t : ndarray of shape (R, K, S_pad)
        The keys of every source position, transposed (the scores run along
        ``s``): ``memory @ weight_a.T`` ("general") or ``memory`` ("dot"),
        zero-padded to ``S_pad``, a multiple of :data:`KEY_POSITIONS`
        ``>= S``.
    memory_lengths : int64 ndarray of shape (R,)
        In ``[1, S]``.
    rows : int64 ndarray of shape (N,)
        Source of each row, in ``[0, R)``.
    combined : ndarray of shape (N, H_mem + H)
        Out.
    weights : ndarray of shape (N, S)
        Out: the attention weights.
    work : ndarray of shape (>= N (3 S_pad + H_mem),)
        Scratch.
    """
    zero, _, _ = constants(weights)
    memory_size = memory.shape[2]
    key_size = query.shape[1]
    padded = keys_t.shape[2]
    positions = memory.shape[1]
    rows_count = query.shape[0]
    size = rows_count * padded
    # The softmax's exponentials in one call for every row (per row, on 32
    # positions, they ran in LLVM's scalar remainder loop).
    shifted = work[:size].reshape(rows_count, padded)
    pm1 = work[size : 2 * size].reshape(rows_count, padded)
    scale = work[2 * size : 3 * size].reshape(rows_count, padded)
    offset = 3 * size
    contexts = work[offset : offset + rows_count * memory_size].reshape(
        rows_count, memory_size
    )
    # Scores and contexts: each row against its own source's keys and
    # memory, several rows per k loop (row_invariant_gathered_matmul).
    starts = np.empty(rows_count, dtype=np.int64)
    depths = np.empty(rows_count, dtype=np.int64)
    for n in range(rows_count):
        starts[n] = rows[n] * key_size * padded
        depths[n] = key_size
    scores = scale  # free until the exponentials
    row_invariant_gathered_matmul(query, keys_t, starts, depths, scores)
    for n in range(rows_count):
        length = memory_lengths[rows[n]]
        row_scores = scores[n]
        best = row_scores[0]
        for s in range(1, length):
            best = max(best, row_scores[s])
        shifted_row = shifted[n]
        for s in range(padded):  # padding at exp(-inf) = 0
            shifted_row[s] = row_scores[s] - best if s < length else -np.inf
    expm1_parts(shifted.reshape(size), pm1.reshape(size), scale.reshape(size))
    for n in range(rows_count):
        length = memory_lengths[rows[n]]
        row_weights = weights[n]
        norm = zero
        for s in range(length):
            row_weights[s] = scale[n, s] + scale[n, s] * pm1[n, s]
            norm += row_weights[s]
        for s in range(length):
            row_weights[s] = row_weights[s] / norm
        for s in range(length, positions):
            row_weights[s] = zero
        starts[n] = rows[n] * positions * memory_size
        depths[n] = length
    row_invariant_gathered_matmul(weights, memory, starts, depths, contexts)
    for n in range(rows_count):
        _copy(combined[n, :memory_size], contexts[n])
        _copy(combined[n, memory_size:], decoder_output[n])


@helper
def _attended(attention_c_t, output, memory, keys_t, memory_lengths, rows,
              combined, pre, attentional, weights, work):  # fmt: skip
    """The decoder's output after attention: ``output`` itself without
    attention (``attention_c_t`` None: the branch is pruned at compile time),
    else ``attentional = tanh(W_c [context; output])`` (see
    :func:`attention_step`, which writes ``weights``)."""
    if attention_c_t is None:
        return output
    attention_step(output, output, memory, keys_t, memory_lengths, rows,
                   combined, weights, work)  # fmt: skip
    row_invariant_matmul(combined, attention_c_t, pre, no_bias(pre))
    rows_count, hidden = attentional.shape
    tanh(pre.reshape(rows_count * hidden), attentional.reshape(rows_count * hidden))
    return attentional


@njit(**KERNEL_OPTIONS)
def decoder_step(tokens, rows, parents, model, h, c, h_out, c_out, log_probs,
                 attention_weights, buffer):  # fmt: skip
    """One step of the decoder for ``N`` rows: next state and log-probabilities.

    Parameters
    ----------
    tokens : int64 ndarray of shape (N,)
        The input token of each row, in ``[0, V_in)``.
    rows : int64 ndarray of shape (N,)
        The conditioning row (memory, merge vector) of each row, in ``[0, R)``.
    parents : int64 ndarray of shape (N,) or (0,)
        Row ``n`` continues the state ``h[:, parents[n]]`` (empty: its own,
        ``h[:, n]``); see :func:`.cpu.stack_step`.
    model : tuple
        The decoder's arrays (module docstring).
    h, c : ndarray of shape (L, U, H)
        The state (``c`` read by the LSTM only); read only. ``U = N``
        without ``parents``.
    h_out, c_out : ndarray of shape (L, N, H)
        Out: the next state.
    log_probs : float64 ndarray of shape (N, V)
        Out: ``log P(next token)`` of each row.
    attention_weights : ndarray of shape (N, S)
        Out (with attention): the weights over the source positions.
    buffer : ndarray of shape (>= scratch_size(N, model),)
        Scratch, compute dtype.

    Returns
    -------
    status : int
        :data:`OK`, :data:`NON_FINITE_STATE` (the state or an embedding row
        was not finite) or :data:`NON_FINITE_LOG_PROBS`.
    """
    (embedding, relu, w_ih0_t, w_ih_rest_t, w_hh_t, bias, b_hn, tanh_columns,
     attention_c_t, memory, keys_t, memory_lengths, merge, head_weight_t,
     head_bias, mask, projected) = model  # fmt: skip
    batch = tokens.shape[0]
    hidden = h_out.shape[2]
    width = bias.shape[1]
    memory_size = memory.shape[2]
    merge_size = merge.shape[1]
    # Offset 0 as a runtime int (batch * 0): a literal 0 compiled a second
    # _take (Literal[int](0)).
    x, offset = _take(buffer, batch * 0, batch, embedding.shape[1])
    scratch, offset = _take(buffer, offset, batch, 3 * width + 2 * hidden)
    combined, offset = _take(buffer, offset, batch, memory_size + hidden)
    pre, offset = _take(buffer, offset, batch, hidden)
    attentional, offset = _take(buffer, offset, batch, hidden)
    head_input, offset = _take(buffer, offset, batch, hidden + merge_size)
    logits, offset = _take(buffer, offset, batch, head_weight_t.shape[1])
    softmax_work = buffer[offset : offset + 3 * batch * mask.shape[0]]
    attention_work = buffer[offset:]  # (shared with softmax_work: used first)

    embedding_gather(tokens, embedding, x)
    if not stack_step(relu, x, projected, w_ih0_t, w_ih_rest_t, w_hh_t,
                      bias, b_hn, tanh_columns, h, c, parents, h_out, c_out,
                      scratch):  # fmt: skip
        return NON_FINITE_STATE
    output = _attended(
        attention_c_t, h_out[h_out.shape[0] - 1], memory, keys_t,
        memory_lengths, rows, combined, pre, attentional, attention_weights,
        attention_work,
    )  # fmt: skip
    for n in range(batch):
        for j in range(hidden):
            head_input[n, j] = output[n, j]
        conditioning = merge[rows[n]]
        for j in range(merge_size):
            head_input[n, hidden + j] = conditioning[j]
    row_invariant_matmul(head_input, head_weight_t, logits, head_bias)
    if not log_softmax_rows(logits, mask, log_probs, softmax_work):
        return NON_FINITE_LOG_PROBS
    return OK


@njit(**KERNEL_OPTIONS)
def search_scratch_size(rows, model, layers, hidden, cell_width):
    """Length of the ``buffer`` :func:`greedy_block` and :func:`beam_block`
    need for ``rows`` decoded rows (beams) of ``layers`` states of ``hidden``
    (and LSTM cells of ``cell_width``)."""
    states = 2 * layers * rows * (hidden + cell_width)
    positions = model[MODEL_MEMORY].shape[1]
    return states + rows * positions + scratch_size(rows, model)


@helper
def _search_buffers(buffer, rows, model, layers, hidden, cell_width):
    """``buffer`` cut as :func:`search_scratch_size` counts it: the flat
    states ``h``, ``h_out``, ``c``, ``c_out`` (each ``(layers, rows, width)``
    at most), the attention weights ``(rows, S)`` and the step's scratch."""
    h_size, c_size = layers * rows * hidden, layers * rows * cell_width
    h_flat = buffer[:h_size]
    h_out_flat = buffer[h_size : 2 * h_size]
    c_flat = buffer[2 * h_size : 2 * h_size + c_size]
    c_out_flat = buffer[2 * h_size + c_size : 2 * (h_size + c_size)]
    offset = 2 * (h_size + c_size)
    positions = model[MODEL_MEMORY].shape[1]
    weights = buffer[offset : offset + rows * positions].reshape(rows, positions)
    step_buffer = buffer[offset + rows * positions :]
    return h_flat, h_out_flat, c_flat, c_out_flat, weights, step_buffer


@helper
def _compact(flat, layers, count, width, keep, kept):
    """Keep the rows ``keep[:kept]`` (ascending) of the ``(layers, count,
    width)`` state at the start of ``flat``, as ``(layers, kept, width)`` in
    place (every row moves to a lower or the same position)."""
    for layer in range(layers):
        for i in range(kept):
            source = (layer * count + keep[i]) * width
            target = (layer * kept + i) * width
            for j in range(width):
                flat[target + j] = flat[source + j]


@njit(**KERNEL_OPTIONS)
def greedy_block(first_tokens, rows, h0, c0, model, vocab, eos, max_length,
                 min_length, emitted, lengths, scores, log_probs,
                 buffer):  # fmt: skip
    """Greedy search of ``N`` rows, every step in here.

    At each step every unfinished row emits its most probable token (ties to
    the lowest id; ``eos`` forbidden before ``min_length`` tokens); a row is
    finished once it emitted ``eos`` or ``max_length`` tokens, and finished
    rows leave the batch.

    Parameters
    ----------
    first_tokens : int64 ndarray of shape (N,)
    rows : int64 ndarray of shape (N,)
        Conditioning row of each row (see :func:`decoder_step`).
    h0, c0 : ndarray of shape (L, N, H) and (L, N, H or 0)
        The initial state (``c0`` empty but for LSTMs); not modified.
    model : tuple
        See the module docstring.
    vocab : int
        ``V``, the output vocabulary.
    eos, max_length, min_length : int
    emitted : int64 ndarray of shape (N, max_length)
        Out: the tokens emitted by each row (``eos`` included), the first
        ``lengths[n] + 1`` of them meaningful (``lengths[n]`` at
        ``max_length``).
    lengths : int64 ndarray of shape (N,)
        Out: tokens emitted before ``eos``.
    scores : float64 ndarray of shape (N,)
        Out: summed log-probabilities of the emitted tokens, ``eos`` included.
    log_probs : float64 ndarray of shape (>= N V,)
        Scratch.
    buffer : ndarray of shape (>= search_scratch_size(N, model, L, H, ...),)
        Scratch, kept by the caller between calls (fresh pages for every call
        cost as much as the steps of a small batch).

    Returns
    -------
    status : int
        :data:`OK`, or the first problem met (:data:`NON_FINITE_STATE`,
        :data:`NON_FINITE_LOG_PROBS`, :data:`NO_ALLOWED_TOKEN`).
    row : int
        The row it was met on (-1 when OK).
    step : int
        The step it was met at.
    """
    batch = first_tokens.shape[0]
    layers, _, hidden = h0.shape
    cell_width = c0.shape[2]
    active = np.arange(batch)
    count = batch
    tokens = first_tokens.copy()
    conditioning = rows.copy()
    keep = np.empty(batch, dtype=np.int64)
    # The states live flat at the start of their buffers, (L, count, H).
    h_flat, h_out_flat, c_flat, c_out_flat, weights, step_buffer = _search_buffers(
        buffer, batch, model, layers, hidden, cell_width
    )
    _copy(h_flat[: h0.size], h0.reshape(h0.size))
    _copy(c_flat[: c0.size], c0.reshape(c0.size))
    for n in range(batch):
        lengths[n] = 0
        scores[n] = 0.0
    for t in range(max_length):
        h_shape = (layers, count, hidden)
        c_shape = (layers, count, cell_width)
        step_log_probs = log_probs[: count * vocab].reshape(count, vocab)
        status = decoder_step(
            tokens[:count], conditioning[:count], keep[:0], model,
            h_flat[: layers * count * hidden].reshape(h_shape),
            c_flat[: layers * count * cell_width].reshape(c_shape),
            h_out_flat[: layers * count * hidden].reshape(h_shape),
            c_out_flat[: layers * count * cell_width].reshape(c_shape),
            step_log_probs, weights[:count], step_buffer,
        )  # fmt: skip
        if status != OK:
            return status, active[0], t
        kept = 0
        for i in range(count):
            row_log_probs = step_log_probs[i]
            chosen = -1
            best = -np.inf
            for v in range(vocab):
                if v == eos and t < min_length:
                    continue
                if row_log_probs[v] > best:
                    best = row_log_probs[v]
                    chosen = v
            row = active[i]
            if chosen < 0:
                return NO_ALLOWED_TOKEN, row, t
            scores[row] += best
            emitted[row, t] = chosen
            if chosen != eos:
                lengths[row] += 1
                tokens[kept] = chosen
                keep[kept] = i
                kept += 1
        h_flat, h_out_flat = h_out_flat, h_flat
        c_flat, c_out_flat = c_out_flat, c_flat
        if kept == 0:
            break
        if kept < count:
            for i in range(kept):
                active[i] = active[keep[i]]
                conditioning[i] = conditioning[keep[i]]
            # kept + 0: typed int64 at once (kept alone was first typed as
            # the literal 0 of its initial value, compiling a second _compact).
            _compact(h_flat, layers, count, hidden, keep, kept + 0)
            _compact(c_flat, layers, count, cell_width, keep, kept + 0)
            count = kept
    return OK, -1, max_length


#: A status of :func:`beam_block`: every continuation of a row has
#: log-probability -inf and it has no finished hypothesis.
NO_CONTINUATION = 4


@njit(**KERNEL_OPTIONS)
def _wu_penalty(length, alpha):
    """GNMT's length penalty ``((5 + length) / 6) ** alpha``."""
    return ((5.0 + length) / 6.0) ** alpha


@helper
def _pool_insert(scores, ends, beams, count, n_best, score, end, beam):
    """Insert a finished hypothesis into a row's pool, kept sorted by
    decreasing score, ties in the order found, cut to ``n_best``: the first
    ``n_best`` of a stable sort of every hypothesis found. Returns the count."""
    position = count
    while position > 0 and scores[position - 1] < score:
        position -= 1
    if position >= n_best:
        return count
    last = min(count, n_best - 1)
    for i in range(last, position, -1):
        scores[i] = scores[i - 1]
        ends[i] = ends[i - 1]
        beams[i] = beams[i - 1]
    scores[position] = score
    ends[position] = end
    beams[position] = beam
    return min(count + 1, n_best)


@njit(**KERNEL_OPTIONS)
def beam_block(first_tokens, rows, h0, c0, model, vocab, eos, max_length,
               min_length, beam_width, n_best, alpha, out_tokens, out_lengths,
               out_scores, out_counts, log_probs, buffer):  # fmt: skip
    """Beam search of ``N`` rows, every step in here, as
    :func:`rnntools.decoding.beam_search` does it (same ranking, ties, pools,
    early stop; see there).

    Parameters
    ----------
    first_tokens, rows : int64 ndarray of shape (N,)
        First input and conditioning row of each row.
    h0, c0 : ndarray of shape (L, N, H) and (L, N, H or 0)
        The initial state of each row (``c0`` empty but for LSTMs).
    model : tuple
        See the module docstring.
    vocab, eos, max_length, min_length, beam_width, n_best : int
    alpha : float
        The length penalty's exponent.
    out_tokens : int64 ndarray of shape (N, n_best, max_length)
        Out: the best hypotheses of each row, best first (``eos`` excluded).
    out_lengths : int64 ndarray of shape (N, n_best)
        Out: their lengths.
    out_scores : float64 ndarray of shape (N, n_best)
        Out: their scores (summed log-probability / length penalty).
    out_counts : int64 ndarray of shape (N,)
        Out: hypotheses found per row (``n_best`` unless fewer are possible).
    log_probs : float64 ndarray of shape (>= N beam_width V,)
        Scratch.
    buffer : ndarray of shape (>= search_scratch_size(N beam_width, ...),)
        Scratch.

    Returns
    -------
    status, row, step : int
        As :func:`greedy_block`'s, with :data:`NO_CONTINUATION`.
    """
    batch = first_tokens.shape[0]
    beams = beam_width
    layers, _, hidden = h0.shape
    cell_width = c0.shape[2]
    width = batch * beams
    # Back-pointers per original row: the token and parent beam chosen at
    # each step.
    chosen_tokens = np.empty((batch, max_length, beams), dtype=np.int64)
    chosen_parents = np.empty((batch, max_length, beams), dtype=np.int64)
    pool_scores = np.empty((batch, n_best))
    pool_ends = np.empty((batch, n_best), dtype=np.int64)  # last step, -1: empty
    pool_beams = np.empty((batch, n_best), dtype=np.int64)
    pool_counts = np.zeros(batch, dtype=np.int64)
    nth_best = np.full(batch, -np.inf)
    active = np.arange(batch)  # original row of each row still searching
    count = batch
    beam_sums = np.full((batch, beams), -np.inf)
    for n in range(batch):
        beam_sums[n, 0] = 0.0
    # The first step runs one beam per row: the others are copies of it,
    # scored -inf (what beam search feeds them does not matter).
    tokens = np.empty(width, dtype=np.int64)
    conditioning = np.empty(width, dtype=np.int64)
    for n in range(batch):
        tokens[n] = first_tokens[n]
        conditioning[n] = rows[n]
    h_flat, h_out_flat, c_flat, c_out_flat, weights, step_buffer = _search_buffers(
        buffer, width, model, layers, hidden, cell_width
    )
    _copy(h_flat[: h0.size], h0.reshape(h0.size))
    _copy(c_flat[: c0.size], c0.reshape(c0.size))
    candidates = np.empty(beams * vocab)
    eos_sums = np.empty(beams)
    best = np.empty(beams, dtype=np.int64)
    new_sums = np.empty((batch, beams))
    new_tokens = np.empty((batch, beams), dtype=np.int64)
    new_parents = np.empty((batch, beams), dtype=np.int64)
    searching = np.empty(batch, dtype=np.bool_)
    keep = np.empty(batch, dtype=np.int64)
    # The beams' states: ``states`` distinct ones at the start of h_flat and
    # c_flat, beam b continuing state parents[b] (beams that share a parent
    # share its state, and its recurrent product is computed once: see
    # cpu.stack_step). The first step: every row its own state.
    parents = np.empty(width, dtype=np.int64)
    state_sources = np.empty(width, dtype=np.int64)
    states = batch
    shared = 0  # beams given their parent's state (0: each its own)
    for t in range(max_length):
        per_row = 1 if t == 0 else beams  # beams fed per row
        live = count * per_row
        out_shape = (layers, live, hidden)
        c_out_shape = (layers, live, cell_width)
        step_log_probs = log_probs[: live * vocab].reshape(live, vocab)
        status = decoder_step(
            tokens[:live], conditioning[:live], parents[:shared],
            model,
            h_flat[: layers * states * hidden].reshape(layers, states, hidden),
            c_flat[: layers * states * cell_width].reshape(
                layers, states, cell_width
            ),
            h_out_flat[: layers * live * hidden].reshape(out_shape),
            c_out_flat[: layers * live * cell_width].reshape(c_out_shape),
            step_log_probs, weights[:live], step_buffer,
        )  # fmt: skip
        if status != OK:
            return status, active[0], t
        eos_penalty = _wu_penalty(t + 1, alpha)
        bound = max(_wu_penalty(t + 2, alpha), _wu_penalty(max_length, alpha))
        any_searching = False
        for i in range(count):
            row = active[i]
            sums = beam_sums[row]
            for b in range(beams):
                row_log_probs = step_log_probs[i * per_row + b % per_row]
                for v in range(vocab):
                    candidates[b * vocab + v] = sums[b] + row_log_probs[v]
                eos_sums[b] = (
                    candidates[b * vocab + eos] if t >= min_length else -np.inf
                )
                candidates[b * vocab + eos] = -np.inf
            # The beam_width largest, by decreasing value, ties to the lowest
            # index (a stable sort's order): one pass, inserting into the
            # sorted few, after those of equal value.
            kept_sums = new_sums[row]
            filled = 0
            for index in range(beams * vocab):
                value = candidates[index]
                if filled == beams and not value > kept_sums[beams - 1]:
                    continue
                position = min(filled, beams - 1)
                while position > 0 and kept_sums[position - 1] < value:
                    kept_sums[position] = kept_sums[position - 1]
                    best[position] = best[position - 1]
                    position -= 1
                kept_sums[position] = value
                best[position] = index
                filled = min(filled + 1, beams)
            for k in range(beams):
                new_parents[row, k] = best[k] // vocab
                new_tokens[row, k] = best[k] % vocab
            last_sum = new_sums[row, beams - 1]
            last_index = best[beams - 1]
            for b in range(beams):
                value = eos_sums[b]
                if value == -np.inf:
                    continue
                if value > last_sum or (
                    value == last_sum and b * vocab + eos < last_index
                ):
                    pool_counts[row] = _pool_insert(
                        pool_scores[row], pool_ends[row], pool_beams[row],
                        pool_counts[row], n_best, value / eos_penalty, t - 1, b,
                    )  # fmt: skip
                    if pool_counts[row] >= n_best:
                        nth_best[row] = pool_scores[row, n_best - 1]
            for k in range(beams):
                chosen_tokens[row, t, k] = new_tokens[row, k]
                chosen_parents[row, t, k] = new_parents[row, k]
                beam_sums[row, k] = new_sums[row, k]
            dead = beam_sums[row, 0] == -np.inf
            if dead and pool_counts[row] == 0:
                return NO_CONTINUATION, row, t
            if t == max_length - 1:
                cut_penalty = _wu_penalty(max_length, alpha)
                for k in range(beams):
                    if beam_sums[row, k] > -np.inf:
                        pool_counts[row] = _pool_insert(
                            pool_scores[row], pool_ends[row], pool_beams[row],
                            pool_counts[row], n_best,
                            beam_sums[row, k] / cut_penalty, t, k,
                        )  # fmt: skip
                searching[i] = False
            else:
                searching[i] = not dead and beam_sums[row, 0] / bound > nth_best[row]
            any_searching = any_searching or searching[i]
        if not any_searching:
            break
        # The next step's beams: each row still searching, its beams taking
        # their parents' new state (from the step's output buffers).
        kept = 0
        for i in range(count):
            if searching[i]:
                keep[kept] = i
                kept += 1
        states = 0
        for j in range(kept):
            i = keep[j]
            row = active[i]
            row_states = states
            for k in range(beams):
                target = j * beams + k
                source = i * per_row + new_parents[row, k] % per_row
                tokens[target] = new_tokens[row, k]
                conditioning[target] = rows[row]
                state = -1
                for earlier in range(row_states, states):
                    if state_sources[earlier] == source:
                        state = earlier
                if state < 0:
                    state = states
                    state_sources[states] = source
                    states += 1
                parents[target] = state
            active[j] = row
        for state in range(states):
            source = state_sources[state]
            for layer in range(layers):
                frm = (layer * live + source) * hidden
                to = (layer * states + state) * hidden
                _copy(h_flat[to : to + hidden], h_out_flat[frm : frm + hidden])
                frm = (layer * live + source) * cell_width
                to = (layer * states + state) * cell_width
                _copy(c_flat[to : to + cell_width], c_out_flat[frm : frm + cell_width])
        # All parents distinct: state b is beam b's own (no copies per beam).
        shared = 0 if states == kept * beams else kept * beams
        count = kept
    for n in range(batch):
        out_counts[n] = pool_counts[n]
        for j in range(pool_counts[n]):
            end = pool_ends[n, j]
            beam = pool_beams[n, j]
            out_scores[n, j] = pool_scores[n, j]
            out_lengths[n, j] = end + 1
            for s in range(end, -1, -1):
                out_tokens[n, j, s] = chosen_tokens[n, s, beam]
                beam = chosen_parents[n, s, beam]
    return OK, -1, max_length
