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
timesteps (:func:`input_projection`); each step is one GEMM for the recurrent
product plus one fused pointwise pass per sequence; in backward, the weight
gradients are one GEMM over all timesteps after the time loop
(:func:`layer_param_grads`).

The kernels are serial and release the GIL (``nogil=True``): sequences never
interact inside a layer, so :mod:`rnntools.functional` runs independent blocks
of the batch on separate threads, with no synchronisation inside the time loop.

Compilation options (caching, ``fastmath``, ``error_model``) are explained in
:mod:`rnntools.kernels._jit`.
"""

import numpy as np
from numba import njit

from ._jit import KERNEL_OPTIONS
from .activations import constants, gate_activations, sigmoid, tanh, work_size


@njit(**KERNEL_OPTIONS)
def _step_time(s, b, lengths, reverse):
    return lengths[b] - 1 - s if reverse else s


@njit(**KERNEL_OPTIONS)
def input_projection(inp, w_ih, bias, gates):
    """``gates[t, b] = w_ih @ inp[t, b] + bias`` for all timesteps in one GEMM.

    Parameters
    ----------
    inp : ndarray of shape (T, B, I)
    w_ih : ndarray of shape (G*H, I)
    bias : ndarray of shape (G*H,)
    gates : ndarray of shape (T, B, G*H)
        Output.
    """
    steps, batch, features = inp.shape
    rows = steps * batch
    width = gates.shape[2]
    gates_2d = gates.reshape(rows, width)
    np.dot(inp.reshape(rows, features), np.ascontiguousarray(w_ih.T), gates_2d)
    for r in range(rows):
        for j in range(width):
            gates_2d[r, j] += bias[j]


# --------------------------------------------------------------------- LSTM


@njit(**KERNEL_OPTIONS)
def _lstm_forward_step(
    active, s, lengths, reverse, w_hh_t, h, c, pre, activated, cell_tanh,
    tanh_columns, out, out_col, gates, h_prev, c_prev, tanh_c, work,
):  # fmt: skip
    hidden = h.shape[1]
    width = 4 * hidden
    pre = pre[:active]
    act = activated[:active]
    np.dot(h[:active], w_hh_t, pre)
    for b in range(active):
        projected = gates[_step_time(s, b, lengths, reverse), b]
        for j in range(width):
            pre[b, j] += projected[j]
    gate_activations(pre, act, tanh_columns, work)
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        gates[t, b] = act[b]
        hp = h_prev[t, b]
        cp = c_prev[t, b]
        for j in range(hidden):
            hp[j] = h[b, j]
            cp[j] = c[b, j]
            c[b, j] = act[b, hidden + j] * cp[j] + act[b, j] * act[b, 2 * hidden + j]
    cell_tanh = cell_tanh[:active]
    tanh(c[:active].reshape(active * hidden), cell_tanh.reshape(active * hidden), work)
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        tanh_c[t, b] = cell_tanh[b]
        for j in range(hidden):
            h[b, j] = act[b, 3 * hidden + j] * cell_tanh[b, j]
            out[t, b, out_col + j] = h[b, j]


@njit(**KERNEL_OPTIONS)
def lstm_forward_layer(
    w_hh, lengths, batch_sizes, reverse, h, c, out, out_col,
    gates, h_prev, c_prev, tanh_c,
):  # fmt: skip
    """LSTM time loop over one layer and direction.

    Parameters
    ----------
    w_hh : ndarray of shape (4H, H)
    lengths : int64 ndarray of shape (B,)
        Sorted in decreasing order.
    batch_sizes : int64 ndarray of shape (T,)
        Number of sequences longer than each step.
    reverse : bool
        Run from each sequence's last step to its first.
    h, c : ndarray of shape (B, H)
        In: initial state. Out: final state (each sequence's own last step).
    out : ndarray of shape (T, B, D*H)
        Zero-initialised layer output; columns ``out_col:out_col+H`` are written.
    out_col : int
    gates : ndarray of shape (T, B, 4H)
        In: the input projection (:func:`input_projection` with
        ``bias_ih + bias_hh``). Out: gate activations ``i, f, g, o``.
    h_prev, c_prev : ndarray of shape (T, B, H)
        Out: the state each step started from (saved for backward).
    tanh_c : ndarray of shape (T, B, H)
        Out: ``tanh(c_t)`` (saved for backward).
    """
    steps, batch, width = gates.shape
    hidden = width // 4
    pre = np.empty((batch, width), dtype=gates.dtype)
    activated = np.empty((batch, width), dtype=gates.dtype)
    cell_tanh = np.empty((batch, hidden), dtype=gates.dtype)
    work = np.empty(work_size(width), dtype=gates.dtype)
    tanh_columns = np.ones(width, dtype=gates.dtype)
    tanh_columns[2 * hidden : 3 * hidden] = 2  # the g gate
    w_hh_t = np.ascontiguousarray(w_hh.T)  # measured 2x faster small GEMMs
    for s in range(steps):
        active = batch_sizes[s]
        if active == 0:
            break
        _lstm_forward_step(
            active, s, lengths, reverse, w_hh_t, h, c, pre, activated, cell_tanh,
            tanh_columns, out, out_col, gates, h_prev, c_prev, tanh_c, work,
        )  # fmt: skip


@njit(**KERNEL_OPTIONS)
def _lstm_backward_step(
    active, s, lengths, reverse, w_hh, d_out, out_col, gates, c_prev, tanh_c,
    d_h, d_c, d_gates, step_grads,
):  # fmt: skip
    _, one, _ = constants(gates)
    hidden = d_h.shape[1]
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        act = gates[t, b]
        tc = tanh_c[t, b]
        cp = c_prev[t, b]
        g = step_grads[b]
        for j in range(hidden):
            i_gate = act[j]
            f_gate = act[hidden + j]
            g_gate = act[2 * hidden + j]
            o_gate = act[3 * hidden + j]
            dh = d_h[b, j] + d_out[t, b, out_col + j]
            dc = d_c[b, j] + dh * o_gate * (one - tc[j] * tc[j])
            g[j] = dc * g_gate * i_gate * (one - i_gate)
            g[hidden + j] = dc * cp[j] * f_gate * (one - f_gate)
            g[2 * hidden + j] = dc * i_gate * (one - g_gate * g_gate)
            g[3 * hidden + j] = dh * tc[j] * o_gate * (one - o_gate)
            d_c[b, j] = dc * f_gate
        d_gates[t, b] = g
    np.dot(step_grads[:active], w_hh, d_h[:active])


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
    w_hh : ndarray of shape (4H, H)
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


@njit(**KERNEL_OPTIONS)
def _gru_forward_step(
    active, s, lengths, reverse, w_hh_t, b_hn, h, pre, activated, candidate,
    new_gate, out, out_col, gates, h_prev, hn, work,
):  # fmt: skip
    hidden = h.shape[1]
    width = 3 * hidden
    pre = pre[:active]
    act = activated[:active]
    candidate = candidate[:active]
    new_gate = new_gate[:active]
    np.dot(h[:active], w_hh_t, pre)
    for b in range(active):
        projected = gates[_step_time(s, b, lengths, reverse), b]
        for j in range(2 * hidden):
            pre[b, j] += projected[j]
    # One sigmoid pass over whole rows; the n columns of ``act`` are unused.
    sigmoid(pre.reshape(active * width), act.reshape(active * width), work)
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        hn_t = hn[t, b]
        projected = gates[t, b]
        for j in range(hidden):
            hn_t[j] = pre[b, 2 * hidden + j] + b_hn[j]
            candidate[b, j] = projected[2 * hidden + j] + act[b, j] * hn_t[j]
    tanh(candidate.reshape(active * hidden), new_gate.reshape(active * hidden), work)
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        row = gates[t, b]
        hp = h_prev[t, b]
        for j in range(hidden):
            n_gate = new_gate[b, j]
            row[j] = act[b, j]
            row[hidden + j] = act[b, hidden + j]
            row[2 * hidden + j] = n_gate
            hp[j] = h[b, j]
            h[b, j] = n_gate + act[b, hidden + j] * (hp[j] - n_gate)
            out[t, b, out_col + j] = h[b, j]


@njit(**KERNEL_OPTIONS)
def gru_forward_layer(
    w_hh, b_hn, lengths, batch_sizes, reverse, h, out, out_col,
    gates, h_prev, hn,
):  # fmt: skip
    """GRU (PyTorch's reset-after form) time loop over one layer and direction.

    ``r = σ(x W_ir + b_ir + h W_hr + b_hr)``, ``z`` alike,
    ``n = tanh(x W_in + b_in + r * (h W_hn + b_hn))``, ``h' = (1 - z) n + z h``.

    Parameters
    ----------
    w_hh, lengths, batch_sizes, reverse, out, out_col
        As in :func:`lstm_forward_layer`, with ``3H`` gate rows.
    b_hn : ndarray of shape (H,)
        The ``n`` gate's recurrent bias (inside the reset product).
    h : ndarray of shape (B, H)
        In: initial state. Out: final state.
    gates : ndarray of shape (T, B, 3H)
        In: the input projection with ``bias_ih`` plus the ``r`` and ``z``
        blocks of ``bias_hh``. Out: activations ``r, z, n``.
    h_prev : ndarray of shape (T, B, H)
        Out: the state each step started from.
    hn : ndarray of shape (T, B, H)
        Out: ``h W_hn + b_hn``.
    """
    steps, batch, width = gates.shape
    hidden = width // 3
    pre = np.empty((batch, width), dtype=gates.dtype)
    activated = np.empty((batch, width), dtype=gates.dtype)
    candidate = np.empty((batch, hidden), dtype=gates.dtype)
    new_gate = np.empty((batch, hidden), dtype=gates.dtype)
    work = np.empty(work_size(width), dtype=gates.dtype)
    w_hh_t = np.ascontiguousarray(w_hh.T)  # measured 2x faster small GEMMs
    for s in range(steps):
        active = batch_sizes[s]
        if active == 0:
            break
        _gru_forward_step(
            active, s, lengths, reverse, w_hh_t, b_hn, h, pre, activated,
            candidate, new_gate, out, out_col, gates, h_prev, hn, work,
        )  # fmt: skip


@njit(**KERNEL_OPTIONS)
def _gru_backward_step(
    active, s, lengths, reverse, w_hh, d_out, out_col, gates, h_prev, hn,
    d_h, d_h_direct, d_gates_ih, step_grads, d_gates_hh,
):  # fmt: skip
    _, one, _ = constants(gates)
    hidden = d_h.shape[1]
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        act = gates[t, b]
        hp = h_prev[t, b]
        hn_t = hn[t, b]
        g_ih = d_gates_ih[t, b]
        g_hh = step_grads[b]
        for j in range(hidden):
            r_gate = act[j]
            z_gate = act[hidden + j]
            n_gate = act[2 * hidden + j]
            dh = d_h[b, j] + d_out[t, b, out_col + j]
            d_n = dh * (one - z_gate) * (one - n_gate * n_gate)
            d_r = d_n * hn_t[j] * r_gate * (one - r_gate)
            d_z = dh * (hp[j] - n_gate) * z_gate * (one - z_gate)
            g_ih[j] = d_r
            g_ih[hidden + j] = d_z
            g_ih[2 * hidden + j] = d_n
            g_hh[j] = d_r
            g_hh[hidden + j] = d_z
            g_hh[2 * hidden + j] = d_n * r_gate
            d_h_direct[b, j] = dh * z_gate
        d_gates_hh[t, b] = g_hh
    np.dot(step_grads[:active], w_hh, d_h[:active])
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
    d_gates_hh : ndarray of shape (T, B, 3H)
        Out: gradient of ``h W_hh + b_hh`` (differs in the ``n`` block, which
        the reset gate scales).
    """
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


@njit(**KERNEL_OPTIONS)
def _rnn_forward_step(
    active, s, lengths, reverse, w_hh_t, relu, h, pre, activated, out, out_col,
    gates, h_prev, work,
):  # fmt: skip
    zero, _, _ = constants(gates)
    hidden = h.shape[1]
    pre = pre[:active]
    act = activated[:active]
    np.dot(h[:active], w_hh_t, pre)
    for b in range(active):
        projected = gates[_step_time(s, b, lengths, reverse), b]
        for j in range(hidden):
            pre[b, j] += projected[j]
    if relu:
        for b in range(active):
            for j in range(hidden):
                act[b, j] = max(pre[b, j], zero)
    else:
        tanh(pre.reshape(active * hidden), act.reshape(active * hidden), work)
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        gates[t, b] = act[b]
        hp = h_prev[t, b]
        for j in range(hidden):
            hp[j] = h[b, j]
            h[b, j] = act[b, j]
            out[t, b, out_col + j] = act[b, j]


@njit(**KERNEL_OPTIONS)
def rnn_forward_layer(
    w_hh, relu, lengths, batch_sizes, reverse, h, out, out_col,
    gates, h_prev,
):  # fmt: skip
    """Elman RNN ``h' = act(x W_ih + b_ih + h W_hh + b_hh)`` over one layer.

    Parameters
    ----------
    w_hh, lengths, batch_sizes, reverse, out, out_col
        As in :func:`lstm_forward_layer`, with ``H`` gate rows.
    relu : bool
        ``max(0, .)`` instead of ``tanh``.
    h : ndarray of shape (B, H)
        In: initial state. Out: final state.
    gates : ndarray of shape (T, B, H)
        In: the input projection with ``bias_ih + bias_hh``. Out: the new
        states ``h'`` (saved for backward).
    h_prev : ndarray of shape (T, B, H)
        Out: the state each step started from.
    """
    steps, batch, hidden = gates.shape
    pre = np.empty((batch, hidden), dtype=gates.dtype)
    activated = np.empty((batch, hidden), dtype=gates.dtype)
    work = np.empty(work_size(hidden), dtype=gates.dtype)
    w_hh_t = np.ascontiguousarray(w_hh.T)  # measured 2x faster small GEMMs
    for s in range(steps):
        active = batch_sizes[s]
        if active == 0:
            break
        _rnn_forward_step(
            active, s, lengths, reverse, w_hh_t, relu, h, pre, activated, out,
            out_col, gates, h_prev, work,
        )  # fmt: skip


@njit(**KERNEL_OPTIONS)
def _rnn_backward_step(
    active, s, lengths, reverse, w_hh, relu, d_out, out_col, gates,
    d_h, d_gates, step_grads,
):  # fmt: skip
    zero, one, _ = constants(gates)
    hidden = d_h.shape[1]
    for b in range(active):
        t = _step_time(s, b, lengths, reverse)
        act = gates[t, b]
        g = step_grads[b]
        if relu:
            for j in range(hidden):
                dh = d_h[b, j] + d_out[t, b, out_col + j]
                g[j] = dh if act[j] > zero else zero
        else:
            for j in range(hidden):
                dh = d_h[b, j] + d_out[t, b, out_col + j]
                g[j] = dh * (one - act[j] * act[j])
        d_gates[t, b] = g
    np.dot(step_grads[:active], w_hh, d_h[:active])


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


@njit(**KERNEL_OPTIONS)
def _zero_padding(buffer, lengths):
    """Set ``buffer[t, b] = 0`` for ``t >= lengths[b]``."""
    for b in range(buffer.shape[1]):
        for t in range(lengths[b], buffer.shape[0]):
            buffer[t, b] = 0


@njit(**KERNEL_OPTIONS)
def layer_param_grads(
    inp, h_prev, w_ih, d_gates_ih, d_gates_hh, d_w_ih, d_w_hh, d_b_ih, d_b_hh,
    d_inp,
):  # fmt: skip
    """Weight, bias and input gradients of one layer and direction.

    One GEMM each over all ``T * B`` rows, after the time loop. Padded rows of
    ``d_gates_*`` are zero, and ``inp`` and ``h_prev`` are finite there, so
    padding contributes nothing.

    Parameters
    ----------
    inp : ndarray of shape (T, B, I)
    h_prev : ndarray of shape (T, B, H)
    w_ih : ndarray of shape (G*H, I)
    d_gates_ih, d_gates_hh : ndarray of shape (T, B, G*H)
        Gradients of the input and recurrent pre-activations (the same array
        for rnn and lstm).
    d_w_ih : ndarray of shape (G*H, I)
        Out.
    d_w_hh : ndarray of shape (G*H, H)
        Out.
    d_b_ih, d_b_hh : ndarray of shape (G*H,)
        Out.
    d_inp : ndarray of shape (T, B, I)
        Out: gradient of the layer input from this direction.
    """
    steps, batch, features = inp.shape
    hidden = h_prev.shape[2]
    rows = steps * batch
    width = d_gates_ih.shape[2]
    g_ih = d_gates_ih.reshape(rows, width)
    g_hh = d_gates_hh.reshape(rows, width)
    np.dot(g_ih.T, inp.reshape(rows, features), d_w_ih)
    np.dot(g_hh.T, h_prev.reshape(rows, hidden), d_w_hh)
    np.dot(g_ih, w_ih, d_inp.reshape(rows, features))
    d_b_ih[:] = 0
    d_b_hh[:] = 0
    for r in range(rows):
        for j in range(width):
            d_b_ih[j] += g_ih[r, j]
            d_b_hh[j] += g_hh[r, j]
