"""``@njit`` kernels of decoding: the generating decoder's whole step in one
call, and the whole of greedy search for a block of rows.

One step of the decoder of :mod:`rnntools.estimators._generator`: embedding
lookup → recurrent stack (:func:`.cpu.stack_step`) → optional Luong attention
(:func:`.cpu.attention_step`, then ``tanh(W_c [context; output])``) → optional
merge vector → output layer → log-softmax with forbidden tokens. Called from
Python it costs one call per step instead of a dozen NumPy operations; inside
:func:`greedy_block` it costs no Python at all, so a block of rows is decoded
to the end on one thread with no synchronisation between steps.

Every product is :func:`.row_invariant.row_invariant_matmul` and every other
operation runs row by row, so a row's log-probabilities are bit-identical
whatever the rows around it: greedy search, beam search and sampling give an
input the same output alone and in any batch, on any number of threads.

The decoder's arrays travel as one tuple, ``model`` (see
:func:`rnntools.estimators._generator._DecoderArrays.kernel_model`):

``(embedding, cell, relu, w_ih0_t, w_ih_rest_t, w_hh_t, bias, b_hn,
tanh_columns, attention, weight_a, attention_c_t, memory, memory_t,
memory_lengths, merge, head_weight_t, head_bias, mask)``

- ``embedding`` ``(V_in, E)``; ``cell`` … ``tanh_columns`` as in
  :func:`.cpu.stack_step`;
- ``attention``: :data:`NO_ATTENTION`, :data:`DOT_ATTENTION` or
  :data:`GENERAL_ATTENTION`; ``weight_a`` ``(H, H_mem)`` (general: the query
  is ``output @ weight_a``); ``attention_c_t`` ``(H_mem + H, H)``;
  ``memory`` ``(R, S, H_mem)``, ``memory_t`` ``(R, H_mem, S)`` and
  ``memory_lengths`` ``(R,)`` of the ``R`` conditioning rows;
- ``merge`` ``(R, M)`` joined to the output layer's input (``M = 0``: none);
- ``head_weight_t`` ``(H + M, V_pad)``, ``head_bias`` ``(V_pad,)``: the
  output layer, its columns padded with zeros to a multiple of the register
  tile's width (the products' edge columns go one at a time);
- ``mask`` ``(V,)``: 0, or ``-inf`` for the tokens never emitted (the
  distribution is renormalised over the others).

Unused arrays are empty of the right dtype and rank.
"""

import numpy as np
from numba import njit

from ._jit import KERNEL_OPTIONS
from .activations import expm1_parts, tanh
from .cpu import attention_step, embedding_gather, stack_step
from .row_invariant import row_invariant_matmul

#: ``attention`` codes of the ``model`` tuple.
NO_ATTENTION, DOT_ATTENTION, GENERAL_ATTENTION = 0, 1, 2

#: Status codes of :func:`greedy_block`.
OK, NON_FINITE_STATE, NON_FINITE_LOG_PROBS, NO_ALLOWED_TOKEN = 0, 1, 2, 3


@njit(**KERNEL_OPTIONS)
def scratch_size(rows, model):
    """Length of the ``buffer`` :func:`decoder_step` needs for ``rows`` rows."""
    embedding, w_hh_t = model[0], model[5]
    memory, merge, head_weight_t = model[12], model[15], model[16]
    hidden = w_hh_t.shape[1]
    width = w_hh_t.shape[2]
    memory_size = memory.shape[2]
    per_row = (
        embedding.shape[1]  # x
        + 3 * width
        + hidden  # the stack's scratch
        + memory_size  # query
        + memory_size
        + hidden  # combined
        + 2 * hidden  # attentional (pre-activation and tanh)
        + hidden
        + merge.shape[1]  # head input
        + head_weight_t.shape[1]  # logits
    )
    return rows * per_row + 3 * model[18].shape[0]  # + log_softmax_rows' work


@njit(**KERNEL_OPTIONS)
def _take(buffer, offset, rows, cols):
    """A ``(rows, cols)`` C-contiguous view of ``buffer`` from ``offset``."""
    return buffer[offset : offset + rows * cols].reshape(
        rows, cols
    ), offset + rows * cols


@njit(**KERNEL_OPTIONS)
def log_softmax_rows(logits, mask, out, work):
    """``out[n] = log_softmax(logits[n] + mask)`` in float64.

    Parameters
    ----------
    logits : ndarray of shape (N, >= V)
        Only the first ``V`` columns are read.
    mask : ndarray of shape (V,)
        0 for the allowed tokens, ``-inf`` for the forbidden ones (whose
        log-probability is then ``-inf``, the others renormalised).
    out : float64 ndarray of shape (N, V)
        Output.
    work : ndarray of shape (>= 3 V,)
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
    in float64 over ``v`` ascending. A NaN or ``+inf`` logit makes the sum
    NaN, which is how it is caught.
    """
    vocab = out.shape[1]
    shifted = work[:vocab]
    pm1 = work[vocab : 2 * vocab]
    scale = work[2 * vocab : 3 * vocab]
    for n in range(logits.shape[0]):
        row = logits[n, :vocab]
        out_row = out[n]
        best = row[0] + mask[0]
        for v in range(1, vocab):
            z = row[v] + mask[v]
            if z > best:
                best = z
        if best == -np.inf:
            for v in range(vocab):
                out_row[v] = -np.inf
            continue
        for v in range(vocab):
            shifted[v] = row[v] + mask[v] - best
        expm1_parts(shifted, pm1, scale)
        total = 0.0
        for v in range(vocab):
            total += np.float64(scale[v] + scale[v] * pm1[v])
        if not np.isfinite(total):
            return False
        shift = np.float64(best) + np.log(total)
        for v in range(vocab):
            out_row[v] = np.float64(row[v] + mask[v]) - shift
    return True


@njit(**KERNEL_OPTIONS)
def decoder_step(tokens, rows, model, h, c, h_out, c_out, log_probs,
                 attention_weights, buffer, work):  # fmt: skip
    """One step of the decoder for ``N`` rows: next state and log-probabilities.

    Parameters
    ----------
    tokens : int64 ndarray of shape (N,)
        The input token of each row, in ``[0, V_in)``.
    rows : int64 ndarray of shape (N,)
        The conditioning row (memory, merge vector) of each row, in ``[0, R)``.
    model : tuple
        The decoder's arrays (module docstring).
    h, c : ndarray of shape (L, N, H)
        The state (``c`` read by the LSTM only); read only.
    h_out, c_out : ndarray of shape (L, N, H)
        Out: the next state.
    log_probs : float64 ndarray of shape (N, V)
        Out: ``log P(next token)`` of each row.
    attention_weights : ndarray of shape (N, S)
        Out (with attention): the weights over the source positions.
    buffer : ndarray of shape (>= scratch_size(N, model),)
        Scratch, compute dtype.
    work : ndarray of shape (>= activations.work_size(G*H),)
        Scratch.

    Returns
    -------
    status : int
        :data:`OK`, :data:`NON_FINITE_STATE` (the state or an embedding row
        was not finite) or :data:`NON_FINITE_LOG_PROBS`.
    """
    (embedding, cell, relu, w_ih0_t, w_ih_rest_t, w_hh_t, bias, b_hn,
     tanh_columns, attention, weight_a, attention_c_t, memory, memory_t,
     memory_lengths, merge, head_weight_t, head_bias, mask) = model  # fmt: skip
    batch = tokens.shape[0]
    hidden = w_hh_t.shape[1]
    width = w_hh_t.shape[2]
    memory_size = memory.shape[2]
    merge_size = merge.shape[1]
    x, offset = _take(buffer, 0, batch, embedding.shape[1])
    scratch, offset = _take(buffer, offset, batch, 3 * width + hidden)
    query, offset = _take(buffer, offset, batch, memory_size)
    combined, offset = _take(buffer, offset, batch, memory_size + hidden)
    pre, offset = _take(buffer, offset, batch, hidden)
    attentional, offset = _take(buffer, offset, batch, hidden)
    head_input, offset = _take(buffer, offset, batch, hidden + merge_size)
    logits, offset = _take(buffer, offset, batch, head_weight_t.shape[1])
    softmax_work = buffer[offset : offset + 3 * log_probs.shape[1]]

    embedding_gather(tokens, embedding, x)
    if not stack_step(cell, relu, x, w_ih0_t, w_ih_rest_t, w_hh_t, bias, b_hn,
                      tanh_columns, h, c, h_out, c_out, scratch, work):  # fmt: skip
        return NON_FINITE_STATE
    output = h_out[h_out.shape[0] - 1]
    if attention != NO_ATTENTION:
        if attention == GENERAL_ATTENTION:
            row_invariant_matmul(output, weight_a, query)
        else:
            for n in range(batch):
                for k in range(memory_size):
                    query[n, k] = output[n, k]
        attention_step(query, output, memory, memory_t, memory_lengths, rows,
                       combined, attention_weights)  # fmt: skip
        row_invariant_matmul(combined, attention_c_t, pre)
        tanh(pre.reshape(batch * hidden), attentional.reshape(batch * hidden), work)
        output = attentional
    for n in range(batch):
        for j in range(hidden):
            head_input[n, j] = output[n, j]
        conditioning = merge[rows[n]]
        for j in range(merge_size):
            head_input[n, hidden + j] = conditioning[j]
    row_invariant_matmul(head_input, head_weight_t, logits)
    for n in range(batch):
        for v in range(logits.shape[1]):
            logits[n, v] += head_bias[v]
    if not log_softmax_rows(logits, mask, log_probs, softmax_work):
        return NON_FINITE_LOG_PROBS
    return OK


@njit(**KERNEL_OPTIONS)
def _take_rows(state, keep, count):
    """A new ``(L, count, H)`` array of the rows ``keep[:count]`` of ``state``."""
    taken = np.empty((state.shape[0], count, state.shape[2]), dtype=state.dtype)
    for layer in range(state.shape[0]):
        for i in range(count):
            source = state[layer, keep[i]]
            target = taken[layer, i]
            for j in range(state.shape[2]):
                target[j] = source[j]
    return taken


@njit(**KERNEL_OPTIONS)
def greedy_block(first_tokens, rows, h, c, model, eos, max_length, min_length,
                 emitted, lengths, scores, work):  # fmt: skip
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
    h, c : ndarray of shape (L, N, H)
        The initial state (not modified).
    model : tuple
        See the module docstring.
    eos, max_length, min_length : int
    emitted : int64 ndarray of shape (N, max_length)
        Out: the tokens emitted by each row (``eos`` included), the first
        ``lengths[n] + 1`` of them meaningful (``lengths[n]`` at
        ``max_length``).
    lengths : int64 ndarray of shape (N,)
        Out: tokens emitted before ``eos``.
    scores : float64 ndarray of shape (N,)
        Out: summed log-probabilities of the emitted tokens, ``eos`` included.
    work : ndarray of shape (>= activations.work_size(G*H),)

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
    vocab = model[18].shape[0]
    active = np.arange(batch)
    count = batch
    tokens = first_tokens.copy()
    conditioning = rows.copy()
    h = h.copy()
    c = c.copy()
    h_out = np.empty_like(h)
    c_out = np.empty_like(c)
    log_probs = np.empty((batch, vocab))
    weights = np.empty((batch, model[12].shape[1]), dtype=h.dtype)
    buffer = np.empty(scratch_size(batch, model), dtype=h.dtype)
    keep = np.empty(batch, dtype=np.int64)
    for n in range(batch):
        lengths[n] = 0
        scores[n] = 0.0
    for t in range(max_length):
        status = decoder_step(
            tokens[:count], conditioning[:count], model, h, c, h_out, c_out,
            log_probs[:count], weights[:count], buffer, work,
        )  # fmt: skip
        if status != OK:
            return status, active[0], t
        kept = 0
        for i in range(count):
            row_log_probs = log_probs[i]
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
        h, h_out = h_out, h
        c, c_out = c_out, c
        if kept == 0:
            break
        if kept < count:
            for i in range(kept):
                active[i] = active[keep[i]]
                conditioning[i] = conditioning[keep[i]]
            h = _take_rows(h, keep, kept)
            c = _take_rows(c, keep, kept)
            h_out = np.empty_like(h)
            c_out = np.empty_like(c)
            count = kept
    return OK, -1, max_length
