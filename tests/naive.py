"""Slow, obviously correct NumPy references for the RNN, LSTM and GRU.

The fast kernels of ``rnntools`` are tested against these functions, and these
functions are tested against PyTorch and against finite differences
(``tests/test_naive.py``). They favour readability over speed: every batch
element and every timestep is an explicit Python loop over one cell step that
works on plain vectors, and the backward pass is hand-written backpropagation
through time, the cell steps' derivatives written out one by one.

Parameters follow ``torch.nn.RNN/LSTM/GRU(batch_first=True).state_dict()``:
``weight_ih_l{k}`` ``(G*H, I_k)``, ``weight_hh_l{k}`` ``(G*H, H)``,
``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(G*H,)``, with the suffix ``_reverse``
for the backward direction of a bidirectional layer. ``G`` is 1 (rnn),
4 (lstm, gates i, f, g, o) or 3 (gru, gates r, z, n).

Inside this module every cell carries a state pair ``(h, c)``; the rnn and the
gru pass ``c`` through unchanged (it stays zero) and the public functions drop
it, so that one code path serves all three cells.
"""

import numpy as np

GATE_COUNTS = {"rnn": 1, "lstm": 4, "gru": 3}
NONLINEARITIES = ("tanh", "relu")


def sigmoid(z):
    """Logistic function that never overflows.

    Parameters
    ----------
    z : ndarray
        Any shape and floating dtype.

    Returns
    -------
    ndarray
        ``1 / (1 + exp(-z))``, same shape and dtype as `z`.

    Notes
    -----
    ``exp`` only ever sees ``-|z| <= 0``: for ``z >= 0`` the function is
    ``1 / (1 + e)`` and for ``z < 0`` it is ``e / (1 + e)``, with
    ``e = exp(-|z|)``.
    """
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def make_params(
    cell,
    input_size,
    hidden_size,
    num_layers,
    bidirectional,
    rng,
    dtype=np.float64,
    scale=None,
):
    """Random parameters in PyTorch's ``state_dict`` layout.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    input_size : int
        ``I``, the number of input features.
    hidden_size : int
        ``H``.
    num_layers : int
        ``L``.
    bidirectional : bool
    rng : numpy.random.Generator
    dtype : dtype, default float64
    scale : float, optional
        Entries are drawn from ``U(-scale, scale)``; by default
        ``scale = 1 / sqrt(H)``, PyTorch's own initialisation.

    Returns
    -------
    dict of str to ndarray
        Keys in ``state_dict`` order (layer by layer, forward direction first,
        then ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``), shapes
        ``(G*H, I_k)``, ``(G*H, H)``, ``(G*H,)``, ``(G*H,)`` where
        ``I_0 = I`` and ``I_k = D*H`` for ``k >= 1``.
    """
    gates = GATE_COUNTS[cell]
    num_directions = 2 if bidirectional else 1
    bound = 1 / np.sqrt(hidden_size) if scale is None else scale
    params = {}
    for layer in range(num_layers):
        layer_input_size = input_size if layer == 0 else num_directions * hidden_size
        shapes = [
            (gates * hidden_size, layer_input_size),
            (gates * hidden_size, hidden_size),
            (gates * hidden_size,),
            (gates * hidden_size,),
        ]
        for direction in range(num_directions):
            for name, shape in zip(_param_names(layer, direction), shapes, strict=True):
                params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    return params


def naive_forward(
    x,
    params,
    cell,
    nonlinearity="tanh",
    bidirectional=False,
    lengths=None,
    initial_state=None,
):
    """Run a multi-layer (bidirectional) RNN, LSTM or GRU, one step at a time.

    Parameters
    ----------
    x : ndarray, shape (B, T, I)
        Batch-first input; its dtype is the compute dtype.
    params : dict of str to ndarray
        PyTorch ``state_dict`` layout (see the module docstring). ``L`` is the
        number of ``weight_ih_l{k}`` keys, ``H = params["weight_hh_l0"].shape[1]``.
    cell : {"rnn", "lstm", "gru"}
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The rnn's activation; ignored by the lstm and the gru.
    bidirectional : bool, default False
        ``D = 2`` if True, else ``D = 1``.
    lengths : array of int, shape (B,), optional
        ``1 <= lengths[b] <= T``; sequence ``b`` is ``x[b, :lengths[b]]`` and
        the rest of ``x[b]`` is ignored. Default: all ``T``.
    initial_state : ndarray or tuple of ndarray, optional
        ``h_0`` of shape ``(L*D, B, H)`` for rnn and gru, ``(h_0, c_0)`` for
        lstm. Default: zeros.

    Returns
    -------
    output : ndarray, shape (B, T, D*H)
        The last layer's hidden states, forward direction in ``[..., :H]``,
        reverse direction in ``[..., H:]``; ``output[b, t] = 0`` for
        ``t >= lengths[b]``.
    final_state : ndarray or tuple of ndarray
        ``h_n`` of shape ``(L*D, B, H)`` for rnn and gru, ``(h_n, c_n)`` for
        lstm; row ``layer*D + direction``. The forward direction's final state
        is taken at ``t = lengths[b] - 1``, the reverse direction's at ``t = 0``.

    Notes
    -----
    With ``a_x = W_ih x_t + b_ih`` and ``a_h = W_hh h_{t-1} + b_hh``, split
    into gate blocks of ``H`` rows in the order given:

    - rnn: ``h_t = act(a_x + a_h)``, ``act`` = tanh or relu.
    - lstm (i, f, g, o): ``i, f, o = σ(a_x + a_h)`` blocks,
      ``g = tanh(a_x + a_h)`` block, ``c_t = f * c_{t-1} + i * g``,
      ``h_t = o * tanh(c_t)``.
    - gru (r, z, n): ``r = σ(a_x^r + a_h^r)``, ``z = σ(a_x^z + a_h^z)``,
      ``n = tanh(a_x^n + r * a_h^n)``, ``h_t = (1 - z) * n + z * h_{t-1}``.

    The reverse direction runs the same recurrence from ``t = lengths[b] - 1``
    down to ``t = 0``. Layer ``k >= 1`` reads layer ``k - 1``'s
    ``(B, T, D*H)`` output. These are PyTorch's equations and its
    packed-sequence semantics.
    """
    output, final_state, _ = _forward_with_tape(
        x, params, cell, nonlinearity, bidirectional, lengths, initial_state
    )
    return output, final_state


def naive_backward(
    x,
    params,
    cell,
    d_output,
    d_final_state=None,
    nonlinearity="tanh",
    bidirectional=False,
    lengths=None,
    initial_state=None,
):
    """Backpropagation through time for :func:`naive_forward`.

    Parameters
    ----------
    x, params, cell, nonlinearity, bidirectional, lengths, initial_state
        As in :func:`naive_forward`; the forward pass is recomputed.
    d_output : ndarray, shape (B, T, D*H)
        Gradient of the loss with respect to ``output``. Entries at padded
        steps (``t >= lengths[b]``) are ignored: ``output`` is constant there.
    d_final_state : ndarray or tuple of ndarray, optional
        Gradient with respect to ``final_state``, in the same form
        (``(L*D, B, H)``, or a pair of them for lstm). Default: zeros.

    Returns
    -------
    grads : dict of str to ndarray
        Gradient of every entry of `params`, same keys, order and shapes.
    d_x : ndarray, shape (B, T, I)
        Gradient with respect to `x`; zero at padded steps.
    d_initial_state : ndarray or tuple of ndarray
        Gradient with respect to ``initial_state``: ``(L*D, B, H)`` for rnn
        and gru, a pair ``(d_h_0, d_c_0)`` for lstm. Returned even when
        `initial_state` is None (it is then the gradient at the zero state).

    Notes
    -----
    Each direction of each layer is walked backwards over the steps its
    forward pass took, carrying ``dh`` (and ``dc``); at step ``t`` the upstream
    gradient ``d_output[b, t]`` is added to ``dh``. The cell step turns
    ``(dh, dc)`` into gradients of its pre-activations ``a_x`` and ``a_h``
    (they differ only for the gru, whose ``a_h^n`` is scaled by ``r``), and
    then ``dW_ih += outer(d a_x, x_t)``, ``dW_hh += outer(d a_h, h_{t-1})``,
    ``db_ih += d a_x``, ``db_hh += d a_h``, ``d x_t = W_ih^T d a_x``,
    ``d h_{t-1} = W_hh^T d a_h`` (+ ``z * dh`` for the gru). Layers are
    visited from the last to the first; each layer's ``d x`` is the ``d_output``
    of the layer below.
    """
    dtype = x.dtype
    _, _, tape = _forward_with_tape(
        x, params, cell, nonlinearity, bidirectional, lengths, initial_state
    )
    num_layers = _num_layers(params)
    num_directions = 2 if bidirectional else 1
    hidden_size = params["weight_hh_l0"].shape[1]
    batch_size, seq_len, _ = x.shape
    state_shape = (num_layers * num_directions, batch_size, hidden_size)
    dh_n, dc_n = _state_pair(cell, d_final_state, state_shape, dtype)
    dh_0 = np.zeros(state_shape, dtype=dtype)
    dc_0 = np.zeros(state_shape, dtype=dtype)

    grads = {}
    d_layer_output = np.asarray(d_output, dtype=dtype)
    for layer in reversed(range(num_layers)):
        layer_input_size = params[f"weight_ih_l{layer}"].shape[1]
        d_layer_input = np.zeros((batch_size, seq_len, layer_input_size), dtype=dtype)
        for direction in range(num_directions):
            index = layer * num_directions + direction
            weights = _weights(params, layer, direction, dtype)
            columns = slice(direction * hidden_size, (direction + 1) * hidden_size)
            d_input, d_weights, dh_0[index], dc_0[index] = _direction_backward(
                cell,
                nonlinearity,
                weights,
                tape[index],
                d_layer_output[:, :, columns],
                dh_n[index],
                dc_n[index],
            )
            d_layer_input += d_input
            names = _param_names(layer, direction)
            grads.update(zip(names, d_weights, strict=True))
        d_layer_output = d_layer_input

    grads = {name: grads[name] for name in params}
    d_initial_state = (dh_0, dc_0) if cell == "lstm" else dh_0
    return grads, d_layer_output, d_initial_state


def relu_margin(x, params, bidirectional=False, lengths=None, initial_state=None):
    """Distance from the ReLU kink of the closest pre-activation of a relu rnn.

    Finite differences of a relu rnn are only meaningful when no
    pre-activation crosses 0 within the step; tests compare this margin with
    the step before they trust a finite difference.

    Parameters
    ----------
    x, params, bidirectional, lengths, initial_state
        As in :func:`naive_forward` with ``cell="rnn"``, ``nonlinearity="relu"``.

    Returns
    -------
    float
        ``min |W_ih x_t + b_ih + W_hh h_{t-1} + b_hh|`` over every element,
        real (unpadded) step, direction and layer.
    """
    _, _, tape = _forward_with_tape(
        x, params, "rnn", "relu", bidirectional, lengths, initial_state
    )
    return min(
        float(np.min(np.abs(cache["pre"])))
        for direction_tape in tape.values()
        for steps in direction_tape
        for _, cache in steps
    )


def _param_names(layer, direction):
    """Keys ``(weight_ih, weight_hh, bias_ih, bias_hh)`` of one layer direction."""
    suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
    return tuple(
        f"{kind}{suffix}" for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def _num_layers(params):
    num_layers = 0
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    if num_layers == 0:
        raise ValueError("params has no 'weight_ih_l0'")
    return num_layers


def _weights(params, layer, direction, dtype):
    """``(W_ih, W_hh, b_ih, b_hh)`` of one layer direction, cast to `dtype`."""
    return tuple(
        np.asarray(params[name], dtype=dtype) for name in _param_names(layer, direction)
    )


def _state_pair(cell, state, shape, dtype):
    """``(h, c)`` arrays of `shape` from an rnn/gru or lstm state, or zeros."""
    if state is None:
        return np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype)
    if cell == "lstm":
        h, c = state
    else:
        h, c = state, np.zeros(shape, dtype=dtype)
    return np.asarray(h, dtype=dtype), np.asarray(c, dtype=dtype)


def _forward_with_tape(x, params, cell, nonlinearity, bidirectional, lengths, state):
    """:func:`naive_forward`, also returning what the backward pass needs.

    Returns
    -------
    output, final_state
        As in :func:`naive_forward`.
    tape : dict of int to list
        ``tape[layer*D + direction][b]`` is the list of ``(t, cache)`` pairs of
        that direction's steps on sequence ``b``, in the order they ran.
    """
    if cell not in GATE_COUNTS:
        raise ValueError(f"cell must be one of {sorted(GATE_COUNTS)}, got {cell!r}")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    dtype = x.dtype
    batch_size, seq_len, _ = x.shape
    if lengths is None:
        lengths = np.full(batch_size, seq_len)
    lengths = np.asarray(lengths)
    if lengths.shape != (batch_size,) or lengths.min() < 1 or lengths.max() > seq_len:
        raise ValueError(f"lengths must be (B,) ints in [1, T], got {lengths}")
    num_layers = _num_layers(params)
    num_directions = 2 if bidirectional else 1
    hidden_size = params["weight_hh_l0"].shape[1]
    state_shape = (num_layers * num_directions, batch_size, hidden_size)
    h_0, c_0 = _state_pair(cell, state, state_shape, dtype)
    h_n = np.zeros(state_shape, dtype=dtype)
    c_n = np.zeros(state_shape, dtype=dtype)

    tape = {}
    layer_input = x
    for layer in range(num_layers):
        direction_outputs = []
        for direction in range(num_directions):
            index = layer * num_directions + direction
            direction_output, h_n[index], c_n[index], tape[index] = _direction_forward(
                cell,
                nonlinearity,
                _weights(params, layer, direction, dtype),
                layer_input,
                lengths,
                h_0[index],
                c_0[index],
                reverse=direction == 1,
            )
            direction_outputs.append(direction_output)
        layer_input = np.concatenate(direction_outputs, axis=2)

    final_state = (h_n, c_n) if cell == "lstm" else h_n
    return layer_input, final_state, tape


def _direction_forward(
    cell, nonlinearity, weights, layer_input, lengths, h_0, c_0, reverse
):
    """One direction of one layer over the whole batch.

    Parameters
    ----------
    weights : tuple of ndarray
        ``(W_ih (G*H, I_k), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,))``.
    layer_input : ndarray, shape (B, T, I_k)
    lengths : ndarray of int, shape (B,)
    h_0, c_0 : ndarray, shape (B, H)
    reverse : bool
        Run from ``t = lengths[b] - 1`` down to 0 instead of from 0 up.

    Returns
    -------
    output : ndarray, shape (B, T, H)
        Zero at padded steps.
    h_n, c_n : ndarray, shape (B, H)
    tape : list of list of (int, dict)
        Per sequence, the ``(t, cache)`` of every step in the order they ran.
    """
    batch_size, seq_len, _ = layer_input.shape
    hidden_size = h_0.shape[1]
    output = np.zeros((batch_size, seq_len, hidden_size), dtype=layer_input.dtype)
    h_n = np.zeros_like(h_0)
    c_n = np.zeros_like(c_0)
    tape = []
    for b in range(batch_size):
        if reverse:
            steps = range(lengths[b] - 1, -1, -1)
        else:
            steps = range(lengths[b])
        h, c = h_0[b], c_0[b]
        sequence_tape = []
        for t in steps:
            h, c, cache = _cell_forward(
                cell, nonlinearity, weights, layer_input[b, t], h, c
            )
            output[b, t] = h
            sequence_tape.append((t, cache))
        h_n[b], c_n[b] = h, c
        tape.append(sequence_tape)
    return output, h_n, c_n, tape


def _direction_backward(cell, nonlinearity, weights, tape, d_output, dh_n, dc_n):
    """Backward pass of :func:`_direction_forward`.

    Parameters
    ----------
    weights : tuple of ndarray
        As in :func:`_direction_forward`.
    tape : list of list of (int, dict)
        From :func:`_direction_forward`.
    d_output : ndarray, shape (B, T, H)
        Gradient with respect to this direction's output.
    dh_n, dc_n : ndarray, shape (B, H)
        Gradient with respect to this direction's final state.

    Returns
    -------
    d_input : ndarray, shape (B, T, I_k)
    d_weights : list of ndarray
        Gradients of ``(W_ih, W_hh, b_ih, b_hh)``.
    dh_0, dc_0 : ndarray, shape (B, H)
    """
    w_ih, w_hh, _, _ = weights
    d_w_ih, d_w_hh, d_b_ih, d_b_hh = d_weights = [np.zeros_like(w) for w in weights]
    batch_size, seq_len, _ = d_output.shape
    d_input = np.zeros((batch_size, seq_len, w_ih.shape[1]), dtype=d_output.dtype)
    dh_0 = np.zeros_like(dh_n)
    dc_0 = np.zeros_like(dc_n)
    for b in range(batch_size):
        dh, dc = dh_n[b], dc_n[b]
        for t, cache in reversed(tape[b]):
            dh = dh + d_output[b, t]
            d_gates_x, d_gates_h, dh_direct, dc = _cell_backward(
                cell, nonlinearity, cache, dh, dc
            )
            d_w_ih += np.outer(d_gates_x, cache["x"])
            d_w_hh += np.outer(d_gates_h, cache["h_prev"])
            d_b_ih += d_gates_x
            d_b_hh += d_gates_h
            d_input[b, t] = w_ih.T @ d_gates_x
            dh = dh_direct + w_hh.T @ d_gates_h
        dh_0[b], dc_0[b] = dh, dc
    return d_input, d_weights, dh_0, dc_0


def _cell_forward(cell, nonlinearity, weights, x_t, h_prev, c_prev):
    """One step of one cell on one sequence.

    Parameters
    ----------
    weights : tuple of ndarray
        ``(W_ih (G*H, I_k), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,))``.
    x_t : ndarray, shape (I_k,)
    h_prev, c_prev : ndarray, shape (H,)

    Returns
    -------
    h, c : ndarray, shape (H,)
        The new state (``c`` is `c_prev` for rnn and gru).
    cache : dict of str to ndarray
        The inputs and intermediate values :func:`_cell_backward` needs.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    gates_x = w_ih @ x_t + b_ih
    gates_h = w_hh @ h_prev + b_hh
    cache = {"x": x_t, "h_prev": h_prev, "c_prev": c_prev}
    if cell == "rnn":
        pre = gates_x + gates_h
        h = np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0)
        c = c_prev
        cache.update(pre=pre, h=h)
    elif cell == "lstm":
        a_i, a_f, a_g, a_o = np.split(gates_x + gates_h, 4)
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
        c = f * c_prev + i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        cache.update(i=i, f=f, g=g, o=o, tanh_c=tanh_c)
    else:
        x_r, x_z, x_n = np.split(gates_x, 3)
        h_r, h_z, h_n = np.split(gates_h, 3)
        r = sigmoid(x_r + h_r)
        z = sigmoid(x_z + h_z)
        n = np.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h_prev
        c = c_prev
        cache.update(r=r, z=z, n=n, gates_h_n=h_n)
    return h, c, cache


def _cell_backward(cell, nonlinearity, cache, dh, dc):
    """Backward pass of :func:`_cell_forward`.

    Parameters
    ----------
    cache : dict of str to ndarray
        From :func:`_cell_forward`.
    dh, dc : ndarray, shape (H,)
        Gradient with respect to the step's output state ``(h, c)``.

    Returns
    -------
    d_gates_x : ndarray, shape (G*H,)
        Gradient with respect to ``a_x = W_ih x_t + b_ih``.
    d_gates_h : ndarray, shape (G*H,)
        Gradient with respect to ``a_h = W_hh h_prev + b_hh``.
    dh_direct : ndarray, shape (H,)
        The part of the gradient of ``h_prev`` that does not pass through
        ``a_h`` (``z * dh`` for the gru, zero otherwise).
    dc_prev : ndarray, shape (H,)
        Gradient with respect to ``c_prev``.
    """
    if cell == "rnn":
        if nonlinearity == "tanh":
            d_pre = dh * (1 - cache["h"] ** 2)
        else:
            d_pre = dh * (cache["pre"] > 0)
        return d_pre, d_pre, np.zeros_like(dh), dc
    if cell == "lstm":
        i, f, g, o, tanh_c = (cache[key] for key in ("i", "f", "g", "o", "tanh_c"))
        d_o = dh * tanh_c
        dc = dc + dh * o * (1 - tanh_c**2)
        d_i = dc * g
        d_f = dc * cache["c_prev"]
        d_g = dc * i
        d_gates = np.concatenate(
            [d_i * i * (1 - i), d_f * f * (1 - f), d_g * (1 - g**2), d_o * o * (1 - o)]
        )
        return d_gates, d_gates, np.zeros_like(dh), dc * f
    r, z, n = cache["r"], cache["z"], cache["n"]
    d_n = dh * (1 - z)
    d_z = dh * (cache["h_prev"] - n)
    d_a_n = d_n * (1 - n**2)
    d_a_r = d_a_n * cache["gates_h_n"] * r * (1 - r)
    d_a_z = d_z * z * (1 - z)
    d_gates_x = np.concatenate([d_a_r, d_a_z, d_a_n])
    d_gates_h = np.concatenate([d_a_r, d_a_z, d_a_n * r])
    return d_gates_x, d_gates_h, dh * z, dc
