"""Functional API: :func:`rnn_forward` and :func:`rnn_backward`.

This module validates everything once, then splits the batch into blocks of
sequences that run independently on separate threads (sequences never
interact inside a network, so no synchronisation is needed), lays each block
out time-major and sorted by decreasing length (PyTorch's packed-sequence
order), stacks layers and directions, and calls the one-layer kernels of
:mod:`rnntools.kernels.cpu`, which trust their inputs completely.

``device="cuda"`` runs the same driver code on one block holding the whole
batch, with the function-for-function twins in :mod:`rnntools.kernels.cuda`
and device buffers (a :class:`_Backend` says where buffers live and which
kernels run); only the inputs and the results cross the bus.
"""

import itertools
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import ModuleType

import numpy as np

from ._devices import cuda_kernels, on_device
from ._threads import kernel_threads, num_threads, parallel_map
from ._workspace import POOL
from .cells import (
    GATES,
    NONLINEARITIES,
    direction_suffixes,
    expected_shapes,
    param_names,
)
from .kernels import lazy_module

# Imported at their first use: the kernels (and Numba) are not needed to
# import the API.
cpu = lazy_module("rnntools.kernels.cpu")
row_invariant = lazy_module("rnntools.kernels.row_invariant")

_LAYER_KEY = re.compile(
    r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(0|[1-9]\d*)(_reverse)?$"
)
_DEVICES = ("cpu", "cuda")
# Below this many forward flops per block, handing blocks to threads costs more
# than it saves (measured, LSTM forward+backward on 2 cores: 0.77 ms on one
# thread and 1.17 ms on two at 9 Mflop; even at 25 Mflop; 4.1 and 3.0 ms at
# 79 Mflop).
_MIN_FLOPS_PER_BLOCK = 15_000_000


@dataclass(frozen=True)
class _Backend:
    """Where buffers live and which kernel module runs on them."""

    kernels: ModuleType  # rnntools.kernels.cpu or rnntools.kernels.cuda
    scratch: Callable  # (shape, dtype) -> uninitialised buffer, released later
    scratch_zeros: Callable  # (shape, dtype) -> zero buffer, released later
    release: Callable  # (list of scratch buffers) -> None
    new: Callable  # (shape, dtype) -> uninitialised array that is never pooled
    copy: Callable  # array -> a copy, where it is
    to_device: Callable  # host ndarray -> kernel array (no copy on the CPU)
    to_host: Callable  # kernel array -> host ndarray (no copy on the CPU)
    add_into: Callable  # (destination, source) -> None: destination += source


def _add_into(destination, source):
    np.add(destination, source, out=destination)


_CPU = _Backend(
    kernels=cpu,
    scratch=POOL.empty,
    scratch_zeros=POOL.zeros,
    release=POOL.release,
    new=np.empty,
    copy=np.copy,
    to_device=np.ascontiguousarray,
    to_host=np.asarray,
    add_into=_add_into,
)


def _cuda_backend():
    """The CUDA backend, or a ``RuntimeError`` saying why there is none."""
    kernels = cuda_kernels()

    def nothing(arrays):
        return None

    return _Backend(
        kernels=kernels,
        scratch=kernels.empty,
        scratch_zeros=kernels.zeros,
        release=nothing,
        new=kernels.empty,
        copy=kernels.copy,
        to_device=kernels.to_device,
        to_host=kernels.to_host,
        add_into=kernels.add_into,
    )


def _backend(device):
    return _CPU if device == "cpu" else _cuda_backend()


@dataclass
class _DirectionCache:
    """What one layer and direction saved for backward (time-major)."""

    gates: np.ndarray  # (T, B, G*H) activations
    h_prev: np.ndarray  # (T, B, H); rnn: (1, B, H), rebuilt by backward
    extra: tuple  # lstm: (c_prev, tanh_c); gru: (hn,); rnn: (h0,) or ()


@dataclass
class _BlockCache:
    """One block of sequences, sorted by decreasing length."""

    backend: _Backend
    rows: object  # indices into the caller's batch: int array or slice
    lengths: np.ndarray  # (B_k,) int64, decreasing
    batch_sizes: np.ndarray  # (T,) int64: sequences longer than each step
    kernel_lengths: object = None  # ``lengths`` where the kernels run
    inputs: list = field(default_factory=list)  # per layer: (T, B_k, I_l)
    directions: list = field(default_factory=list)  # per layer: [_DirectionCache]
    buffers: list = field(default_factory=list)  # every pooled array above

    def __post_init__(self):
        self.kernel_lengths = self.backend.to_device(self.lengths)

    @cached_property
    def row_indices(self):
        """``rows`` as the kernels' ``out_rows`` (see :func:`_row_indices`),
        when the last layer writes the caller's output."""
        return _row_indices(self.rows)

    @cached_property
    def kernel_rows(self):
        """``row_indices`` where the kernels run (the GPU's gathers and
        scatters between the caller's batch-first arrays and the block)."""
        return self.backend.to_device(self.row_indices)

    @cached_property
    def valid_rows(self):
        """Indices ``t * B_k + b`` of the unpadded steps among the block's
        ``T * B_k`` time-major rows, increasing; None if none is padded."""
        steps = len(self.batch_sizes)
        if self.lengths.min() == steps:
            return None
        return np.flatnonzero(self.lengths > np.arange(steps)[:, None])

    def empty(self, shape, dtype, keep=True):
        """A scratch buffer that goes back to the pool with the cache (or,
        with ``keep=False``, when the caller releases it)."""
        array = self.backend.scratch(shape, dtype)
        if keep:
            self.buffers.append(array)
        return array

    def padded(self, shape, dtype, keep=True):
        """A scratch ``(T, B_k, ...)`` buffer that is 0 at every padded step
        (``keep`` as in :meth:`empty`).

        The kernels write every active step; only padding needs clearing, so
        a batch without padding skips the memset.
        """
        if self.lengths.min() == shape[0]:
            return self.empty(shape, dtype, keep)
        array = self.backend.scratch_zeros(shape, dtype)
        if keep:
            self.buffers.append(array)
        return array


@dataclass
class ForwardCache:
    """Everything :func:`rnn_backward` needs; returned by :func:`rnn_forward`.

    Treat it as opaque. It holds the time-major activations of every layer and
    direction, so its memory is about ``k * L * D * T * B * H`` numbers: ``k``
    is 7 for the lstm (gates, h, c, tanh c), 5 for the gru (gates, h, the
    reset product) and 1 for the rnn (its states), plus the inputs of every
    layer above the first.
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
    lengths: np.ndarray  # (B,) int64, the caller's order
    params: dict  # validated, in the compute dtype, the caller's key order
    backend: _Backend = _CPU
    kernel_params: dict = None  # ``params`` where the kernels run
    resident: bool = False  # params were device arrays: so are the gradients
    # x was a device array: so are the output, final state, d_x and d_h0.
    x_on_device: bool = False
    blocks: list = field(default_factory=list)  # [_BlockCache]
    # CPU only, during the forward call: the weights as the kernels read
    # them, packed in panels once for every block (by key; see rnn_forward).
    packed: dict = None


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


def _check_device_input(value, name, ndim, backend, dtype=None):
    """A CUDA device array given as ``x`` or ``d_output``, checked (dtype, rank,
    layout) and used in place as a Numba device array: no copy is made.

    Its values are checked finite at the unpadded steps once gathered
    time-major (padding may hold anything), by the caller.
    """
    if backend is _CPU:
        raise TypeError(
            f"{name} is a CUDA device array: pass device='cuda', or a NumPy array."
        )
    value = backend.kernels.as_device_array(value)
    if value.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {value.dtype}."
        )
    if dtype is not None and value.dtype != dtype:
        raise TypeError(
            f"{name} is a device array of dtype {value.dtype}; device arrays are "
            f"used in place, so it must have the compute dtype ({dtype})."
        )
    if value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {value.shape}.")
    if not value.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous.")
    return value


def _state_on_host(state, backend, name):
    """``initial_state`` / ``d_final_state`` with any CUDA device array copied
    to the host (states are ``L*D x B x H``: small next to the sequences)."""
    if state is None:
        return None
    parts = state if isinstance(state, (tuple, list)) else (state,)
    if not any(on_device(part) for part in parts):
        return state
    if backend is _CPU:
        raise TypeError(
            f"{name} holds a CUDA device array: pass device='cuda', or NumPy arrays."
        )
    host = [
        backend.kernels.as_device_array(part).copy_to_host()
        if on_device(part)
        else part
        for part in parts
    ]
    return type(state)(host) if isinstance(state, (tuple, list)) else host[0]


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
    num_layers = len(layers)
    if layers != set(range(num_layers)):
        missing = sorted(set(range(max(layers) + 1)) - layers)[:5]
        raise ValueError(
            f"params has keys for layers {sorted(layers)[:10]} but none for "
            f"layers {missing}: layers must be numbered 0, 1, ..., L-1."
        )
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


#: Layouts of ``params`` that :func:`_check_params` has validated: (cell,
#: bidirectional, input size, dtype, then each key and shape, in order) ->
#: (number of layers, hidden size). Only for NumPy arrays that needed no
#: cast, which a later call with the same layout then uses as they are.
_VALIDATED_LAYOUTS = {}


def _check_params(params, cell, bidirectional, input_size, dtype, backend):
    """Validate ``params`` and return them cast to ``dtype``, C-contiguous.

    CUDA device arrays (with ``device="cuda"``) are checked and used in place;
    the last value returned says whether they were.

    A layout validated before is only checked finite: the whole validation
    took a tenth of an LSTM inference at 32x50x32x64 (its Python runs with
    the caches cold, after the kernels).
    """
    layout = _params_layout(params, cell, bidirectional, input_size, dtype)
    known = _VALIDATED_LAYOUTS.get(layout)
    if known is not None and all(np.isfinite(v).all() for v in params.values()):
        return dict(params), *known, False
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
    unexpected = [key for key in params if key not in shapes]
    if unexpected:
        raise ValueError(f"params has unexpected keys {unexpected}.")
    resident = [key for key in params if on_device(params[key])]
    if resident:
        checked = _check_device_params(params, resident, shapes, dtype, backend)
        return checked, num_layers, hidden_size, True
    checked = {}
    for key in params:
        value = _check_float_array(params[key], f"params[{key!r}]")
        _check_shape(value, shapes[key], f"params[{key!r}]")
        checked[key] = _cast_finite(value, dtype, f"params[{key!r}]")
    if layout is not None and all(
        checked[key] is value for key, value in params.items()
    ):
        if len(_VALIDATED_LAYOUTS) > 256:  # many models: forget the old ones
            _VALIDATED_LAYOUTS.clear()
        _VALIDATED_LAYOUTS[layout] = (num_layers, hidden_size)
    return checked, num_layers, hidden_size, False


def _params_layout(params, cell, bidirectional, input_size, dtype):
    """The key of ``params`` in :data:`_VALIDATED_LAYOUTS`, or None where the
    arrays are not all C-contiguous NumPy arrays of ``dtype`` (in a dict)."""
    if type(params) is not dict:
        return None
    layout = [cell, bool(bidirectional), input_size, dtype]
    for key, value in params.items():
        if (
            type(value) is not np.ndarray
            or value.dtype != dtype
            or not value.flags.c_contiguous
        ):
            return None
        layout.append((key, value.shape))
    return tuple(layout)


def _check_device_params(params, resident, shapes, dtype, backend):
    """Validate parameters that are CUDA device arrays; no copy is made."""
    if backend is _CPU:
        raise TypeError(
            f"params[{resident[0]!r}] is a CUDA device array: pass "
            "device='cuda', or NumPy arrays."
        )
    host = [key for key in params if key not in resident]
    if host:
        raise TypeError(
            f"params mixes CUDA device arrays and host arrays (e.g. {host[0]!r}): "
            "pass all of them on the device or all on the host."
        )
    checked = {}
    for key in params:
        name = f"params[{key!r}]"
        value = backend.kernels.as_device_array(params[key])
        if value.dtype != dtype:
            raise TypeError(
                f"{name} is a device array of dtype {value.dtype}; device arrays "
                f"are used in place, so they must have the dtype of x ({dtype})."
            )
        _check_shape(value, shapes[key], name)
        if not value.is_c_contiguous():
            raise ValueError(f"{name} must be C-contiguous.")
        if not backend.kernels.all_finite(value):
            raise ValueError(f"{name} contains NaN or infinity.")
        checked[key] = value
    return checked


def _cast_finite(value, dtype, name):
    """``value`` as a C-contiguous ``dtype`` array, checked finite *after* the
    cast (a float64 1e39 becomes inf in float32)."""
    if not (
        type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous
    ):
        with np.errstate(over="ignore"):
            value = np.ascontiguousarray(value, dtype=dtype)
    _check_finite(value, name)
    return value


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
        checked.append(_cast_finite(part, dtype, part_name))
    return checked


def _check_device(device):
    if not isinstance(device, str) or device not in _DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}.")


#: The error of a NaN or infinity in ``x`` (at an unpadded step).
X_NOT_FINITE = "x contains NaN or infinity."


def _check_finite_valid(batch_first, lengths, name):
    """Finite check of the non-padded part of a ``(B, T, F)`` array.

    The whole array first: one pass, where gathering the valid steps copies
    them (a quarter of a 500-sequence encoder's forward); the valid part is
    gathered only when something is not finite (padding may hold anything).
    """
    if np.isfinite(batch_first).all():
        return
    steps = batch_first.shape[1]
    _check_finite(batch_first[np.arange(steps) < lengths[:, None]], name)


def _split_batch(lengths, flops_per_step, max_blocks):
    """At most ``max_blocks`` blocks of sequence indices, each sorted by
    decreasing length.

    Equal lengths give contiguous blocks (slices: cheap to gather and
    scatter); ragged batches are dealt round-robin in order of decreasing
    length, so blocks get near-equal work.
    """
    total_flops = flops_per_step * int(lengths.sum())
    affordable = total_flops // max(_MIN_FLOPS_PER_BLOCK, 1)
    blocks = int(max(1, min(max_blocks, len(lengths), affordable)))
    if lengths.min() == lengths.max():
        bounds = [k * len(lengths) // blocks for k in range(blocks + 1)]
        return [slice(lo, hi) for lo, hi in itertools.pairwise(bounds)]
    order = np.argsort(-lengths, kind="stable")
    return [order[k::blocks] for k in range(blocks)]


def _flops_per_step(cell, input_size, hidden_size, num_layers, bidirectional):
    """Forward GEMM flops of one sequence and one timestep."""
    width = GATES[cell] * hidden_size
    layer_inputs = [input_size] + [_num_directions(bidirectional) * hidden_size] * (
        num_layers - 1
    )
    per_direction = sum(2 * width * (i + hidden_size) for i in layer_inputs)
    return per_direction * _num_directions(bidirectional)


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
    return_cache=True,
):
    """Run a stacked (bidirectional) RNN, LSTM or GRU over a batch.

    Parameters
    ----------
    x : ndarray of shape (B, T, I)
        Batch-first inputs, float32 or float64; the dtype of ``x`` is the
        compute dtype and ``params`` are cast to it. Never written to. With
        ``device="cuda"`` it may be a C-contiguous CUDA device array (Numba's,
        CuPy's, a PyTorch CUDA tensor: anything with
        ``__cuda_array_interface__``), read in place: the output, final state,
        and then ``d_x`` and the initial-state gradient of
        :func:`rnn_backward`, are device arrays too.
    params : dict of str to ndarray
        PyTorch ``state_dict`` layout (see :func:`rnntools.init_params`); the
        number of layers ``L`` and ``H`` come from its keys and shapes. With
        ``device="cuda"`` the values may instead all be CUDA device arrays
        (Numba's, or anything with ``__cuda_array_interface__``) of the dtype
        of ``x``: they are used in place, never copied to the host, and
        :func:`rnn_backward` then returns the parameter gradients as device
        arrays too.
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
        Zeros if None. Device arrays are accepted with ``device="cuda"``.
    device : {"cpu", "cuda"}, default="cpu"
        Where the kernels run. ``"cuda"`` runs :mod:`rnntools.kernels.cuda`
        on the GPU (needs numba-cuda and a driver); it takes and returns NumPy
        arrays, or device arrays (see ``x`` and ``params``). The cache then
        holds device buffers, and :func:`rnn_backward` runs on the GPU too.
    return_cache : bool, default=True
        False is inference: nothing is kept for :func:`rnn_backward` (the
        kernels save no activations, so memory is the inputs, one layer's
        gates and the outputs), and ``cache`` is None. On the CPU.

    Returns
    -------
    output : ndarray of shape (B, T, D*H)
        Last layer's states, forward direction first; 0 at padded steps. A
        Numba device array when ``x`` was a device array.
    final_state : ndarray of shape (L*D, B, H), or tuple (h_n, c_n) for lstm
        State at each sequence's own last step, ordered as PyTorch orders it
        (index ``layer * D + direction``); device arrays when ``x`` was one.
    cache : ForwardCache or None
        Input of :func:`rnn_backward`; None with ``return_cache=False``.

    Raises
    ------
    TypeError, ValueError
        On malformed input, naming the problem.
    RuntimeError
        For ``device="cuda"`` without numba-cuda or without a usable GPU.

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
    backend = _backend(device)
    if not isinstance(bidirectional, (bool, np.bool_)):
        raise TypeError(
            f"bidirectional must be a bool, got {type(bidirectional).__name__}."
        )
    x_on_device = on_device(x)
    if x_on_device:
        x = _check_device_input(x, "x", 3, backend)
    else:
        x = _check_float_array(x, "x", ndim=3)
    batch, steps, input_size = x.shape
    if batch == 0 or steps == 0 or input_size == 0:
        raise ValueError(f"x must have no zero-length axis, got shape {x.shape}.")
    dtype = x.dtype
    lengths = _check_lengths(lengths, batch, steps)
    params, num_layers, hidden_size, resident = _check_params(
        params, cell, bidirectional, input_size, dtype, backend
    )
    # A device x is checked once gathered (_forward_calls), and on the CPU the
    # kernels check what they gather (_run_block): one pass fewer over x.
    if backend is not _CPU and not x_on_device:
        _check_finite_valid(x, lengths, "x")
    num_dirs = _num_directions(bidirectional)
    state_shape = (num_layers * num_dirs, batch, hidden_size)
    num_states = 2 if cell == "lstm" else 1
    initial_state = _state_on_host(initial_state, backend, "initial_state")
    if initial_state is None:
        initial = [np.zeros(state_shape, dtype=dtype) for _ in range(num_states)]
    else:
        initial = _check_state(initial_state, cell, state_shape, dtype, "initial_state")
    if backend is _CPU and not return_cache:
        output, final = _cpu_inference(
            x, lengths, params, cell, nonlinearity == "relu", bool(bidirectional),
            num_layers, hidden_size, initial,
        )  # fmt: skip
        return output, tuple(final) if cell == "lstm" else final[0], None

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
        lengths=lengths,
        params=params,
        backend=backend,
        kernel_params=(
            params
            if resident
            else {key: backend.to_device(value) for key, value in params.items()}
        ),
        resident=resident,
        x_on_device=x_on_device,
    )
    flops = _flops_per_step(cell, input_size, hidden_size, num_layers, bidirectional)
    # One GPU block holds the whole batch; CPU blocks go to threads.
    max_blocks = num_threads() if backend is _CPU else 1
    block_rows = _split_batch(lengths, flops, max_blocks)

    output_shape = (batch, steps, num_dirs * hidden_size)
    if backend is _CPU:
        output = np.empty(output_shape, dtype=dtype)
        # The first layer's kernels read x in place (see _forward_calls): one
        # array type, so one compiled kernel, whatever its strides and flags.
        x = np.require(x, requirements=("C", "A", "W"))
    else:  # batch-first on the device; x uploaded whole (gathered there)
        output = backend.new(output_shape, dtype)
        x = x if x_on_device else backend.to_device(x)
    final = [np.empty(state_shape, dtype=dtype) for _ in range(num_states)]

    # On the CPU the last layer writes ``output`` itself (each block its own
    # rows, on its own thread).
    sink = output if backend is _CPU else None

    if backend is _CPU:
        # The kernels' products read the transposed weights packed in panels:
        # packed here once per call, for all blocks (per block, an LSTM of
        # 512 units copied 4 MiB per thread).
        cache.packed = {
            key: row_invariant.pack_panels(value.T)
            for key, value in cache.kernel_params.items()
            if key.startswith("weight_")
        }
    # Every block's calls are prepared here before any runs (as in
    # inference, see _inference_calls): a worker runs only its kernels.
    prepared = [
        _forward_calls(cache, x, rows, [part[:, rows].copy() for part in initial], sink)
        for rows in block_rows
    ]
    # No kernel_threads(): the forward calls no BLAS.
    finite = parallel_map(_run_block, [calls for _, calls, _ in prepared])
    cache.blocks = []
    for rows, (block, _, finish) in zip(block_rows, prepared, strict=True):
        block_output, block_final = finish()
        if sink is None:
            backend.kernels.batch_first_into(block_output, block.kernel_rows, output)
            backend.release([block_output])
        for part, block_part in zip(final, block_final, strict=True):
            part[:, rows] = block_part
        cache.blocks.append(block)
    cache.packed = None  # backward packs its own (the cache may be shared)
    if not all(finite):
        for block in cache.blocks:
            backend.release(block.buffers)
        raise ValueError(X_NOT_FINITE)
    if x_on_device:
        final = [backend.to_device(part) for part in final]
    elif backend is not _CPU:
        output = backend.to_host(output)
    final_state = tuple(final) if cell == "lstm" else final[0]
    if not return_cache:  # on the GPU, which keeps activations all the same
        for block in cache.blocks:
            backend.release(block.buffers)
        return output, final_state, None
    for block in cache.blocks:
        weakref.finalize(cache, backend.release, block.buffers)
    return output, final_state, cache


def _forward_calls(cache, x, rows, states, sink=None):
    """Prepare every layer and direction of one block of sequences, keeping
    what backward reads: buffers, states and kernel arguments, no kernel run
    (on the GPU, the block's inputs are gathered).

    Parameters
    ----------
    cache : ForwardCache
    x : ndarray of shape (B, T, I)
        The caller's whole batch: a host array on the CPU, a device array on
        the GPU.
    rows : int ndarray of shape (B_k,) or slice
        The block's sequences in the caller's batch, sorted by decreasing
        length.
    states : list of ndarray of shape (L*D, B_k, H)
        Initial ``[h]`` or ``[h, c]``; the final state once the calls have
        run and ``finish`` has been called.
    sink : ndarray of shape (B, T, D*H), optional
        Where the last layer writes its output, rows ``rows`` (batch-first: no
        time-major copy of the whole output; backward does not read it). CPU
        only.

    Returns
    -------
    block : _BlockCache
    calls : list of (kernel, arguments)
        For :func:`_run_block`, in order.
    finish : callable
        Called once the calls have run: returns ``(output, states)``, the
        output time-major, a pooled buffer the caller releases (None with
        ``sink``).
    """
    steps = cache.steps
    backend = cache.backend
    lengths = np.ascontiguousarray(cache.lengths[rows])
    block = _BlockCache(
        backend=backend,
        rows=rows,
        lengths=lengths,
        batch_sizes=(lengths > np.arange(steps)[:, None]).sum(axis=1),
    )
    num_dirs = _num_directions(cache.bidirectional)
    if backend is _CPU:
        # The first kernel gathers the block's rows of x into this time-major
        # buffer, which backward reads: no copy of them made before it.
        layer_input = block.empty((steps, len(lengths), cache.input_size), cache.dtype)
        _zero_unreached(layer_input, lengths)
        gather = (x, block.row_indices, layer_input)
    else:
        layer_input = _time_major_block(backend, x, block, block.buffers, "x")
        if cache.x_on_device and not backend.kernels.all_finite(layer_input):
            raise ValueError(X_NOT_FINITE)
        gather = None
    calls, released, device_states = [], [], []
    for layer in range(cache.num_layers):
        last = layer == cache.num_layers - 1
        # Backward reads every layer's input, not the last layer's output:
        # with no sink, the caller releases that once it has it batch-first.
        out = (
            None
            if last and sink is not None
            else block.padded(
                (steps, len(lengths), num_dirs * cache.hidden_size),
                cache.dtype,
                keep=not last,
            )
        )
        saved = []
        for direction, suffix in enumerate(direction_suffixes(cache.bidirectional)):
            index = layer * num_dirs + direction
            state = [backend.to_device(part[index]) for part in states]
            device_states.append((index, state))
            layer_sink = sink if out is None else None
            source = gather or (layer_input, _NO_ROWS, _no_steps(layer_input))
            gather = None  # gathered once; the other direction reads layer_input
            call, direction_cache, scratch = _forward_direction(
                cache, block, layer, suffix, source, state, out, layer_sink
            )
            calls.append(call)
            released.extend(scratch)
            saved.append(direction_cache)
        block.inputs.append(layer_input)  # what backward reads
        block.directions.append(saved)
        layer_input = out

    def finish():
        backend.release(released)
        for index, state in device_states:
            for part, value in zip(states, state, strict=True):
                part[index] = backend.to_host(value)
        return layer_input, states

    return block, calls, finish


def _run_block(calls):
    """Run one block's prepared kernel calls (:func:`_inference_calls`,
    :func:`_forward_calls`), in order, on the calling thread; whether none
    met a value of ``x`` that was not finite (the CPU forward kernels check
    what they gather; the others return None)."""
    finite = True
    for kernel, arguments in calls:
        if kernel(*arguments) is False:
            finite = False
    return finite


def _time_major_block(backend, batch_first, block, buffers, name):
    """Rows ``block.rows`` of a ``(B, T, F)`` array → the block's time-major
    ``(T, B_k, F)`` kernel array, 0 at padded steps, gathered by a kernel
    (on the CPU without the GIL; the caller's array C-contiguous and
    writable there); appended to ``buffers``. On the CPU the kernel checks
    the unpadded steps finite, and a ``ValueError`` names ``name`` if not.
    """
    steps, features = batch_first.shape[1], batch_first.shape[2]
    shape = (steps, len(block.lengths), features)
    out = backend.scratch(shape, batch_first.dtype)
    buffers.append(out)
    if backend is _CPU:
        if not cpu.gather_span(batch_first, block.row_indices, block.lengths, 0, out):
            raise ValueError(f"{name} contains NaN or infinity.")
    else:
        backend.kernels.time_major(
            batch_first, block.kernel_rows, block.kernel_lengths, out
        )
    return out


#: ``inp_rows`` or ``out_rows`` of a kernel whose input or output is
#: time-major.
_NO_ROWS = np.empty(0, dtype=np.int64)


def _row_indices(rows):
    """A block's ``rows`` (slice or index array) as the C-contiguous int64
    array that the kernels take as ``inp_rows`` / ``out_rows``."""
    if isinstance(rows, slice):
        return np.arange(rows.start, rows.stop, dtype=np.int64)
    return np.ascontiguousarray(rows, dtype=np.int64)


def _zero_unreached(buffer, lengths):
    """Zeros at the steps of a ``(T, B_k, F)`` buffer that no sequence of the
    block reaches (``lengths`` decreasing).

    The CPU kernels skip a span of such steps (no input projection, no
    gather), but backward reads them: the weight gradients read every row
    where padding is a small part of the block, and the rnn's backward
    rebuilds its ``h_prev`` from its gates. Pooled buffers hold anything.
    """
    longest = int(lengths[0])
    if longest < buffer.shape[0]:
        buffer[longest:] = 0


def _no_steps(array):
    """An empty ``(0, B, F)`` array like the time-major ``array``: the
    kernels' ``inp_span`` or ``out_span`` where nothing is gathered or
    scattered."""
    return np.empty((0, *array.shape[1:]), array.dtype)


def _forward_direction(cache, block, layer, suffix, source, state, out, sink=None):
    """Prepare one layer and direction, saving what backward reads; the call
    updates ``state`` to the final state.

    One kernel call: the input projection of all ``T`` steps, then the time
    loop. The input is ``source``, the kernels' ``(inp, inp_rows,
    inp_span)``: the time-major layer input, or on the CPU the caller's
    batch-first ``x`` with the block's rows, gathered into ``inp_span`` (all
    ``T`` steps, kept for backward). The output goes to the time-major
    ``out`` or, with ``sink`` (``out`` None), to rows ``block.rows`` of the
    batch-first ``sink``, through a buffer of the steps (released once the
    calls have run: on the CPU, backward's ``d_output`` then reuses it).

    Returns
    -------
    call : (kernel, arguments)
    direction : _DirectionCache
    scratch : list of ndarray
        Pooled buffers to release once the call has run.
    """
    backend = cache.backend
    kernels = backend.kernels
    names = param_names(layer, suffix)
    w_ih, w_hh, b_ih, b_hh = (cache.kernel_params[name] for name in names)
    if backend is _CPU:
        # Transposed and packed once per call (see rnn_forward).
        w_ih, w_hh = (cache.packed[name] for name in names[:2])
    steps, batch = cache.steps, len(block.lengths)
    hidden = cache.hidden_size
    width = GATES[cache.cell] * hidden
    dtype = cache.dtype
    reverse = suffix == "_reverse"
    out_col = hidden if reverse else 0
    gates = block.empty((steps, batch, width), dtype)
    if backend is _CPU:
        _zero_unreached(gates, block.lengths)
    # Read by the weight-gradient GEMM at padded rows too: must be finite.
    # The rnn's states are its saved activations: backward rebuilds its
    # h_prev from them (kernels.rnn_previous_states), one T B H array less.
    h_prev = block.padded((1 if cache.cell == "rnn" else steps, batch, hidden), dtype)
    bias = _fused_bias(backend, cache.cell, b_ih, b_hh)
    if cache.cell == "lstm":
        c_prev = block.empty((steps, batch, hidden), dtype)
        tanh_c = block.empty((steps, batch, hidden), dtype)
        extra = (c_prev, tanh_c)
    elif cache.cell == "gru":
        b_hn = b_hh[2 * hidden :]
        hn = block.empty((steps, batch, hidden), dtype)
        extra = (hn,)
    else:  # the initial state, which the kernel overwrites
        extra = (backend.copy(state[0]),)
    if sink is None:
        target, out_rows = out, _NO_ROWS
        out_span = np.empty((0, batch, hidden), dtype)
    else:
        target, out_rows = sink, block.row_indices
        out_span = block.empty((steps, batch, hidden), dtype, keep=False)
    inputs = (*source, w_ih, bias, w_hh)
    outputs = (target, out_rows, out_span, out_col, gates)
    if cache.cell == "lstm":
        call = (kernels.lstm_forward_layer, (
            *inputs, block.kernel_lengths, block.batch_sizes, reverse,
            state[0], state[1], *outputs, h_prev, c_prev, tanh_c,
        ))  # fmt: skip
    elif cache.cell == "gru":
        call = (kernels.gru_forward_layer, (
            *inputs, b_hn, block.kernel_lengths, block.batch_sizes, reverse,
            state[0], *outputs, h_prev, hn,
        ))  # fmt: skip
    else:
        call = (kernels.rnn_forward_layer, (
            *inputs, cache.relu, block.kernel_lengths, block.batch_sizes,
            reverse, state[0], *outputs, h_prev,
        ))  # fmt: skip
    scratch = [] if sink is None else [out_span]
    return call, _DirectionCache(gates, h_prev, extra), scratch


def _fused_bias(backend, cell, b_ih, b_hh):
    """``b_ih + b_hh``, but for the GRU's ``n`` block (``b_hn`` stays inside
    the reset product), as a new array where the kernels run."""
    bias = backend.copy(b_ih)
    if cell == "gru":
        backend.add_into(bias[: 2 * (len(b_hh) // 3)], b_hh[: 2 * (len(b_hh) // 3)])
    else:
        backend.add_into(bias, b_hh)
    return bias


#: In inference, the input projection is computed this many bytes of gates at
#: a time (a span of steps), not for all ``T`` steps at once: memory then
#: holds the outputs, not ``G*H`` numbers per step and sequence. Per block of
#: sequences (thread), with the first layer's span of inputs and the last
#: layer's span of output (the kernels gather and scatter them). An LSTM
#: forward at 256x100x64x512 needs 56 MiB above its inputs (peak RSS of a
#: first call, ``compare_memory.py``), of which the output is 50; with a
#: time-major copy of all inputs and 2 MiB spans it needed 68, with 16 MiB
#: spans 104-124. Spans of 1 and 2 MiB run at the same speed.
INFERENCE_SPAN_BYTES = 2**20


@dataclass(frozen=True)
class _InferencePlan:
    """What every block of a CPU inference call shares (see
    :func:`_cpu_inference`)."""

    x: np.ndarray  # (B, T, I), C-contiguous and writable: read in place
    lengths: np.ndarray  # (B,) int64
    cell: str
    relu: bool
    suffixes: tuple  # direction_suffixes(bidirectional)
    num_layers: int
    hidden_size: int
    # Per layer and direction: (w_ih, w_hh) transposed and packed in panels
    # (pack_panels, or pack_gate_panels with ``panels``), the fused bias (in
    # the same column order), b_hn (the gru's; a view of bias_hh).
    layers: list
    panels: bool  # an LSTM run by cpu.lstm_panel_layer
    output: np.ndarray  # (B, T, D*H), written by the last layer's kernels
    final: list  # [h] or [h, c], (L*D, B, H), updated in place


def _cpu_inference(
    x, lengths, params, cell, relu, bidirectional, num_layers, hidden_size, initial
):  # fmt: skip
    """:func:`rnn_forward` with ``return_cache=False`` on the CPU, from
    validated arguments: nothing kept for backward.

    Each block of sequences (one per thread, :func:`_inference_calls`) costs
    one kernel call per layer and direction, with little Python around them:
    the first layer's kernels read their rows of ``x`` in place and the last
    layer's write theirs of the output, a span of steps at a time (see
    :data:`INFERENCE_SPAN_BYTES`). Python between a block's kernels holds the
    GIL that the other threads' blocks wait for: the LSTM at 32x50x32x64 on
    two threads took 0.52-0.55 ms through the training path's block set-up
    (pooled caches, time-major copies and output writes in NumPy, span by
    span) and 0.45 ms this way. Every block's calls are prepared here
    first (:func:`_inference_calls`), so that a worker runs its kernels as
    soon as it is handed them (2026-11-30, Xeon VM, medians of 400 calls in
    three alternated rounds: 0.98-1.00 -> 0.89-0.92 ms).

    Returns
    -------
    output : ndarray of shape (B, T, D*H)
    final : list of ndarray of shape (L*D, B, H)
        ``[h]``, or ``[h, c]`` for the lstm.
    """
    batch, steps, input_size = x.shape
    suffixes = direction_suffixes(bidirectional)
    # Per layer and direction, once for all blocks: the weights transposed
    # and packed in panels (per block, an LSTM of 512 units copied 4 MiB per
    # thread), the fused bias, b_hn.
    # A wide LSTM's gate-interleaved (cpu.lstm_panel_layer).
    panels = cell == "lstm" and cpu.gate_panels(hidden_size, x.dtype)
    layers = []
    for layer in range(num_layers):
        for suffix in suffixes:
            names = param_names(layer, suffix)
            w_ih, w_hh, b_ih, b_hh = (params[name] for name in names)
            bias = _fused_bias(_CPU, cell, b_ih, b_hh)
            if panels:
                packed = tuple(
                    row_invariant.pack_gate_panels(weight.T, hidden_size)
                    for weight in (w_ih, w_hh)
                )
                bias = row_invariant.gate_panel_bias(bias, hidden_size)
            else:
                packed = tuple(
                    row_invariant.pack_panels(weight.T) for weight in (w_ih, w_hh)
                )
            layers.append((*packed, bias, b_hh[2 * hidden_size :]))
    plan = _InferencePlan(
        # The kernels read x in place: one array type, so one compiled
        # kernel, whatever the caller's strides and flags.
        x=np.require(x, requirements=("C", "A", "W")),
        lengths=lengths,
        cell=cell,
        relu=relu,
        suffixes=suffixes,
        num_layers=num_layers,
        hidden_size=hidden_size,
        layers=layers,
        panels=panels,
        output=np.empty((batch, steps, len(suffixes) * hidden_size), dtype=x.dtype),
        final=[part.copy() for part in initial],
    )
    flops = _flops_per_step(cell, input_size, hidden_size, num_layers, bidirectional)
    # No kernel_threads(): these kernels call no BLAS (every product is on
    # the register tiles), and limiting it cost 5 us a call.
    blocks = _split_batch(lengths, flops, num_threads())
    prepared = [_inference_calls(plan, rows) for rows in blocks]
    finite = parallel_map(_run_block, [calls for calls, _, _ in prepared])
    for rows, (_, states, scratch) in zip(blocks, prepared, strict=True):
        _finish_inference_block(plan, rows, states, scratch)
    if not all(finite):
        raise ValueError(X_NOT_FINITE)
    return plan.output, plan.final


def _inference_calls(plan, rows):
    """The kernel calls of one block of sequences, every layer and direction,
    in inference, prepared (buffers, states, arguments) without running them.

    Made on the calling thread for every block before any block runs, so that
    a worker's block is its kernels only: made on the worker, its Python
    waited for the GIL while the calling thread made its own block's (at
    32x50x32x64 a worker started its kernels 85 us after the caller; 32 us
    this way, ``asv_benchmarks/profile_cpu.py``).

    Parameters
    ----------
    plan : _InferencePlan
    rows : int ndarray of shape (B_k,) or slice
        The block's sequences, sorted by decreasing length: indices into the
        caller's batch.

    Returns
    -------
    calls : list of (kernel, arguments)
        In order (a layer reads the previous one's output).
    states : list of (index, [state parts])
        Each layer and direction's state, which the calls leave final: views
        of ``plan.final`` where ``rows`` is a slice, else copies that
        :func:`_finish_inference_block` writes back.
    scratch : list of ndarray
        Pooled buffers to release once the calls have run.
    """
    x, hidden = plan.x, plan.hidden_size
    steps, input_size, dtype = x.shape[1], x.shape[2], x.dtype
    row_indices = _row_indices(rows)
    lengths = np.ascontiguousarray(plan.lengths[rows])
    batch = len(lengths)
    # Sequences longer than each step: batch minus those that end at or
    # before it.
    batch_sizes = batch - np.cumsum(np.bincount(lengths, minlength=steps + 1))[:steps]
    width = GATES[plan.cell] * hidden
    span = max(1, min(steps, INFERENCE_SPAN_BYTES // (batch * width * dtype.itemsize)))
    if plan.panels:  # no gates kept between a step's panels
        width = 0
    # Backwards in time, a span of steps is a span of times only without
    # padding: with padding, the reverse direction runs all T steps at once.
    reverse_span = span if lengths.min() == steps else steps
    num_dirs = len(plan.suffixes)
    longest = reverse_span if num_dirs == 2 else span
    # One pooled buffer for the gates, the first layer's gathered inputs and
    # the last layer's output span, and the hidden layers' outputs.
    sizes = [longest * batch * width, longest * batch * input_size,
             longest * batch * hidden]  # fmt: skip
    sizes += [steps * batch * num_dirs * hidden] * (plan.num_layers - 1)
    flat = POOL.empty((sum(sizes),), dtype)
    parts, offset = [], 0
    for size in sizes:
        parts.append(flat[offset : offset + size])
        offset += size
    gates = parts[0].reshape(longest, batch, width)
    inp_span = parts[1].reshape(longest, batch, input_size)
    out_span = parts[2].reshape(longest, batch, hidden)
    nothing = np.empty((0, batch, hidden), dtype)  # nothing saved for backward
    working = np.empty((1, batch, hidden), dtype)  # a working row
    calls, states = [], []
    layer_input, input_rows = x, row_indices
    for layer in range(plan.num_layers):
        last = layer == plan.num_layers - 1
        if last:
            out, out_rows = plan.output, row_indices
        else:
            out = parts[3 + layer].reshape(steps, batch, num_dirs * hidden)
            out_rows = _NO_ROWS
        for direction, suffix in enumerate(plan.suffixes):
            index = layer * num_dirs + direction
            reverse = suffix == "_reverse"
            w_ih, w_hh, bias, b_hn = plan.layers[index]
            count = reverse_span if reverse else span
            # Views of the final state when rows is a slice, else copies.
            state = [np.ascontiguousarray(part[index, rows]) for part in plan.final]
            states.append((index, state))
            inputs = (
                layer_input, input_rows, inp_span[: count if layer == 0 else 0],
                w_ih, bias, w_hh,
            )  # fmt: skip
            outputs = (
                out, out_rows, out_span[: count if last else 0],
                hidden if reverse else 0, gates[:count],
            )  # fmt: skip
            if plan.panels:  # an LSTM (see _cpu_inference)
                calls.append((cpu.lstm_panel_layer, (
                    *inputs, lengths, batch_sizes, reverse, state[0], state[1],
                    *outputs[:4], count,
                )))  # fmt: skip
            elif plan.cell == "lstm":
                calls.append((cpu.lstm_forward_layer, (
                    *inputs, lengths, batch_sizes, reverse, state[0], state[1],
                    *outputs, nothing, nothing, nothing,
                )))  # fmt: skip
            elif plan.cell == "gru":
                calls.append((cpu.gru_forward_layer, (
                    *inputs, b_hn, lengths, batch_sizes, reverse, state[0],
                    *outputs, nothing, working,
                )))  # fmt: skip
            else:
                calls.append((cpu.rnn_forward_layer, (
                    *inputs, plan.relu, lengths, batch_sizes, reverse, state[0],
                    *outputs, working,
                )))  # fmt: skip
        layer_input, input_rows = out, _NO_ROWS
    return calls, states, [flat]


def _finish_inference_block(plan, rows, states, scratch):
    """Write a block's final states into ``plan.final`` (where they are
    copies) and release its pooled buffers."""
    if not isinstance(rows, slice):
        for index, state in states:
            for part, value in zip(plan.final, state, strict=True):
                part[index, rows] = value
    POOL.release(scratch)


def rnn_backward(cache, d_output, d_final_state=None):
    """Backpropagation through time for :func:`rnn_forward`.

    Parameters
    ----------
    cache : ForwardCache
        As returned by :func:`rnn_forward`. Not modified: it may be reused.
    d_output : ndarray of shape (B, T, D*H)
        Gradient of the loss with respect to ``output``. Values at padded
        steps are ignored. On the GPU it may be a C-contiguous device array
        of the compute dtype, read in place.
    d_final_state : ndarray of shape (L*D, B, H), or tuple for lstm, optional
        Gradient with respect to ``final_state``; zeros if None.

    Returns
    -------
    grads : dict of str to ndarray
        Gradients of the parameters, same keys and shapes as ``params``;
        Numba device arrays when ``params`` were device arrays.
    d_x : ndarray of shape (B, T, I)
        Gradient with respect to ``x``; 0 at padded steps. A Numba device
        array when ``x`` was a device array.
    d_initial_state : ndarray of shape (L*D, B, H), or tuple (d_h0, d_c0)
        Gradient with respect to the initial state (device arrays when ``x``
        was one).
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
    backend = cache.backend
    d_output_on_device = on_device(d_output)
    if d_output_on_device:  # checked finite once gathered (run_block)
        d_output = _check_device_input(d_output, "d_output", 3, backend, dtype)
        _check_shape(d_output, (batch, steps, num_dirs * hidden), "d_output")
    else:
        d_output = _check_float_array(d_output, "d_output", ndim=3)
        _check_shape(d_output, (batch, steps, num_dirs * hidden), "d_output")
        with np.errstate(over="ignore"):  # checked finite after the cast
            d_output = d_output.astype(dtype, copy=False)
        if backend is not _CPU:  # on the CPU, as each block gathers it
            _check_finite_valid(d_output, cache.lengths, "d_output")
        else:
            # Made time-major by a kernel (see _time_major_block): one array
            # type, so one compiled kernel.
            d_output = np.require(d_output, requirements=("C", "A", "W"))
    state_shape = (cache.num_layers * num_dirs, batch, hidden)
    num_states = 2 if cache.cell == "lstm" else 1
    d_final_state = _state_on_host(d_final_state, backend, "d_final_state")
    if d_final_state is None:
        d_final = [np.zeros(state_shape, dtype=dtype) for _ in range(num_states)]
    else:
        d_final = _check_state(
            d_final_state, cache.cell, state_shape, dtype, "d_final_state"
        )

    d_x_shape = (batch, steps, cache.input_size)
    if backend is _CPU:
        d_x = np.empty(d_x_shape, dtype=dtype)
    else:  # batch-first on the device; d_output uploaded whole
        d_x = backend.new(d_x_shape, dtype)
        if not d_output_on_device:
            d_output = backend.to_device(d_output)
    d_initial = [np.empty(state_shape, dtype=dtype) for _ in range(num_states)]
    # The CPU kernels' products read w_hh packed in panels: packed here once
    # per call, for all blocks (kept off the cache, which calls may share).
    packed = (
        {
            key: row_invariant.pack_panels(value)
            for key, value in cache.kernel_params.items()
            if key.startswith("weight_hh")
        }
        if backend is _CPU
        else None
    )

    def run_block(block):
        temporaries = []
        d_out = _time_major_block(backend, d_output, block, temporaries, "d_output")
        if d_output_on_device and not backend.kernels.all_finite(d_out):
            raise ValueError("d_output contains NaN or infinity.")
        d_states = [part[:, block.rows].copy() for part in d_final]
        block_grads, block_d_x, block_d_states = _backward_block(
            cache, block, d_out, d_states, temporaries, packed
        )
        # Scattered here, on the block's own thread, in parallel (on the CPU
        # by a kernel, without the GIL: zeros at padded steps).
        if backend is _CPU:
            cpu.scatter_span(block_d_x, block.lengths, 0, d_x, block.row_indices, 0)
        else:
            backend.kernels.batch_first_into(block_d_x, block.kernel_rows, d_x)
        for part, block_part in zip(d_initial, block_d_states, strict=True):
            part[:, block.rows] = block_part
        backend.release(temporaries)
        if cache.resident:
            return block_grads
        return {key: backend.to_host(value) for key, value in block_grads.items()}

    with kernel_threads():
        results = parallel_map(run_block, cache.blocks)

    grads = results[0]
    for block_grads in results[1:]:  # in block order: deterministic
        for key, value in block_grads.items():
            grads[key] += value
    grads = {key: grads[key] for key in cache.params}
    if cache.x_on_device:
        d_initial = [backend.to_device(part) for part in d_initial]
    elif backend is not _CPU:
        d_x = backend.to_host(d_x)
    d_initial_state = tuple(d_initial) if cache.cell == "lstm" else d_initial[0]
    return grads, d_x, d_initial_state


def _backward_block(cache, block, d_out, d_states, temporaries, packed):
    """BPTT through every layer and direction of one block of sequences.

    Parameters
    ----------
    cache : ForwardCache
    block : _BlockCache
    d_out : ndarray of shape (T, B_k, D*H)
        Gradient of the block's output, zero at padded steps.
    d_states : list of ndarray of shape (L*D, B_k, H)
        Gradient of the final ``[h]`` or ``[h, c]``; overwritten with the
        gradient of the initial state.
    temporaries : list
        Pooled scratch buffers are appended; the caller releases them.
    packed : dict of str to ndarray, or None
        On the CPU, each ``weight_hh`` packed in panels by
        :func:`~rnntools.kernels.row_invariant.pack_panels` (the kernels'
        layout).

    Returns
    -------
    grads : dict of str to ndarray
    d_x : ndarray of shape (T, B_k, I)
        A pooled buffer (in ``temporaries``).
    d_states : list of ndarray
    """
    num_dirs = _num_directions(cache.bidirectional)
    backend = cache.backend
    grads = {}
    for layer in reversed(range(cache.num_layers)):
        layer_input = block.inputs[layer]
        d_inp = backend.scratch_zeros(layer_input.shape, cache.dtype)
        d_inp_direction = backend.scratch(layer_input.shape, cache.dtype)
        temporaries += [d_inp, d_inp_direction]
        for direction, suffix in enumerate(direction_suffixes(cache.bidirectional)):
            index = layer * num_dirs + direction
            d_carry = [backend.to_device(part[index]) for part in d_states]
            _backward_direction(
                cache, block, layer, direction, suffix, d_out, d_carry, grads,
                d_inp_direction, temporaries, direction == num_dirs - 1, packed,
            )  # fmt: skip
            backend.add_into(d_inp, d_inp_direction)
            for part, value in zip(d_states, d_carry, strict=True):
                part[index] = backend.to_host(value)
        d_out = d_inp
    return grads, d_out, d_states


def _backward_direction(
    cache, block, layer, direction, suffix, d_out, d_carry, grads, d_inp_direction,
    temporaries, last_reader, packed,
):  # fmt: skip
    """BPTT of one layer and direction; writes its entries of ``grads``.

    With ``last_reader``, no later direction reads ``d_out`` (one of
    ``temporaries``): it goes back to the pool as soon as the recurrence is
    done, for the rnn's rebuilt ``h_prev`` to reuse.
    """
    saved = block.directions[layer][direction]
    names = param_names(layer, suffix)
    w_ih, w_hh = (cache.kernel_params[name] for name in names[:2])
    backend = cache.backend
    kernels = backend.kernels
    if packed is not None:  # the CPU kernels' layout (see rnn_backward)
        w_hh = packed[names[1]]
    hidden = cache.hidden_size
    reverse = suffix == "_reverse"
    out_col = hidden if reverse else 0
    common = (block.kernel_lengths, block.batch_sizes, reverse)
    d_gates_ih = backend.scratch(saved.gates.shape, cache.dtype)
    temporaries.append(d_gates_ih)
    d_gates_hh = d_gates_ih
    if cache.cell == "lstm":
        c_prev, tanh_c = saved.extra
        kernels.lstm_backward_layer(
            d_out, out_col, w_hh, saved.gates, c_prev, tanh_c, *common,
            d_carry[0], d_carry[1], d_gates_ih,
        )  # fmt: skip
    elif cache.cell == "gru":
        (hn,) = saved.extra
        d_gates_hh = backend.scratch((*saved.gates.shape[:2], hidden), cache.dtype)
        temporaries.append(d_gates_hh)
        kernels.gru_backward_layer(
            d_out, out_col, w_hh, saved.gates, saved.h_prev, hn, *common,
            d_carry[0], d_gates_ih, d_gates_hh,
        )  # fmt: skip
    else:
        kernels.rnn_backward_layer(
            d_out, out_col, w_hh, saved.gates, cache.relu, *common,
            d_carry[0], d_gates_ih,
        )  # fmt: skip
    if last_reader:
        temporaries[:] = [array for array in temporaries if array is not d_out]
        backend.release([d_out])
    h_prev = saved.h_prev
    if cache.cell == "rnn":
        (h0,) = saved.extra
        h_prev = backend.scratch(saved.gates.shape, cache.dtype)
        temporaries.append(h_prev)
        kernels.rnn_previous_states(
            saved.gates, h0, block.kernel_lengths, reverse, h_prev
        )
    for name in names:
        grads[name] = backend.new(cache.params[name].shape, cache.dtype)
    kernels.layer_param_grads(
        block.inputs[layer], h_prev, w_ih, d_gates_ih, d_gates_hh,
        *(grads[name] for name in names), d_inp_direction,
        block.valid_rows,
    )  # fmt: skip


# ------------------------------------------------------ single-step inference


@dataclass(frozen=True)
class PreparedStep:
    """Weights laid out for :func:`rnn_step`; made by :func:`prepare_step`.

    Treat it as opaque and read-only; it may be shared between threads.
    """

    cell: str
    relu: bool
    num_layers: int
    hidden_size: int
    input_size: int
    dtype: np.dtype
    # The transposed weights packed in panels of W columns (pack_panels,
    # P = ceil(G*H / W) of them), the layout the row-invariant products read
    # fastest:
    w_ih0_t: np.ndarray  # (P*I, W): the first layer's weight_ih.T
    w_ih_rest_t: np.ndarray  # (L-1, P*H, W): the other layers' weight_ih.T
    w_hh_t: np.ndarray  # (L, P*H, W)
    bias: np.ndarray  # (L, G*H): bias_ih + bias_hh (gru: not the n block)
    # The cell's own arrays, None for the other cells (they select the cell
    # in the kernels: see kernels.cpu.stack_step):
    b_hn: np.ndarray | None  # (L, H): the gru's n block of bias_hh
    tanh_columns: np.ndarray | None  # (G*H,): lstm: 1 for sigmoid, 2 for g
    flops_per_row: int  # forward flops of one row and step
    scratch_width: int  # numbers of scratch per row (gates, pre)

    @cached_property
    def kernel_relu(self):
        """:func:`.kernels.cpu.stack_step`'s ``relu``: the rnn's, None for
        the other cells (it selects the cell with ``b_hn`` and
        ``tanh_columns``)."""
        return self.relu if self.cell == "rnn" else None

    @cached_property
    def no_scratch(self):
        """No rows of scratch: :func:`.kernels.cpu.state_step` allocates
        its own."""
        return np.empty((0, self.scratch_width), dtype=self.dtype)

    @cached_property
    def kernel_weights(self):
        """The weight arguments of :func:`.kernels.cpu.stack_step`, in its
        order: one tuple read per step, not six attributes."""
        return (self.w_ih0_t, self.w_ih_rest_t, self.w_hh_t, self.bias,
                self.b_hn, self.tanh_columns)  # fmt: skip


def prepare_step(params, cell, *, nonlinearity="tanh", dtype=None):
    """Validate a unidirectional stack once and lay it out for :func:`rnn_step`.

    Parameters
    ----------
    params : dict of str to ndarray
        PyTorch ``state_dict`` layout of a unidirectional network (as for
        :func:`rnn_forward`); ``L``, ``H`` and ``I`` come from its shapes.
    cell : {"rnn", "lstm", "gru"}
    nonlinearity : {"tanh", "relu"}, default="tanh"
        Activation of ``cell="rnn"``.
    dtype : {None, "float32", "float64"}, default=None
        Compute dtype; None takes the dtype of ``params['weight_hh_l0']``
        (float64 for anything that is not float32).

    Returns
    -------
    prepared : PreparedStep
        The weights transposed to ``(I, G*H)`` and ``(H, G*H)`` and packed
        in panels (:func:`~rnntools.kernels.row_invariant.pack_panels`), the
        biases fused, all C-contiguous in ``dtype``: work :func:`rnn_step`
        would otherwise repeat at every step.

    Raises
    ------
    TypeError, ValueError
        On malformed parameters, and for a bidirectional network (its reverse
        direction needs the whole sequence, which a step does not have).
    """
    _check_cell(cell, nonlinearity)
    if isinstance(params, Mapping) and any(
        isinstance(key, str) and key.endswith("_reverse") for key in params
    ):
        raise ValueError(
            "rnn_step runs unidirectional networks only: params hold a reverse "
            "direction, which needs the whole sequence (use rnn_forward)."
        )
    if dtype is None:
        reference = params.get("weight_hh_l0") if isinstance(params, Mapping) else None
        dtype = (
            np.float32
            if getattr(reference, "dtype", None) == np.float32
            else np.float64
        )
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}.")
    dtype = np.dtype(dtype)
    _infer_architecture(params, cell, False)
    w_ih_shape = np.shape(params.get("weight_ih_l0"))
    if len(w_ih_shape) != 2 or w_ih_shape[1] < 1:
        raise ValueError(
            "params['weight_ih_l0'] must have shape (G*H, I) with I >= 1, "
            f"got {w_ih_shape}."
        )
    input_size = w_ih_shape[1]
    checked, num_layers, hidden, resident = _check_params(
        params, cell, False, input_size, dtype, _CPU
    )
    if resident:  # pragma: no cover - _CPU rejects device arrays above
        raise TypeError("rnn_step runs on the CPU: pass NumPy arrays.")
    weight = [checked[f"weight_{kind}_l{layer}"] for layer in range(num_layers)
              for kind in ("ih", "hh")]  # fmt: skip
    bias = np.stack([checked[f"bias_ih_l{k}"] for k in range(num_layers)])
    b_hh = np.stack([checked[f"bias_hh_l{k}"] for k in range(num_layers)])
    width = GATES[cell] * hidden
    b_hn = tanh_columns = None
    if cell == "gru":  # b_hn stays inside the reset product
        bias[:, : 2 * hidden] += b_hh[:, : 2 * hidden]
        b_hn = np.ascontiguousarray(b_hh[:, 2 * hidden :])
    else:
        bias += b_hh
    if cell == "lstm":
        tanh_columns = np.ones(width, dtype=dtype)
        tanh_columns[2 * hidden : 3 * hidden] = 2
    return PreparedStep(
        cell=cell,
        relu=nonlinearity == "relu",
        num_layers=num_layers,
        hidden_size=hidden,
        input_size=input_size,
        dtype=dtype,
        w_ih0_t=row_invariant.pack_panels(weight[0].T),
        w_ih_rest_t=_packed_layers(weight[2::2], hidden, width, dtype),
        w_hh_t=_packed_layers(weight[1::2], hidden, width, dtype),
        bias=bias,
        b_hn=b_hn,
        tanh_columns=tanh_columns,
        flops_per_row=_flops_per_step(cell, input_size, hidden, num_layers, False),
        scratch_width=2 * width,
    )


def _packed_layers(weights, hidden, width, dtype):
    """``(n, P*H, W)``: each ``(G*H, H)`` weight of ``weights`` transposed
    and packed by :func:`~rnntools.kernels.row_invariant.pack_panels`."""
    columns = row_invariant.panel_columns(dtype)
    panels = -(-width // columns)
    packed = np.empty((len(weights), panels * hidden, columns), dtype=dtype)
    for layer, weight in enumerate(weights):
        packed[layer] = row_invariant.pack_panels(weight.T)
    return packed


_step_scratch = threading.local()


def _thread_scratch(size, dtype, purpose="step"):
    """A 1-D scratch buffer of at least ``size`` numbers, this thread's own
    for ``purpose``, kept between steps: fresh pages for a step's scratch cost
    3x the step at 500 rows (an LSTM, H = 128)."""
    buffers = getattr(_step_scratch, "buffers", None)
    if buffers is None:
        buffers = _step_scratch.buffers = {}
    key = (purpose, dtype)
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(size, dtype=dtype)
    return buffer


#: Every row continues its own state (see :func:`.kernels.cpu.stack_step`).
_NO_PARENTS = np.empty(0, dtype=np.int64)


#: A step whose scratch (``B * 2 * G*H`` numbers) is at most this many bytes
#: gets it from the kernel's allocator (a block of the allocator's free list,
#: cheaper than the lookup of a kept buffer); a larger one a kept buffer
#: (fresh pages would cost more than the step).
_ALLOCATED_SCRATCH_BYTES = 64 * 1024


def _step_scratch_rows(rows, prepared):
    """The ``scratch`` of :func:`.kernels.cpu.state_step` for ``rows`` rows:
    none (the kernel allocates it) for small batches, else this thread's
    kept buffer as ``(rows, prepared.scratch_width)``."""
    size = rows * prepared.scratch_width
    if size * prepared.dtype.itemsize <= _ALLOCATED_SCRATCH_BYTES:
        return prepared.no_scratch
    return _thread_scratch(size, prepared.dtype)[:size].reshape(
        rows, prepared.scratch_width
    )


def _step_block(prepared, x_t, parts, state_out, output):
    """One step of the whole batch into ``state_out`` and ``output``.
    Returns whether the inputs were finite."""
    return cpu.state_step(
        prepared.kernel_relu, x_t, *prepared.kernel_weights, parts[0], parts[-1],
        state_out, output, _step_scratch_rows(x_t.shape[0], prepared),
    )  # fmt: skip


def _step_rows(prepared, x_t, parts, state_out, output, rows):
    """One step of the rows ``rows`` (a slice) of the batch, into
    ``state_out`` and ``output``, through copies of the block (a thread's
    share). Returns whether the inputs were finite."""
    block = [np.ascontiguousarray(p[:, rows]) for p in parts]
    block_state = np.empty_like(state_out[:, :, rows])
    block_output = np.empty_like(output[rows])
    finite = _step_block(prepared, x_t[rows], block, block_state, block_output)
    state_out[:, :, rows] = block_state
    output[rows] = block_output
    return finite


def _step_input(x_t, dtype):
    """``x_t`` of :func:`rnn_step` checked and converted: a C-contiguous
    2-D array of ``dtype``."""
    x_t = _check_float_array(x_t, "x_t", ndim=2)
    with np.errstate(over="ignore"):  # checked finite in the kernel
        return np.ascontiguousarray(x_t, dtype=dtype)


def _step_state(state, prepared, shape):
    """``state`` of :func:`rnn_step` checked and converted: a list of ``h``
    (and ``c``), C-contiguous arrays of ``shape`` and the prepared dtype."""
    if state is None:
        zeros = np.zeros(shape, dtype=prepared.dtype)
        return [zeros] * (2 if prepared.cell == "lstm" else 1)
    return _check_state(state, prepared.cell, shape, prepared.dtype, "state")


def rnn_step(x_t, state, prepared):
    """Advance a unidirectional stack by one timestep.

    The building block of decoding (greedy, beam search, sampling) and of
    streaming prediction: feed a sequence one step at a time, keeping the
    returned state, and the outputs equal those of :func:`rnn_forward` over
    the whole sequence up to rounding (the products are summed in another
    order). Each row of the batch is computed independently and by the same
    operations whatever the batch around it, so a row's results are
    bit-identical alone and inside any batch.

    Parameters
    ----------
    x_t : ndarray of shape (B, I)
        Inputs of this step; cast to the prepared dtype.
    state : ndarray of shape (L, B, H), tuple (h, c) of them for lstm, or None
        The state after the previous step (zeros if None), in PyTorch's
        ``final_state`` layout, so ``rnn_forward``'s final state continues
        here. Never modified: reorder beams with ``state[:, index]``.
    prepared : PreparedStep
        From :func:`prepare_step`.

    Returns
    -------
    output_t : ndarray of shape (B, H)
        The last layer's new hidden state (the step's output).
    state : ndarray of shape (L, B, H), or tuple (h, c) for lstm
        The new state (new arrays).

    Raises
    ------
    TypeError, ValueError
        On a malformed input or state, naming the problem.
    """
    if not isinstance(prepared, PreparedStep):
        raise TypeError(
            "prepared must be the PreparedStep returned by prepare_step, "
            f"got {type(prepared).__name__}."
        )
    dtype = prepared.dtype
    lstm = prepared.cell == "lstm"
    # The common case first, in line (each call and attribute lookup of the
    # Python around the kernel costs 2-3x what it costs alone: the kernel
    # streams the weights through the caches and evicts the interpreter's
    # data): x_t and the state as rnn_step returned it.
    if (
        type(x_t) is not np.ndarray
        or x_t.dtype != dtype
        or x_t.ndim != 2
        or not x_t.flags.c_contiguous
    ):
        x_t = _step_input(x_t, dtype)
    batch, input_size = x_t.shape
    if batch == 0:
        raise ValueError("x_t must hold at least one row, got shape (0, ...).")
    if input_size != prepared.input_size:
        _check_shape(x_t, (batch, prepared.input_size), "x_t")
    state_shape = (prepared.num_layers, batch, prepared.hidden_size)
    if lstm:
        if (
            type(state) is tuple
            and len(state) == 2
            and type(h := state[0]) is np.ndarray
            and type(c := state[1]) is np.ndarray
            and h.dtype == dtype
            and c.dtype == dtype
            and h.shape == state_shape
            and c.shape == state_shape
            and h.flags.c_contiguous
            and c.flags.c_contiguous
        ):
            parts = state
        else:
            parts = _step_state(state, prepared, state_shape)
    elif (
        type(state) is np.ndarray
        and state.dtype == dtype
        and state.shape == state_shape
        and state.flags.c_contiguous
    ):
        parts = (state,)
    else:
        parts = _step_state(state, prepared, state_shape)
    # h (and c) in one array, and the output apart: a copy the caller owns.
    state_out = np.empty((2 if lstm else 1, *state_shape), dtype=dtype)
    output = np.empty((batch, prepared.hidden_size), dtype=dtype)
    # Large batches (beams) in blocks of rows on several threads: rows are
    # independent and row-invariant, so the bits do not change.
    if batch * prepared.flops_per_row < 2 * _MIN_FLOPS_PER_BLOCK:
        finite = _step_block(prepared, x_t, parts, state_out, output)
    else:
        blocks = _split_batch(
            np.ones(batch, dtype=np.int64), prepared.flops_per_row, num_threads()
        )
        with kernel_threads():
            finite = all(
                parallel_map(
                    lambda rows: _step_rows(
                        prepared, x_t, parts, state_out, output, rows
                    ),
                    blocks,
                )
            )
    if not finite:
        _check_finite(x_t, "x_t")
        raise ValueError("state contains NaN or infinity.")
    return output, ((state_out[0], state_out[1]) if lstm else state_out[0])
