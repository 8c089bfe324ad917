"""Functional API: :func:`rnn_forward` and :func:`rnn_backward`.

This module validates everything once, lays the batch out time-major and
sorted by decreasing length (PyTorch's packed-sequence order), stacks layers
and directions, and calls the one-layer kernels of :mod:`rnntools.kernels.cpu`,
which trust their inputs completely.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numba
import numpy as np

from ._threads import kernel_threads
from .cells import (
    GATES,
    NONLINEARITIES,
    direction_suffixes,
    expected_shapes,
    param_names,
)
from .kernels import cpu

_LAYER_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")
_DEVICES = ("cpu", "cuda")
# Below this many flops a parallel region costs more than it saves (measured:
# a fork/join of Numba's OpenMP pool is a few microseconds).
_MIN_PARALLEL_FLOPS = 200_000


@dataclass
class _DirectionCache:
    """What one layer and direction saved for backward (time-major, sorted)."""

    weights: tuple  # (w_ih, w_hh) in the compute dtype
    gates: np.ndarray  # (T, B, G*H) activations
    h_prev: np.ndarray  # (T, B, H)
    extra: tuple  # lstm: (c_prev, tanh_c); gru: (hn,); rnn: ()


@dataclass
class ForwardCache:
    """Everything :func:`rnn_backward` needs; returned by :func:`rnn_forward`.

    Treat it as opaque. It holds the time-major activations of every layer and
    direction, so its memory is about ``(G + 3) * L * D * T * B * H`` numbers.
    """

    cell: str
    relu: bool
    bidirectional: bool
    num_layers: int
    hidden_size: int
    input_size: int
    dtype: np.dtype
    batch: int
    steps: int
    order: np.ndarray  # sorted position -> original index
    lengths: np.ndarray  # sorted, int64
    batch_sizes: np.ndarray  # (T,) int64
    param_keys: tuple  # the keys of params, in the caller's order
    inputs: list = field(default_factory=list)  # per layer: (T, B, I_k)
    directions: list = field(default_factory=list)  # per layer: [_DirectionCache]


def _num_directions(bidirectional):
    return 2 if bidirectional else 1


def _check_float_array(value, name, *, ndim=None, allow_list=True):
    """``value`` as an ndarray of a float32/float64 dtype, or a clear error."""
    if not isinstance(value, np.ndarray):
        if not allow_list or isinstance(value, (str, bytes, Mapping)) or value is None:
            raise TypeError(
                f"{name} must be a NumPy array, got {type(value).__name__}."
            )
        try:
            value = np.asarray(value)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(
                f"{name} could not be converted to an array: {exc}"
            ) from exc
    if value.dtype.kind != "f" or value.dtype.itemsize not in (4, 8):
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {value.dtype}."
        )
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {value.shape}.")
    return value


def _check_finite(value, name):
    if not np.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or infinity.")


def _check_shape(value, expected, name):
    if value.shape != tuple(expected):
        raise ValueError(f"{name} has shape {value.shape}, expected {tuple(expected)}.")


def _check_cell(cell, nonlinearity):
    if not isinstance(cell, str) or cell not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}.")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"nonlinearity must be one of {list(NONLINEARITIES)}, got {nonlinearity!r}."
        )
    if cell != "rnn" and nonlinearity != "tanh":
        raise ValueError(
            f"nonlinearity={nonlinearity!r} applies to cell='rnn' only, "
            f"not cell={cell!r}."
        )


def _infer_architecture(params, cell, bidirectional):
    """Number of layers and hidden size from the keys and shapes of ``params``."""
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a dict of arrays, got {type(params).__name__}."
        )
    layers = set()
    for key in params:
        match = _LAYER_KEY.match(key) if isinstance(key, str) else None
        if match is None:
            raise ValueError(
                f"params has an unexpected key {key!r}; expected PyTorch "
                "state_dict keys such as 'weight_ih_l0' or 'bias_hh_l1_reverse'."
            )
        if match.group(3) and not bidirectional:
            raise ValueError(
                f"params has the key {key!r} of a bidirectional network, "
                "but bidirectional=False."
            )
        layers.add(int(match.group(2)))
    if "weight_hh_l0" not in params:
        raise ValueError("params is missing the key 'weight_hh_l0'.")
    num_layers = max(layers) + 1
    w_hh = params["weight_hh_l0"]
    shape = np.shape(w_hh)
    if len(shape) != 2 or shape[1] < 1:
        raise ValueError(
            f"params['weight_hh_l0'] must have shape (G*H, H), got {shape}."
        )
    hidden_size = shape[1]
    if shape[0] != GATES[cell] * hidden_size:
        raise ValueError(
            f"params['weight_hh_l0'] has shape {shape}; a {cell} with "
            f"hidden_size={hidden_size} expects "
            f"({GATES[cell] * hidden_size}, {hidden_size}). Are these the "
            "parameters of a different cell?"
        )
    return num_layers, hidden_size


def _check_params(params, cell, bidirectional, input_size, dtype):
    """Validate ``params`` and return them cast to ``dtype``, C-contiguous."""
    num_layers, hidden_size = _infer_architecture(params, cell, bidirectional)
    if "weight_ih_l0" in params:
        ih_shape = np.shape(params["weight_ih_l0"])
        if len(ih_shape) == 2 and ih_shape[1] != input_size:
            raise ValueError(
                f"x has {input_size} features, but params['weight_ih_l0'] has "
                f"shape {ih_shape}, i.e. expects {ih_shape[1]} input features."
            )
    shapes = expected_shapes(cell, input_size, hidden_size, num_layers, bidirectional)
    missing = [key for key in shapes if key not in params]
    if missing:
        raise ValueError(f"params is missing the keys {missing}.")
    checked = {}
    for key, shape in shapes.items():
        value = _check_float_array(params[key], f"params[{key!r}]")
        _check_shape(value, shape, f"params[{key!r}]")
        _check_finite(value, f"params[{key!r}]")
        checked[key] = np.ascontiguousarray(value, dtype=dtype)
    return checked, num_layers, hidden_size


def _check_lengths(lengths, batch, steps):
    """Validated ``(B,)`` int64 lengths; all ``T`` when ``lengths`` is None."""
    if lengths is None:
        return np.full(batch, steps, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}.")
    if lengths.shape != (batch,):
        raise ValueError(
            f"lengths must have shape ({batch},) (one per sequence), "
            f"got {lengths.shape}."
        )
    if lengths.min() < 1 or lengths.max() > steps:
        raise ValueError(
            f"lengths must be between 1 and T={steps}, got values from "
            f"{lengths.min()} to {lengths.max()}."
        )
    return lengths.astype(np.int64)


def _check_state(state, cell, shape, dtype, name):
    """Validate an LSTM ``(h, c)`` tuple or an rnn/gru ``h`` of ``shape``."""
    if cell == "lstm":
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"{name} of an lstm must be a tuple (h, c).")
        parts = state
        names = (f"{name}[0]", f"{name}[1]")
    else:
        if (
            isinstance(state, (tuple, list))
            and len(state) == 2
            and np.ndim(state[0]) == len(shape)
        ):
            raise TypeError(
                f"{name} of a {cell} is a single array h, not a tuple (h, c)."
            )
        parts = (state,)
        names = (name,)
    checked = []
    for part, part_name in zip(parts, names, strict=True):
        part = _check_float_array(part, part_name)
        _check_shape(part, shape, part_name)
        _check_finite(part, part_name)
        checked.append(np.asarray(part, dtype=dtype))
    return checked


def _to_time_major(batch_first, order, lengths):
    """``(B, T, F)`` → sorted ``(T, B, F)`` copy with zeros at padding."""
    time_major = np.ascontiguousarray(batch_first[order].transpose(1, 0, 2))
    steps = time_major.shape[0]
    if lengths[-1] < steps:  # sorted: the last is the shortest
        time_major[np.arange(steps)[:, None] >= lengths[None, :]] = 0
    return time_major


def _from_time_major(time_major, order):
    """Sorted ``(T, B, F)`` → ``(B, T, F)`` in the caller's order."""
    batch_first = np.empty(
        (time_major.shape[1], time_major.shape[0], time_major.shape[2]),
        dtype=time_major.dtype,
    )
    batch_first[order] = time_major.transpose(1, 0, 2)
    return batch_first


def _unsort_states(states, order):
    """``(L*D, B, H)`` sorted → caller's order."""
    unsorted = np.empty_like(states)
    unsorted[:, order] = states
    return unsorted


def _parallel_chunks(rows, flops_per_row):
    """How many blocks of ``rows`` to run in parallel.

    One block (no parallel region at all) when the work is too small to pay
    for a fork/join of Numba's thread pool.
    """
    threads = numba.get_num_threads()
    if threads == 1 or rows * flops_per_row < _MIN_PARALLEL_FLOPS:
        return 1
    return min(threads, rows)


def _check_device(device):
    if device not in _DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}.")
    if device == "cuda":
        raise RuntimeError(
            "device='cuda' is not available: this version of rnntools has no "
            "CUDA backend yet. Use device='cpu'."
        )


def rnn_forward(
    x,
    params,
    cell,
    *,
    nonlinearity="tanh",
    bidirectional=False,
    lengths=None,
    initial_state=None,
    device="cpu",
):
    """Run a stacked (bidirectional) RNN, LSTM or GRU over a batch.

    Parameters
    ----------
    x : ndarray of shape (B, T, I)
        Batch-first inputs, float32 or float64; the dtype of ``x`` is the
        compute dtype and ``params`` are cast to it. Never written to.
    params : dict of str to ndarray
        PyTorch ``state_dict`` layout (see :func:`rnntools.init_params`); the
        number of layers ``L`` and ``H`` come from its keys and shapes.
    cell : {"rnn", "lstm", "gru"}
        Cell type. The GRU is PyTorch's (reset gate applied after the
        recurrent product).
    nonlinearity : {"tanh", "relu"}, default="tanh"
        Activation of ``cell="rnn"``.
    bidirectional : bool, default=False
        Whether ``params`` hold a reverse direction for every layer.
    lengths : array-like of int, shape (B,), default=None
        Sequence ``b`` is ``x[b, :lengths[b]]``, ``1 <= lengths[b] <= T``;
        the padding never influences anything (PyTorch's packed-sequence
        semantics). None means all sequences have length ``T``.
    initial_state : ndarray of shape (L*D, B, H), or tuple (h0, c0) for lstm
        Zeros if None.
    device : {"cpu", "cuda"}, default="cpu"

    Returns
    -------
    output : ndarray of shape (B, T, D*H)
        Last layer's states, forward direction first; 0 at padded steps.
    final_state : ndarray of shape (L*D, B, H), or tuple (h_n, c_n) for lstm
        State at each sequence's own last step, ordered as PyTorch orders it
        (index ``layer * D + direction``).
    cache : ForwardCache
        Input of :func:`rnn_backward`.

    Raises
    ------
    TypeError, ValueError
        On malformed input, naming the problem.
    RuntimeError
        For ``device="cuda"`` when the CUDA backend is unavailable.

    Notes
    -----
    LSTM (gate order i, f, g, o)::

        i, f, o = σ(W_i·[h, x] + b_i), σ(...), σ(...);  g = tanh(W_g·[h, x] + b_g)
        c' = f * c + i * g;  h' = o * tanh(c')

    GRU (order r, z, n)::

        r, z = σ(...);  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h
    """
    _check_cell(cell, nonlinearity)
    _check_device(device)
    if not isinstance(bidirectional, (bool, np.bool_)):
        raise TypeError(
            f"bidirectional must be a bool, got {type(bidirectional).__name__}."
        )
    x = _check_float_array(x, "x", ndim=3)
    batch, steps, input_size = x.shape
    if batch == 0 or steps == 0 or input_size == 0:
        raise ValueError(f"x must have no zero-length axis, got shape {x.shape}.")
    dtype = x.dtype
    lengths = _check_lengths(lengths, batch, steps)
    params, num_layers, hidden_size = _check_params(
        params, cell, bidirectional, input_size, dtype
    )
    num_dirs = _num_directions(bidirectional)
    state_shape = (num_layers * num_dirs, batch, hidden_size)
    if initial_state is None:
        initial = [np.zeros(state_shape, dtype=dtype)]
        if cell == "lstm":
            initial.append(np.zeros(state_shape, dtype=dtype))
    else:
        initial = _check_state(initial_state, cell, state_shape, dtype, "initial_state")

    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = np.ascontiguousarray(lengths[order])
    _check_finite_valid(x[order], sorted_lengths, "x")
    batch_sizes = (
        sorted_lengths[None, :] > np.arange(steps, dtype=np.int64)[:, None]
    ).sum(axis=1)
    cache = ForwardCache(
        cell=cell,
        relu=nonlinearity == "relu",
        bidirectional=bool(bidirectional),
        num_layers=num_layers,
        hidden_size=hidden_size,
        input_size=input_size,
        dtype=dtype,
        batch=batch,
        steps=steps,
        order=order,
        lengths=sorted_lengths,
        batch_sizes=batch_sizes.astype(np.int64),
        param_keys=tuple(params),
    )
    final = [np.empty(state_shape, dtype=dtype) for _ in initial]
    layer_input = _to_time_major(x, order, sorted_lengths)
    with kernel_threads():
        for layer in range(num_layers):
            out = np.zeros((steps, batch, num_dirs * hidden_size), dtype=dtype)
            saved = []
            for direction, suffix in enumerate(direction_suffixes(bidirectional)):
                index = layer * num_dirs + direction
                state = [np.ascontiguousarray(s[index][order]) for s in initial]
                saved.append(
                    _forward_direction(
                        cache, params, layer, suffix, layer_input, state, out
                    )
                )
                for part, value in zip(final, state, strict=True):
                    part[index] = value
            cache.inputs.append(layer_input)
            cache.directions.append(saved)
            layer_input = out
    output = _from_time_major(layer_input, order)
    final = [_unsort_states(part, order) for part in final]
    final_state = tuple(final) if cell == "lstm" else final[0]
    return output, final_state, cache


def _check_finite_valid(sorted_batch_first, sorted_lengths, name):
    """Finite check of the non-padded part of a sorted ``(B, T, F)`` array."""
    steps = sorted_batch_first.shape[1]
    if sorted_lengths[-1] == steps:
        _check_finite(sorted_batch_first, name)
        return
    valid = np.arange(steps)[None, :] < sorted_lengths[:, None]
    _check_finite(sorted_batch_first[valid], name)


def _forward_direction(cache, params, layer, suffix, layer_input, state, out):
    """Run one layer and direction; ``state`` is updated to the final state."""
    w_ih, w_hh, b_ih, b_hh = (params[name] for name in param_names(layer, suffix))
    steps, batch, _ = layer_input.shape
    hidden = cache.hidden_size
    width = GATES[cache.cell] * hidden
    dtype = cache.dtype
    reverse = suffix == "_reverse"
    out_col = hidden if reverse else 0
    gates = np.empty((steps, batch, width), dtype=dtype)
    # Read by the weight-gradient GEMM at padded rows too: must be finite.
    h_prev = np.zeros((steps, batch, hidden), dtype=dtype)
    if cache.cell == "gru":  # b_hn stays inside the reset product
        bias = b_ih.copy()
        bias[: 2 * hidden] += b_hh[: 2 * hidden]
    else:
        bias = b_ih + b_hh
    cpu.input_projection(
        layer_input, w_ih, bias, gates,
        _parallel_chunks(steps * batch, 2 * width * layer_input.shape[2]),
    )  # fmt: skip
    common = (cache.lengths, cache.batch_sizes, reverse)
    n_chunks = _parallel_chunks(batch, 2 * width * hidden)
    if cache.cell == "lstm":
        c_prev = np.empty((steps, batch, hidden), dtype=dtype)
        tanh_c = np.empty((steps, batch, hidden), dtype=dtype)
        cpu.lstm_forward_layer(
            w_hh, *common, state[0], state[1], out, out_col,
            gates, h_prev, c_prev, tanh_c, n_chunks,
        )  # fmt: skip
        extra = (c_prev, tanh_c)
    elif cache.cell == "gru":
        b_hn = np.ascontiguousarray(b_hh[2 * hidden :])
        hn = np.empty((steps, batch, hidden), dtype=dtype)
        cpu.gru_forward_layer(
            w_hh, b_hn, *common, state[0], out, out_col,
            gates, h_prev, hn, n_chunks,
        )  # fmt: skip
        extra = (hn,)
    else:
        cpu.rnn_forward_layer(
            w_hh, cache.relu, *common, state[0], out, out_col,
            gates, h_prev, n_chunks,
        )  # fmt: skip
        extra = ()
    return _DirectionCache((w_ih, w_hh), gates, h_prev, extra)


def rnn_backward(cache, d_output, d_final_state=None):
    """Backpropagation through time for :func:`rnn_forward`.

    Parameters
    ----------
    cache : ForwardCache
        As returned by :func:`rnn_forward`. Not modified: it may be reused.
    d_output : ndarray of shape (B, T, D*H)
        Gradient of the loss with respect to ``output``. Values at padded
        steps are ignored.
    d_final_state : ndarray of shape (L*D, B, H), or tuple for lstm, optional
        Gradient with respect to ``final_state``; zeros if None.

    Returns
    -------
    grads : dict of str to ndarray
        Gradients of the parameters, same keys and shapes as ``params``.
    d_x : ndarray of shape (B, T, I)
        Gradient with respect to ``x``; 0 at padded steps.
    d_initial_state : ndarray of shape (L*D, B, H), or tuple (d_h0, d_c0)
        Gradient with respect to the initial state.
    """
    if not isinstance(cache, ForwardCache):
        raise TypeError(
            "cache must be the ForwardCache returned by rnn_forward, "
            f"got {type(cache).__name__}."
        )
    hidden = cache.hidden_size
    num_dirs = _num_directions(cache.bidirectional)
    dtype = cache.dtype
    batch, steps = cache.batch, cache.steps
    order = cache.order
    d_output = _check_float_array(d_output, "d_output", ndim=3)
    _check_shape(d_output, (batch, steps, num_dirs * hidden), "d_output")
    d_out = _to_time_major(d_output.astype(dtype, copy=False), order, cache.lengths)
    _check_finite(d_out, "d_output")
    state_shape = (cache.num_layers * num_dirs, batch, hidden)
    num_states = 2 if cache.cell == "lstm" else 1
    if d_final_state is None:
        d_state = [np.zeros(state_shape, dtype=dtype) for _ in range(num_states)]
    else:
        d_state = _check_state(
            d_final_state, cache.cell, state_shape, dtype, "d_final_state"
        )
        d_state = [part[:, order] for part in d_state]

    grads = {}
    with kernel_threads():
        for layer in reversed(range(cache.num_layers)):
            layer_input = cache.inputs[layer]
            d_inp = np.zeros(layer_input.shape, dtype=dtype)
            d_inp_direction = np.empty(layer_input.shape, dtype=dtype)
            for direction, suffix in enumerate(direction_suffixes(cache.bidirectional)):
                index = layer * num_dirs + direction
                d_carry = [np.ascontiguousarray(part[index]) for part in d_state]
                _backward_direction(
                    cache, layer, direction, suffix, d_out, d_carry, grads,
                    d_inp_direction,
                )  # fmt: skip
                d_inp += d_inp_direction
                for part, value in zip(d_state, d_carry, strict=True):
                    part[index] = value
            d_out = d_inp
    d_x = _from_time_major(d_out, order)
    d_initial = [_unsort_states(part, order) for part in d_state]
    d_initial_state = tuple(d_initial) if cache.cell == "lstm" else d_initial[0]
    grads = {key: grads[key] for key in cache.param_keys}
    return grads, d_x, d_initial_state


def _backward_direction(
    cache, layer, direction, suffix, d_out, d_carry, grads, d_inp_direction
):
    """BPTT of one layer and direction; writes its entries of ``grads``."""
    saved = cache.directions[layer][direction]
    w_ih, w_hh = saved.weights
    hidden = cache.hidden_size
    reverse = suffix == "_reverse"
    out_col = hidden if reverse else 0
    steps, batch = cache.steps, cache.batch
    width = saved.gates.shape[2]
    common = (cache.lengths, cache.batch_sizes, reverse)
    n_chunks = _parallel_chunks(batch, 2 * width * hidden)
    d_gates_ih = np.empty_like(saved.gates)
    d_gates_hh = d_gates_ih
    if cache.cell == "lstm":
        c_prev, tanh_c = saved.extra
        cpu.lstm_backward_layer(
            d_out, out_col, w_hh, saved.gates, c_prev, tanh_c, *common,
            d_carry[0], d_carry[1], d_gates_ih, n_chunks,
        )  # fmt: skip
    elif cache.cell == "gru":
        (hn,) = saved.extra
        d_gates_hh = np.empty_like(saved.gates)
        cpu.gru_backward_layer(
            d_out, out_col, w_hh, saved.gates, saved.h_prev, hn, *common,
            d_carry[0], d_gates_ih, d_gates_hh, n_chunks,
        )  # fmt: skip
    else:
        cpu.rnn_backward_layer(
            d_out, out_col, w_hh, saved.gates, cache.relu, *common,
            d_carry[0], d_gates_ih, n_chunks,
        )  # fmt: skip
    names = param_names(layer, suffix)
    for name, like in zip(names, (w_ih, w_hh, w_ih[:, 0], w_hh[:, 0]), strict=True):
        grads[name] = np.empty(like.shape, dtype=cache.dtype)
    layer_input = cache.inputs[layer]
    cpu.layer_param_grads(
        layer_input, saved.h_prev, w_ih, d_gates_ih, d_gates_hh,
        *(grads[name] for name in names), d_inp_direction,
        _parallel_chunks(steps * batch, 2 * width * (layer_input.shape[2] + hidden)),
    )  # fmt: skip
