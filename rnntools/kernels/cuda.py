"""``@cuda.jit`` kernels and their host drivers: the GPU twin of :mod:`.cpu`.

Every public function here has the name, arguments and meaning of its
counterpart in :mod:`rnntools.kernels.cpu` (``lstm_forward_layer``,
``lstm_backward_layer``, ..., ``layer_param_grads``), with device arrays in
place of NumPy arrays, so :mod:`rnntools.functional` drives both with the
same code. Like the CPU kernels they validate nothing.
Beside them are the device array helpers that the functional driver and the
estimators' training loop need (allocation, copies, sums of squares,
finiteness, and the Adam and SGD steps; see :mod:`rnntools._devices`).

Layout and conventions are the CPU's: time-major C-contiguous ``(T, B, .)``
buffers, the batch sorted by decreasing length, ``batch_sizes[s]`` (a host
array) active sequences at step ``s``, and step ``s`` of sequence ``b`` at time
``t = s`` forwards or ``t = lengths[b] - 1 - s`` in reverse.

Strategy:

- :func:`_input_projection` and :func:`layer_param_grads` are GEMMs over all
  ``T * B`` rows (and column sums for the bias gradients), run by
  :func:`_matmul` and :func:`_column_sums_into`: on cuBLAS and CuPy's
  reductions where CuPy is installed and can use the GPU (:func:`_cupy`;
  ``RNNTOOLS_CUBLAS=0`` turns it off), else on the tiled shared-memory GEMM
  :func:`_gemm` (each thread accumulating a :data:`GEMM_WORK` square of
  outputs in registers) and :func:`_column_sums`, which the simulator runs.
- The time loop has three strategies, chosen by :func:`_use_gemm_steps`
  and then :func:`_use_sequence_kernels`:

  * *a GEMM per step* (``*_gemm_step`` kernels), where cuBLAS runs and a
    step's recurrent product is large (:data:`GEMM_STEP_MIN_MACS`): per
    forward step, ``h @ w_hh.T`` over the active sequences on cuBLAS, then
    one pointwise launch; per backward step, the later step's gate gradients
    gathered into contiguous rows (:func:`_gather_step_grads`), their product
    with ``w_hh`` on cuBLAS, then the pointwise gate backward. On an H200 it
    beat the other two for LSTM and GRU at 256x50x64x1024 (LSTM
    forward+backward 45 ms against 74) and lost at 128x100x512x512 (54
    against 40): two launches per step cost 0.1-0.2 ms of host time there.

  * *sequence-resident* (``*_sequence`` kernels), while the batch fits the
    GPU in one wave of blocks: one launch per layer and direction, in which
    each block carries :data:`SEQUENCE_ROWS` sequences through every step
    (``syncthreads`` between steps; sequences never interact, so blocks need
    no grid-wide synchronisation). Its threads stride over hidden units; each
    weight loaded is used for all the block's sequences, and the weights of
    :data:`SEQUENCE_UNROLL` steps along a dot product are loaded before use.
    Backward is the mirror image, the initial-state gradient included. The
    host-side cost of a Numba launch is paid once per layer, not per step.
  * *per step* (``*_step`` kernels), for larger batches: each forward step is
    one launch in which thread ``(j, b)`` computes hidden unit ``j`` of
    sequence ``b`` -- the recurrent products of its ``G`` gate rows (the
    state row of ``b`` staged through shared memory), then the gates, the
    cell and the new state. The state is double-buffered, so no grid-wide
    synchronisation is needed. Each backward step is one launch too: thread
    ``(j, b)`` first finishes ``dL/dh`` of its unit with the recurrent
    product of the *later* step's gate gradients (``d_gates[t+1] @ w_hh``,
    already complete), then does the pointwise gate backward; one last launch
    (:func:`_initial_state_grad`) applies the recurrent product to step 0.

  Both call the same pointwise device functions (``_lstm_forward_point``,
  ...), so the gate arithmetic is written once.
- Data stays on the device across the time loop and across layers; only the
  inputs and the results cross the bus (:mod:`rnntools.functional` does that).

Kernels are compiled lazily, on first launch, for the dtypes they meet
(float32 or float64); :data:`SIGNATURES` lists the argument types the drivers
launch them with, and the test suite compiles every one to PTX
(``cuda.compile_ptx``) without a GPU. Typed constants come from
``array.dtype.type`` so float32 code never meets a float64 literal.
"""

import functools
import math
import os
import warnings

import numpy as np
from numba import config, cuda, types

#: Largest thread-block edge of the step kernels along hidden units; also the
#: width of their shared-memory staging tile.
STEP_TILE = 32
#: Thread-block edge along sequences of the step kernels.
STEP_ROWS = 8
#: Edge of the square GEMM thread block, and the depth of its shared tiles.
GEMM_TILE = 16
#: Outputs per GEMM thread along each edge: a block computes a square of
#: ``GEMM_TILE * GEMM_WORK`` outputs, each thread a ``GEMM_WORK`` square
#: strided by ``GEMM_TILE``, so every value staged in shared memory is used
#: ``GEMM_WORK`` times from a register.
GEMM_WORK = 4
#: Edge of the square of outputs of one GEMM block.
GEMM_SPAN = GEMM_TILE * GEMM_WORK
#: Threads per block of the one-dimensional elementwise kernels.
FLAT_THREADS = 256
#: Sequences per block of the sequence-resident kernels (``*_sequence``).
SEQUENCE_ROWS = 4
#: Steps along the dot products that the sequence-resident kernels load at
#: once: that many independent weight loads in flight per thread hide the
#: memory latency that would otherwise bound each step.
SEQUENCE_UNROLL = 8
#: Most threads per block of the sequence-resident kernels (their launch
#: bound: the compiler keeps their registers within what this many need).
SEQUENCE_THREADS = 512

_KERNEL = {"cache": True}
# The simulator's ``cuda.jit`` takes no launch bounds (it has no registers).
_SEQUENCE_KERNEL = (
    _KERNEL if config.ENABLE_CUDASIM else {**_KERNEL, "launch_bounds": SEQUENCE_THREADS}
)
_DEVICE = {"device": True, "cache": True}


# ------------------------------------------------------------------ helpers


@cuda.jit(**_DEVICE)
def _sigmoid(x, one):
    """Logistic function that never evaluates ``exp`` of a positive number."""
    if x >= 0:
        return one / (one + math.exp(-x))
    e = math.exp(x)
    return e / (one + e)


@cuda.jit(**_DEVICE)
def _step_time(s, b, lengths, reverse):
    return lengths[b] - 1 - s if reverse else s


@cuda.jit(**_DEVICE)
def _gate_products(h, b, row_ok, w_hh_t, j, acc):
    """``acc[q] = sum_k h[b, k] * w_hh_t[k, q * H + j]`` for every gate ``q``.

    ``h[b]`` is staged through shared memory one tile at a time. Every thread
    of the block must call it (it synchronises); ``row_ok`` says whether this
    thread's row ``b`` takes part.
    """
    tile = cuda.shared.array((STEP_ROWS, STEP_TILE), dtype=h.dtype)
    hidden = h.shape[1]
    num_gates = acc.shape[0]
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    chunk = cuda.blockDim.x
    for q in range(num_gates):
        acc[q] = 0
    for k0 in range(0, hidden, chunk):
        k = k0 + tx
        if row_ok and k < hidden:
            tile[ty, tx] = h[b, k]
        cuda.syncthreads()
        if row_ok and j < hidden:
            for kk in range(min(chunk, hidden - k0)):
                value = tile[ty, kk]
                for q in range(num_gates):
                    acc[q] += value * w_hh_t[k0 + kk, q * hidden + j]
        cuda.syncthreads()


@cuda.jit(**_DEVICE)
def _gate_grad(d_ih, d_hh, t, b, g):
    """Gradient ``g`` of the recurrent pre-activations ``h W_hh + b_hh`` at
    ``(t, b)``: ``d_hh`` holds its last ``d_hh.shape[2]`` columns, the others
    are ``d_ih``'s (the gru's ``r`` and ``z`` blocks; none for lstm and rnn,
    which pass ``d_gates`` twice)."""
    split = d_ih.shape[2] - d_hh.shape[2]
    return d_ih[t, b, g] if g < split else d_hh[t, b, g - split]


@cuda.jit(**_DEVICE)
def _recurrent_grad(d_ih, d_hh, t, b, row_ok, w_hh, j):
    """``sum_g d_gates[t, b, g] * w_hh[g, j]``, the row staged in shared
    memory, ``d_gates`` as :func:`_gate_grad` reads it.

    Every thread of the block must call it (it synchronises).
    """
    tile = cuda.shared.array((STEP_ROWS, STEP_TILE), dtype=d_hh.dtype)
    width, hidden = w_hh.shape
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    chunk = cuda.blockDim.x
    acc = d_hh.dtype.type(0)
    for g0 in range(0, width, chunk):
        g = g0 + tx
        if row_ok and g < width:
            tile[ty, tx] = _gate_grad(d_ih, d_hh, t, b, g)
        cuda.syncthreads()
        if row_ok and j < hidden:
            for gg in range(min(chunk, width - g0)):
                acc += tile[ty, gg] * w_hh[g0 + gg, j]
        cuda.syncthreads()
    return acc


@cuda.jit(**_DEVICE)
def _block_rows(lengths, rows):
    """Fill ``rows`` with this block's sequences (clamped to the batch, so
    every entry indexes a real row) and return their longest length."""
    batch = lengths.shape[0]
    first = cuda.blockIdx.x * SEQUENCE_ROWS
    steps = 0
    for r in range(SEQUENCE_ROWS):
        rows[r] = min(first + r, batch - 1)
        steps = max(steps, lengths[rows[r]])
    return steps


@cuda.jit(**_DEVICE)
def _rows_gate_products(h, rows, w_hh_t, j, acc):
    """``acc[r, q] = sum_k h[rows[r], k] * w_hh_t[k, q * H + j]`` for the
    block's rows ``r`` and every gate ``q`` (at most 4): each weight is loaded
    once and used for all :data:`SEQUENCE_ROWS` rows, and the weights of
    :data:`SEQUENCE_UNROLL` steps along ``k`` are loaded before they are used."""
    hidden = h.shape[1]
    num_gates = acc.shape[1]
    weights = cuda.local.array((SEQUENCE_UNROLL, 4), dtype=acc.dtype)
    for r in range(SEQUENCE_ROWS):
        for q in range(num_gates):
            acc[r, q] = 0
    k0 = 0
    while k0 + SEQUENCE_UNROLL <= hidden:
        for u in range(SEQUENCE_UNROLL):
            for q in range(num_gates):
                weights[u, q] = w_hh_t[k0 + u, q * hidden + j]
        for u in range(SEQUENCE_UNROLL):
            for r in range(SEQUENCE_ROWS):
                value = h[rows[r], k0 + u]
                for q in range(num_gates):
                    acc[r, q] += value * weights[u, q]
        k0 += SEQUENCE_UNROLL
    for k in range(k0, hidden):
        for q in range(num_gates):
            weight = w_hh_t[k, q * hidden + j]
            for r in range(SEQUENCE_ROWS):
                acc[r, q] += h[rows[r], k] * weight


@cuda.jit(**_DEVICE)
def _rows_recurrent_grad(d_ih, d_hh, times, rows, w_hh, j, acc):
    """``acc[r] = sum_g d_gates[times[r], rows[r], g] * w_hh[g, j]`` for the
    block's rows ``r`` (``d_gates`` as :func:`_gate_grad` reads it), each
    weight loaded once for all of them, the weights of
    :data:`SEQUENCE_UNROLL` steps along ``g`` before they are used.
    ``acc[r] = 0`` where ``times[r] < 0`` (nothing is read for that row: the
    same branch for every thread of the block)."""
    width = w_hh.shape[0]
    weights = cuda.local.array(SEQUENCE_UNROLL, dtype=acc.dtype)
    for r in range(SEQUENCE_ROWS):
        acc[r] = 0
    g0 = 0
    while g0 + SEQUENCE_UNROLL <= width:
        for u in range(SEQUENCE_UNROLL):
            weights[u] = w_hh[g0 + u, j]
        for u in range(SEQUENCE_UNROLL):
            for r in range(SEQUENCE_ROWS):
                if times[r] >= 0:
                    grad = _gate_grad(d_ih, d_hh, times[r], rows[r], g0 + u)
                    acc[r] += grad * weights[u]
        g0 += SEQUENCE_UNROLL
    for g in range(g0, width):
        weight = w_hh[g, j]
        for r in range(SEQUENCE_ROWS):
            if times[r] >= 0:
                acc[r] += _gate_grad(d_ih, d_hh, times[r], rows[r], g) * weight


@cuda.jit(**_DEVICE)
def _later_times(s, lengths, reverse, rows, times):
    """``times[r]``: the time of step ``s + 1`` of row ``rows[r]``, or -1 where
    that row has no such step (its gate gradients there are never written,
    and :func:`_rows_recurrent_grad` reads none)."""
    for r in range(SEQUENCE_ROWS):
        b = rows[r]
        times[r] = _step_time(s + 1, b, lengths, reverse) if s + 1 < lengths[b] else -1


@cuda.jit(**_DEVICE)
def _add_initial_state_grads(
    lengths, reverse, rows, w_hh, d_ih, d_hh, d_h, acc, times
):  # fmt: skip
    """``d_h[b] += d_gates[t0(b), b] @ w_hh`` for the block's sequences, at
    each one's first step (the sequence kernels' :func:`_initial_state_grad`;
    ``d_gates`` as :func:`_gate_grad` reads it)."""
    batch, hidden = d_h.shape
    first = cuda.blockIdx.x * SEQUENCE_ROWS
    for r in range(SEQUENCE_ROWS):
        times[r] = _step_time(0, rows[r], lengths, reverse)
    for j in range(cuda.threadIdx.x, hidden, cuda.blockDim.x):
        _rows_recurrent_grad(d_ih, d_hh, times, rows, w_hh, j, acc)
        for r in range(SEQUENCE_ROWS):
            if first + r < batch:
                d_h[first + r, j] += acc[r]


def _sequence_grid(batch, hidden):
    """Launch shape of a sequence-resident kernel: one block per
    :data:`SEQUENCE_ROWS` sequences, threads striding over hidden units."""
    threads = min(SEQUENCE_THREADS, 1 << max(0, (hidden - 1).bit_length()))
    return -(-batch // SEQUENCE_ROWS), threads


def _use_sequence_kernels(batch):
    """Strategy by size: the sequence-resident kernels (one launch per layer
    and direction) while their blocks fit the GPU in one wave, else one
    launch per step, which spreads a large batch over more blocks."""
    blocks = -(-batch // SEQUENCE_ROWS)
    device = cuda.get_current_device()
    return blocks <= getattr(device, "MULTIPROCESSOR_COUNT", blocks)


#: Fewest multiply-adds of one step's recurrent product (``B * G*H * H``) for
#: which the time loop runs a cuBLAS product per step (:func:`_use_gemm_steps`).
GEMM_STEP_MIN_MACS = 2**29


def _use_gemm_steps(batch, width, hidden):
    """Whether the time loop of ``batch`` sequences (``width = G*H`` gate
    rows of ``hidden`` units) runs as a cuBLAS product plus a pointwise
    launch per step (``*_gemm_step`` kernels): where :func:`_cupy` finds
    cuBLAS and a step's product is large enough to pay for two launches per
    step, which the sequence-resident kernels do not pay (they read all of
    ``w_hh`` per block and step instead)."""
    return _cupy() is not None and batch * width * hidden >= GEMM_STEP_MIN_MACS


def _step_grid(active, hidden):
    """Launch shape of a step kernel over ``active`` sequences."""
    threads_j = min(STEP_TILE, 1 << max(0, (hidden - 1).bit_length()))
    threads_b = min(STEP_ROWS, 1 << max(0, (active - 1).bit_length()))
    blocks = (-(-hidden // threads_j), -(-active // threads_b))
    return blocks, (threads_j, threads_b)


def _flat_threads(size):
    """Threads per block for ``size`` elements: a power of two, at most
    :data:`FLAT_THREADS` (small arrays get small blocks)."""
    return min(FLAT_THREADS, 1 << max(0, (size - 1).bit_length()))


def _flat_grid(size):
    threads = _flat_threads(size)
    return max(1, -(-size // threads)), threads


# ----------------------------------------------------------- array helpers


@cuda.jit(**_KERNEL)
def _fill_zero(flat):
    i = cuda.grid(1)
    if i < flat.shape[0]:
        flat[i] = 0


@cuda.jit(**_KERNEL)
def _add_into(flat, other):
    i = cuda.grid(1)
    if i < flat.shape[0]:
        flat[i] += other[i]


@cuda.jit(**_KERNEL)
def _transpose(source, destination):
    j, i = cuda.grid(2)
    if i < source.shape[0] and j < source.shape[1]:
        destination[j, i] = source[i, j]


@cuda.jit(**_KERNEL)
def _take_final(state, other, lengths):
    """``state[b] = other[b]`` where the last step of ``b`` wrote ``other``."""
    j, b = cuda.grid(2)
    if b < state.shape[0] and j < state.shape[1] and lengths[b] % 2 == 1:
        state[b, j] = other[b, j]


@cuda.jit(**_KERNEL)
def _zero_padding(buffer, lengths):
    """Set ``buffer[t, b] = 0`` for ``t >= lengths[b]``."""
    j, row = cuda.grid(2)
    steps, batch, width = buffer.shape
    if row < steps * batch and j < width:
        t = row // batch
        b = row - t * batch
        if t >= lengths[b]:
            buffer[t, b, j] = 0


@cuda.jit(**_KERNEL)
def _gather_time_major(source, rows, lengths, out):
    """``out[t, b] = source[rows[b], t]`` for ``t < lengths[b]``, else 0.

    ``source`` is batch-first ``(B, T, F)``, ``out`` time-major
    ``(T, B_k, F)``; one thread per element of ``out``, consecutive threads
    along ``F`` (coalesced reads and writes).
    """
    i = cuda.grid(1)
    steps, batch, width = out.shape
    if i < steps * batch * width:
        row = i // width
        f = i - row * width
        t = row // batch
        b = row - t * batch
        if t < lengths[b]:
            out[t, b, f] = source[rows[b], t, f]
        else:
            out[t, b, f] = 0


@cuda.jit(**_KERNEL)
def _scatter_batch_first(source, rows, out):
    """``out[rows[b], t] = source[t, b]`` for every step: time-major
    ``(T, B_k, F)`` back to rows of a batch-first ``(B, T, F)``."""
    i = cuda.grid(1)
    steps, batch, width = source.shape
    if i < steps * batch * width:
        row = i // width
        f = i - row * width
        t = row // batch
        b = row - t * batch
        out[rows[b], t, f] = source[t, b, f]


@cuda.jit(**_KERNEL)
def _column_sums(matrix, out):
    """``out[j] = matrix[:, j].sum()``."""
    j = cuda.grid(1)
    if j < matrix.shape[1]:
        acc = matrix.dtype.type(0)
        for r in range(matrix.shape[0]):
            acc += matrix[r, j]
        out[j] = acc


@cuda.jit(**_KERNEL)
def _reduce_flat(flat, count_non_finite, out):
    """``out[0]`` = sum of squares of ``flat`` in float64, or, with
    ``count_non_finite``, the number of NaN or infinite values. One block of a
    power-of-two number of threads (the tree reduction halves it)."""
    partial = cuda.shared.array(FLAT_THREADS, dtype=out.dtype)
    tid = cuda.threadIdx.x
    acc = out.dtype.type(0)
    for i in range(tid, flat.shape[0], cuda.blockDim.x):
        value = flat[i]
        if count_non_finite:
            if math.isnan(value) or math.isinf(value):
                acc += 1
        else:
            acc += out.dtype.type(value) * out.dtype.type(value)
    partial[tid] = acc
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if tid < stride:
            partial[tid] += partial[tid + stride]
        cuda.syncthreads()
        stride //= 2
    if tid == 0:
        out[0] = partial[0]


@cuda.jit(**_KERNEL)
def _scale(flat, factor):
    i = cuda.grid(1)
    if i < flat.shape[0]:
        flat[i] *= factor


@cuda.jit(**_KERNEL)
def _add_scaled(flat, other, factor):
    i = cuda.grid(1)
    if i < flat.shape[0]:
        flat[i] += factor * other[i]


@cuda.jit(**_KERNEL)
def _adam_update(param, grad, first, second, step, beta_1, beta_2, epsilon):
    """One Adam step, elementwise, as :class:`rnntools.optim.AdamOptimizer`."""
    i = cuda.grid(1)
    if i < param.shape[0]:
        one = param.dtype.type(1)
        g = grad[i]
        m = first[i] * beta_1 + (one - beta_1) * g
        v = second[i] * beta_2 + (one - beta_2) * g * g
        first[i] = m
        second[i] = v
        param[i] -= step * m / (math.sqrt(v) + epsilon)


@cuda.jit(**_KERNEL)
def _sgd_update(param, grad, velocity, learning_rate, momentum, nesterov):
    """One SGD step, elementwise, as :class:`rnntools.optim.SGDOptimizer`."""
    i = cuda.grid(1)
    if i < param.shape[0]:
        v = velocity[i] * momentum - learning_rate * grad[i]
        velocity[i] = v
        if nesterov:
            param[i] += momentum * v - learning_rate * grad[i]
        else:
            param[i] += v


def as_device_array(value):
    """A Numba device array viewing ``value`` (anything with
    ``__cuda_array_interface__``, e.g. a CuPy array); no copy."""
    if hasattr(value, "copy_to_host"):  # Numba's (or the simulator's) already
        return value
    return cuda.as_cuda_array(value)


def _flat(array):
    return array.reshape(array.size)


def sum_squares(array):
    """``float((array ** 2).sum())`` of a device array, summed in float64."""
    out = cuda.device_array(1, dtype=np.float64)
    _reduce_flat[1, _flat_threads(array.size)](_flat(array), False, out)
    return float(out.copy_to_host()[0])


def all_finite(array):
    """Whether a device array holds no NaN or infinity."""
    out = cuda.device_array(1, dtype=np.float64)
    _reduce_flat[1, _flat_threads(array.size)](_flat(array), True, out)
    return out.copy_to_host()[0] == 0


def scale(array, factor):
    """``array *= factor`` in place."""
    _scale[_flat_grid(array.size)](_flat(array), array.dtype.type(factor))


def add_scaled(array, other, factor):
    """``array += factor * other`` in place."""
    flat = _flat(array)
    _add_scaled[_flat_grid(array.size)](flat, _flat(other), array.dtype.type(factor))


def copy(array):
    """A device copy of a device array."""
    out = empty(array.shape, array.dtype)
    out.copy_to_device(array)
    return out


def adam_update(param, grad, first, second, step, beta_1, beta_2, epsilon):
    """Apply one Adam step to device arrays (``step`` bias-corrected)."""
    cast = param.dtype.type
    _adam_update[_flat_grid(param.size)](
        _flat(param), _flat(grad), _flat(first), _flat(second),
        cast(step), cast(beta_1), cast(beta_2), cast(epsilon),
    )  # fmt: skip


def sgd_update(param, grad, velocity, learning_rate, momentum, nesterov):
    """Apply one SGD step to device arrays."""
    cast = param.dtype.type
    _sgd_update[_flat_grid(param.size)](
        _flat(param), _flat(grad), _flat(velocity),
        cast(learning_rate), cast(momentum), bool(nesterov),
    )  # fmt: skip


def empty(shape, dtype):
    """An uninitialised device array.

    Taken from CuPy's memory pool where :func:`_cupy` finds CuPy (the array
    keeps the CuPy array that owns the memory; it goes back to the pool, not
    to ``cudaFree``, which would synchronise the device), else allocated by
    Numba.
    """
    cupy = _cupy()
    if cupy is not None and np.prod(shape) > 0:
        return cuda.as_cuda_array(cupy.empty(shape, dtype=dtype))
    return cuda.device_array(shape, dtype=dtype)


def zeros(shape, dtype):
    """A zero-filled device array."""
    array = empty(shape, dtype)
    flat = array.reshape(array.size)
    _fill_zero[_flat_grid(array.size)](flat)
    return array


def add_into(destination, source):
    """``destination += source`` for device arrays of one shape."""
    size = destination.size
    _add_into[_flat_grid(size)](destination.reshape(size), source.reshape(size))


def to_device(array):
    """A device copy of a host array (made C-contiguous first)."""
    array = np.ascontiguousarray(array)
    out = empty(array.shape, array.dtype)
    out.copy_to_device(array)
    return out


def time_major(source, rows, lengths, out):
    """Rows ``rows`` of a batch-first device array, time-major, 0 at padding.

    Parameters
    ----------
    source : device array of shape (B, T, F)
    rows : device int64 array of shape (B_k,)
        Which sequences of ``source``, in the block's order.
    lengths : device int64 array of shape (B_k,)
        Their lengths.
    out : device array of shape (T, B_k, F)
        Output; returned.
    """
    _gather_time_major[_flat_grid(out.size)](source, rows, lengths, out)
    return out


def batch_first_into(source, rows, out):
    """Write a time-major ``(T, B_k, F)`` device array into rows ``rows`` of
    the batch-first ``(B, T, F)`` device array ``out`` (all ``T`` steps)."""
    _scatter_batch_first[_flat_grid(source.size)](source, rows, out)


def to_host(array):
    """A host copy of a device array."""
    return array.copy_to_host()


def _transposed(matrix):
    rows, cols = matrix.shape
    out = cuda.device_array((cols, rows), dtype=matrix.dtype)
    grid = (-(-cols // GEMM_TILE), -(-rows // GEMM_TILE))
    _transpose[grid, (GEMM_TILE, GEMM_TILE)](matrix, out)
    return out


def _take_final_state(state, other, lengths):
    batch, hidden = state.shape
    grid = (-(-hidden // GEMM_TILE), -(-batch // GEMM_TILE))
    _take_final[grid, (GEMM_TILE, GEMM_TILE)](state, other, lengths)


def _zero_padding_of(buffer, lengths):
    steps, batch, width = buffer.shape
    grid = (-(-width // GEMM_TILE), -(-(steps * batch) // GEMM_TILE))
    _zero_padding[grid, (GEMM_TILE, GEMM_TILE)](buffer, lengths)


# ------------------------------------------------------------------- GEMM


@cuda.jit(**_KERNEL)
def _gemm(a, b, bias, c, transpose_a, transpose_b, add_bias):
    """``c = op(a) @ op(b) (+ bias)``, with ``op`` an optional transpose.

    ``c`` is ``(M, N)``; ``op(a)`` is ``(M, K)``, ``op(b)`` is ``(K, N)``;
    ``bias`` is ``(N,)`` (read only when ``add_bias``). Square thread blocks
    of :data:`GEMM_TILE` threads a side, each block computing a square of
    :data:`GEMM_SPAN` outputs. Per step of :data:`GEMM_TILE` along
    ``K`` the block stages that slice of ``op(a)`` and of ``op(b)`` in shared
    memory (reading along whichever axis is contiguous in global memory), and
    each thread accumulates its ``GEMM_WORK`` square in registers.
    """
    span = GEMM_SPAN
    tile_a = cuda.shared.array((GEMM_TILE, GEMM_SPAN), dtype=c.dtype)
    tile_b = cuda.shared.array((GEMM_TILE, GEMM_SPAN), dtype=c.dtype)
    acc = cuda.local.array((GEMM_WORK, GEMM_WORK), dtype=c.dtype)
    frag_a = cuda.local.array(GEMM_WORK, dtype=c.dtype)
    frag_b = cuda.local.array(GEMM_WORK, dtype=c.dtype)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    thread = ty * GEMM_TILE + tx
    row0 = cuda.blockIdx.y * span
    col0 = cuda.blockIdx.x * span
    rows, cols = c.shape
    depth = a.shape[0] if transpose_a else a.shape[1]
    zero = c.dtype.type(0)
    for i in range(GEMM_WORK):
        for jj in range(GEMM_WORK):
            acc[i, jj] = zero
    for k0 in range(0, depth, GEMM_TILE):
        # Stage op(a)[row0:row0+span, k0:k0+GEMM_TILE] as tile_a[k, m] and
        # op(b)[k0:k0+GEMM_TILE, col0:col0+span] as tile_b[k, n].
        for load in range(GEMM_WORK):
            flat = thread + load * GEMM_TILE * GEMM_TILE
            if transpose_a:  # a is (K, M): consecutive threads along M
                kk, mm = flat // span, flat % span
            else:  # a is (M, K): consecutive threads along K
                mm, kk = flat // GEMM_TILE, flat % GEMM_TILE
            m, k = row0 + mm, k0 + kk
            value = zero
            if m < rows and k < depth:
                value = a[k, m] if transpose_a else a[m, k]
            tile_a[kk, mm] = value
            if transpose_b:  # b is (N, K): consecutive threads along K
                nn, kk = flat // GEMM_TILE, flat % GEMM_TILE
            else:  # b is (K, N): consecutive threads along N
                kk, nn = flat // span, flat % span
            n, k = col0 + nn, k0 + kk
            value = zero
            if n < cols and k < depth:
                value = b[n, k] if transpose_b else b[k, n]
            tile_b[kk, nn] = value
        cuda.syncthreads()
        for kk in range(GEMM_TILE):
            for i in range(GEMM_WORK):
                frag_a[i] = tile_a[kk, ty + i * GEMM_TILE]
                frag_b[i] = tile_b[kk, tx + i * GEMM_TILE]
            for i in range(GEMM_WORK):
                for jj in range(GEMM_WORK):
                    acc[i, jj] += frag_a[i] * frag_b[jj]
        cuda.syncthreads()
    for i in range(GEMM_WORK):
        row = row0 + ty + i * GEMM_TILE
        for jj in range(GEMM_WORK):
            col = col0 + tx + jj * GEMM_TILE
            if row < rows and col < cols:
                value = acc[i, jj]
                if add_bias:
                    value += bias[col]
                c[row, col] = value


# ----------------------------------------------------------- cuBLAS (CuPy)


@functools.cache
def _cupy():
    """CuPy, through which :func:`_matmul` and :func:`_column_sums_into` run
    on cuBLAS and CuPy's reductions; None where they run on the Numba kernels
    above instead: under the simulator, where CuPy is not installed or cannot
    use the GPU (with a warning saying why), or with ``RNNTOOLS_CUBLAS=0``."""
    if config.ENABLE_CUDASIM or os.environ.get("RNNTOOLS_CUBLAS", "1") == "0":
        return None
    try:
        import cupy
    except ImportError:
        return None
    try:
        cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.device.get_cublas_handle()
    except Exception as exc:  # installed for another CUDA, no device, ...
        warnings.warn(
            f"CuPy {cupy.__version__} cannot run cuBLAS here "
            f"({type(exc).__name__}: {exc}); device='cuda' uses its own, slower "
            "matrix products. Install the cupy-cudaXXx wheel of your CUDA major "
            "version, or set RNNTOOLS_CUBLAS=0 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return cupy


def _cupy_view(cupy, array):
    """A CuPy array over the memory of a C-contiguous Numba device array.

    Made without a CUDA call: CuPy's own import through
    ``__cuda_array_interface__`` asks the driver which device owns the
    pointer (``cudaPointerGetAttributes``). On an H200 machine, with three
    such imports per product, a time loop of a cuBLAS product per step took
    0.33 ms per step more than one of a Numba launch per step (LSTM
    4x100x256x256); with views made once per loop, 0.08 ms more.
    """
    pointer = array.__cuda_array_interface__["data"][0]
    memory = cupy.cuda.UnownedMemory(
        pointer, array.size * array.dtype.itemsize, array, cupy.cuda.runtime.getDevice()
    )
    return cupy.ndarray(
        array.shape, array.dtype, cupy.cuda.MemoryPointer(memory, 0), array.strides
    )


def products_library():
    """Where the large products and the bias sums run: ``"cuBLAS (CuPy X)"``
    or ``"Numba GEMM"`` (see :func:`_cupy`)."""
    cupy = _cupy()
    return "Numba GEMM" if cupy is None else f"cuBLAS (CuPy {cupy.__version__})"


def _matmul(a, b, c, transpose_a=False, transpose_b=False, bias=None):
    """``c = op(a) @ op(b) (+ bias)`` for C-contiguous 2-D device arrays.

    On cuBLAS through CuPy where :func:`_cupy` finds it (on views of the
    arrays made by :func:`_cupy_view`, no copy; both libraries launch on the
    legacy default stream, so the order of work is kept), else on
    :func:`_gemm`. float32 stays IEEE float32 (CuPy uses TF32 only when
    ``CUPY_TF32=1``).
    """
    cupy = _cupy()
    if cupy is not None:
        op_a, op_b, out = (_cupy_view(cupy, array) for array in (a, b, c))
        op_a = op_a.T if transpose_a else op_a
        op_b = op_b.T if transpose_b else op_b
        cupy.matmul(op_a, op_b, out=out)
        if bias is not None:
            out += _cupy_view(cupy, bias)
        return
    rows, cols = c.shape
    grid = (-(-cols // GEMM_SPAN), -(-rows // GEMM_SPAN))
    add_bias = bias is not None
    _gemm[grid, (GEMM_TILE, GEMM_TILE)](
        a, b, bias if add_bias else c[0], c, transpose_a, transpose_b, add_bias
    )


def _input_projection(inp, w_ih, bias, gates):
    """``gates[t, b] = w_ih @ inp[t, b] + bias`` for all timesteps in one GEMM.

    Parameters
    ----------
    inp : device array of shape (T, B, I)
    w_ih : device array of shape (G*H, I)
    bias : device array of shape (G*H,)
    gates : device array of shape (T, B, G*H)
        Output.
    """
    steps, batch, features = inp.shape
    rows = steps * batch
    _matmul(
        inp.reshape(rows, features),
        w_ih,
        gates.reshape(rows, gates.shape[2]),
        transpose_b=True,
        bias=bias,
    )


def _project_layer(inp, inp_rows, w_ih, bias, gates, out_rows):
    """The input projection that starts a forward layer.

    On the GPU a layer's input and output are always time-major and whole
    (the driver keeps every activation for backward), so the CPU kernels'
    spans, gathers and scatters (``inp_rows``, ``out_rows``, ``S < T``) never
    arise; they are refused rather than computed wrongly.
    """
    if len(inp_rows) or len(out_rows) or gates.shape[0] != inp.shape[0]:
        raise ValueError(
            "the CUDA forward kernels take time-major layers of all T steps only."
        )
    _input_projection(inp, w_ih, bias, gates)


# ------------------------------------------- time loop on a GEMM per step


@cuda.jit(**_KERNEL)
def _gather_step_grads(s, active, lengths, reverse, d_ih, d_hh, out):
    """``out[b] = d_gates[t, b]`` at step ``s`` of each of the first
    ``active`` sequences (``d_gates`` as :func:`_gate_grad` reads it): the
    gradient rows of one step, contiguous for the recurrent product."""
    g, b = cuda.grid(2)
    if b < active and g < out.shape[1]:
        out[b, g] = _gate_grad(d_ih, d_hh, _step_time(s, b, lengths, reverse), b, g)


def _row_products(sources, weight, out, transpose_b):
    """``product(k, rows)`` computes ``out[:rows] = sources[k][:rows] @
    op(weight)`` (:func:`_matmul`), for a time loop: on cuBLAS every array is
    wrapped for CuPy once, here, not at every step."""
    cupy = _cupy()
    if cupy is None:
        return lambda k, rows: _matmul(
            sources[k][:rows], weight, out[:rows], transpose_b=transpose_b
        )
    views = [_cupy_view(cupy, source) for source in sources]
    weight_view = _cupy_view(cupy, weight)
    weight_view = weight_view.T if transpose_b else weight_view
    out_view = _cupy_view(cupy, out)
    return lambda k, rows: cupy.matmul(
        views[k][:rows], weight_view, out=out_view[:rows]
    )


def _forward_gemm_steps(
    step_kernel, w_hh, buffers, batch_sizes, lengths, reverse, before, after
):  # fmt: skip
    """The forward time loop, per step: ``products = h @ w_hh.T`` over the
    active sequences (:func:`_matmul`: cuBLAS), then ``step_kernel(s, active,
    lengths, reverse, products, *before, h, h_next, *after)`` does the gates.
    ``buffers`` is the double-buffered state ``(h, h_other)``."""
    batch, hidden = buffers[0].shape
    products = empty((batch, w_hh.shape[0]), buffers[0].dtype)
    product = _row_products(buffers, w_hh, products, transpose_b=True)
    for s in range(len(batch_sizes)):
        active = int(batch_sizes[s])
        if active == 0:
            break
        h, h_next = buffers[s % 2], buffers[(s + 1) % 2]
        product(s % 2, active)
        grid, block = _step_grid(active, hidden)
        step_kernel[grid, block](
            s, active, lengths, reverse, products, *before, h, h_next, *after
        )


def _backward_gemm_steps(
    step_kernel, w_hh, d_ih, d_hh, d_h, lengths, batch_sizes, reverse, args
):  # fmt: skip
    """BPTT's time loop, per step from the last: the later step's gate
    gradients gathered (:func:`_gather_step_grads`), ``recurrent = that @
    w_hh`` (:func:`_matmul`: cuBLAS), then ``step_kernel(s, active,
    later_active, recurrent, lengths, reverse, *args)``, where rows ``b >=
    later_active`` have no later step. Last, the initial-state gradient:
    ``d_h += (first step's gate gradients) @ w_hh``."""
    batch, hidden = d_h.shape
    width = w_hh.shape[0]
    later = empty((batch, width), d_h.dtype)
    recurrent = empty((batch, hidden), d_h.dtype)
    product = _row_products((later,), w_hh, recurrent, transpose_b=False)
    later_active = 0
    for s in range(len(batch_sizes) - 1, -1, -1):
        active = int(batch_sizes[s])
        if active == 0:
            continue
        if later_active:
            grid, block = _step_grid(later_active, width)
            _gather_step_grads[grid, block](
                s + 1, later_active, lengths, reverse, d_ih, d_hh, later
            )
            product(0, later_active)
        grid, block = _step_grid(active, hidden)
        step_kernel[grid, block](
            s, active, later_active, recurrent, lengths, reverse, *args
        )
        later_active = active
    grid, block = _step_grid(batch, width)
    _gather_step_grads[grid, block](0, batch, lengths, reverse, d_ih, d_hh, later)
    product(0, batch)
    add_into(d_h, recurrent)


# --------------------------------------------------------------------- LSTM


@cuda.jit(**_DEVICE)
def _lstm_forward_point(
    t, b, j, pre_i, pre_f, pre_g, pre_o, h, h_next, c, out, out_col,
    gates, h_prev, c_prev, tanh_c,
):  # fmt: skip
    """Unit ``j`` of sequence ``b`` at time ``t``, given the recurrent products
    ``pre_*`` of its four gate rows: gates, cell, new state."""
    one = gates.dtype.type(1)
    hidden = h.shape[1]
    row = gates[t, b]
    i_gate = _sigmoid(pre_i + row[j], one)
    f_gate = _sigmoid(pre_f + row[hidden + j], one)
    g_gate = math.tanh(pre_g + row[2 * hidden + j])
    o_gate = _sigmoid(pre_o + row[3 * hidden + j], one)
    row[j] = i_gate
    row[hidden + j] = f_gate
    row[2 * hidden + j] = g_gate
    row[3 * hidden + j] = o_gate
    h_prev[t, b, j] = h[b, j]
    c_old = c[b, j]
    c_prev[t, b, j] = c_old
    c_new = f_gate * c_old + i_gate * g_gate
    c[b, j] = c_new
    tc = math.tanh(c_new)
    tanh_c[t, b, j] = tc
    h_new = o_gate * tc
    h_next[b, j] = h_new
    out[t, b, out_col + j] = h_new


@cuda.jit(**_KERNEL)
def _lstm_forward_step(
    s, active, lengths, reverse, w_hh_t, h, h_next, c, out, out_col,
    gates, h_prev, c_prev, tanh_c,
):  # fmt: skip
    j, b = cuda.grid(2)
    row_ok = b < active
    acc = cuda.local.array(4, dtype=gates.dtype)
    _gate_products(h, b, row_ok, w_hh_t, j, acc)
    if not row_ok or j >= h.shape[1]:
        return
    _lstm_forward_point(
        _step_time(s, b, lengths, reverse), b, j, acc[0], acc[1], acc[2], acc[3],
        h, h_next, c, out, out_col, gates, h_prev, c_prev, tanh_c,
    )  # fmt: skip


@cuda.jit(**_KERNEL)
def _lstm_forward_gemm_step(
    s, active, lengths, reverse, products, h, h_next, c, out, out_col,
    gates, h_prev, c_prev, tanh_c,
):  # fmt: skip
    """The gates of step ``s``, the recurrent products given (one row per
    active sequence)."""
    j, b = cuda.grid(2)
    hidden = h.shape[1]
    if b < active and j < hidden:
        _lstm_forward_point(
            _step_time(s, b, lengths, reverse), b, j, products[b, j],
            products[b, hidden + j], products[b, 2 * hidden + j],
            products[b, 3 * hidden + j], h, h_next, c, out, out_col, gates,
            h_prev, c_prev, tanh_c,
        )  # fmt: skip


@cuda.jit(**_SEQUENCE_KERNEL)
def _lstm_forward_sequence(
    lengths, reverse, w_hh_t, h, h_other, c, out, out_col,
    gates, h_prev, c_prev, tanh_c,
):  # fmt: skip
    """The whole time loop of :data:`SEQUENCE_ROWS` sequences in one block."""
    batch, hidden = h.shape
    first = cuda.blockIdx.x * SEQUENCE_ROWS
    rows = cuda.local.array(SEQUENCE_ROWS, dtype=types.int64)
    acc = cuda.local.array((SEQUENCE_ROWS, 4), dtype=gates.dtype)
    steps = _block_rows(lengths, rows)
    for s in range(steps):
        current = h if s % 2 == 0 else h_other
        following = h_other if s % 2 == 0 else h
        for j in range(cuda.threadIdx.x, hidden, cuda.blockDim.x):
            _rows_gate_products(current, rows, w_hh_t, j, acc)
            for r in range(SEQUENCE_ROWS):
                b = first + r
                if b < batch and s < lengths[b]:
                    _lstm_forward_point(
                        _step_time(s, b, lengths, reverse), b, j,
                        acc[r, 0], acc[r, 1], acc[r, 2], acc[r, 3],
                        current, following, c, out, out_col, gates, h_prev,
                        c_prev, tanh_c,
                    )  # fmt: skip
        cuda.syncthreads()


def lstm_forward_layer(
    inp, inp_rows, inp_span, w_ih, bias, w_hh, lengths, batch_sizes, reverse,
    h, c, out, out_rows, out_span, out_col, gates, h_prev, c_prev, tanh_c,
):  # fmt: skip
    """LSTM over one layer and direction: the input projection, then the time
    loop in one launch in all, or one per step (see
    :func:`_use_sequence_kernels`).

    Arguments as in :func:`rnntools.kernels.cpu.lstm_forward_layer`, as device
    arrays, except ``batch_sizes``, a host int64 array (it sizes the grids),
    and the host arrays ``inp_rows`` and ``out_rows``, which must be empty
    (``inp_span`` and ``out_span`` are not used; see :func:`_project_layer`).
    """
    _project_layer(inp, inp_rows, w_ih, bias, gates, out_rows)
    buffers = (h, cuda.device_array_like(h))
    batch, hidden = h.shape
    if _use_gemm_steps(batch, w_hh.shape[0], hidden):
        _forward_gemm_steps(
            _lstm_forward_gemm_step, w_hh, buffers, batch_sizes, lengths, reverse,
            (), (c, out, out_col, gates, h_prev, c_prev, tanh_c),
        )  # fmt: skip
        _take_final_state(h, buffers[1], lengths)
        return
    w_hh_t = _transposed(w_hh)
    if _use_sequence_kernels(batch):
        _lstm_forward_sequence[_sequence_grid(batch, hidden)](
            lengths, reverse, w_hh_t, h, buffers[1], c, out, out_col, gates,
            h_prev, c_prev, tanh_c,
        )  # fmt: skip
    else:
        for s in range(gates.shape[0]):
            active = int(batch_sizes[s])
            if active == 0:
                break
            grid, block = _step_grid(active, hidden)
            _lstm_forward_step[grid, block](
                s, active, lengths, reverse, w_hh_t, buffers[s % 2],
                buffers[(s + 1) % 2], c, out, out_col, gates, h_prev, c_prev,
                tanh_c,
            )  # fmt: skip
    _take_final_state(h, buffers[1], lengths)


@cuda.jit(**_DEVICE)
def _lstm_backward_point(
    t, b, j, recurrent, d_out, out_col, gates, c_prev, tanh_c, d_h, d_c, d_gates,
):  # fmt: skip
    """Gate backward of unit ``j`` of sequence ``b`` at time ``t``, given the
    recurrent gradient from the later step."""
    one = gates.dtype.type(1)
    hidden = d_h.shape[1]
    row = gates[t, b]
    i_gate = row[j]
    f_gate = row[hidden + j]
    g_gate = row[2 * hidden + j]
    o_gate = row[3 * hidden + j]
    tc = tanh_c[t, b, j]
    dh = d_h[b, j] + d_out[t, b, out_col + j] + recurrent
    dc = d_c[b, j] + dh * o_gate * (one - tc * tc)
    d_row = d_gates[t, b]
    d_row[j] = dc * g_gate * i_gate * (one - i_gate)
    d_row[hidden + j] = dc * c_prev[t, b, j] * f_gate * (one - f_gate)
    d_row[2 * hidden + j] = dc * i_gate * (one - g_gate * g_gate)
    d_row[3 * hidden + j] = dh * tc * o_gate * (one - o_gate)
    d_c[b, j] = dc * f_gate
    d_h[b, j] = 0


@cuda.jit(**_KERNEL)
def _lstm_backward_step(
    s, active, lengths, reverse, w_hh, d_out, out_col, gates, c_prev, tanh_c,
    d_h, d_c, d_gates,
):  # fmt: skip
    j, b = cuda.grid(2)
    row_ok = b < active
    later = row_ok and s + 1 < lengths[b]
    t_later = _step_time(s + 1, b, lengths, reverse) if later else 0
    recurrent = _recurrent_grad(d_gates, d_gates, t_later, b, later, w_hh, j)
    if not row_ok or j >= d_h.shape[1]:
        return
    _lstm_backward_point(
        _step_time(s, b, lengths, reverse), b, j, recurrent, d_out, out_col,
        gates, c_prev, tanh_c, d_h, d_c, d_gates,
    )  # fmt: skip


@cuda.jit(**_KERNEL)
def _lstm_backward_gemm_step(
    s, active, later_active, recurrent, lengths, reverse, d_out, out_col, gates,
    c_prev, tanh_c, d_h, d_c, d_gates,
):  # fmt: skip
    """The gate backward of step ``s``, the recurrent gradients given (rows
    ``b < later_active``; the others have no later step)."""
    j, b = cuda.grid(2)
    if b < active and j < d_h.shape[1]:
        later = recurrent[b, j] if b < later_active else recurrent.dtype.type(0)
        _lstm_backward_point(
            _step_time(s, b, lengths, reverse), b, j, later, d_out, out_col,
            gates, c_prev, tanh_c, d_h, d_c, d_gates,
        )  # fmt: skip


@cuda.jit(**_SEQUENCE_KERNEL)
def _lstm_backward_sequence(
    lengths, reverse, w_hh, d_out, out_col, gates, c_prev, tanh_c,
    d_h, d_c, d_gates,
):  # fmt: skip
    """BPTT of :data:`SEQUENCE_ROWS` sequences in one block, the initial-state
    gradient included."""
    batch, hidden = d_h.shape
    first = cuda.blockIdx.x * SEQUENCE_ROWS
    rows = cuda.local.array(SEQUENCE_ROWS, dtype=types.int64)
    times = cuda.local.array(SEQUENCE_ROWS, dtype=types.int64)
    acc = cuda.local.array(SEQUENCE_ROWS, dtype=gates.dtype)
    steps = _block_rows(lengths, rows)
    for s in range(steps - 1, -1, -1):
        _later_times(s, lengths, reverse, rows, times)
        for j in range(cuda.threadIdx.x, hidden, cuda.blockDim.x):
            _rows_recurrent_grad(d_gates, d_gates, times, rows, w_hh, j, acc)
            for r in range(SEQUENCE_ROWS):
                b = first + r
                if b < batch and s < lengths[b]:
                    recurrent = acc[r] if s + 1 < lengths[b] else acc.dtype.type(0)
                    _lstm_backward_point(
                        _step_time(s, b, lengths, reverse), b, j, recurrent,
                        d_out, out_col, gates, c_prev, tanh_c, d_h, d_c, d_gates,
                    )  # fmt: skip
        cuda.syncthreads()
    _add_initial_state_grads(
        lengths, reverse, rows, w_hh, d_gates, d_gates, d_h, acc, times
    )


@cuda.jit(**_KERNEL)
def _initial_state_grad(lengths, reverse, w_hh, d_ih, d_hh, d_h):
    """``d_h[b] += d_gates[t0(b), b] @ w_hh`` at each sequence's first step
    (``d_gates`` as :func:`_gate_grad` reads it)."""
    j, b = cuda.grid(2)
    row_ok = b < d_h.shape[0]
    t_first = _step_time(0, b, lengths, reverse) if row_ok else 0
    recurrent = _recurrent_grad(d_ih, d_hh, t_first, b, row_ok, w_hh, j)
    if row_ok and j < d_h.shape[1]:
        d_h[b, j] += recurrent


def _finish_backward(lengths, reverse, w_hh, d_ih, d_hh, d_h):
    batch, hidden = d_h.shape
    grid, block = _step_grid(batch, hidden)
    _initial_state_grad[grid, block](lengths, reverse, w_hh, d_ih, d_hh, d_h)


def lstm_backward_layer(
    d_out, out_col, w_hh, gates, c_prev, tanh_c, lengths, batch_sizes, reverse,
    d_h, d_c, d_gates,
):  # fmt: skip
    """BPTT through one LSTM layer and direction: one launch in all, or one
    per step (see :func:`_use_sequence_kernels`).

    Arguments as in :func:`rnntools.kernels.cpu.lstm_backward_layer`, as
    device arrays, except ``batch_sizes``, a host int64 array.
    """
    batch, hidden = d_h.shape
    if _use_gemm_steps(batch, w_hh.shape[0], hidden):
        _backward_gemm_steps(
            _lstm_backward_gemm_step, w_hh, d_gates, d_gates, d_h, lengths,
            batch_sizes, reverse,
            (d_out, out_col, gates, c_prev, tanh_c, d_h, d_c, d_gates),
        )  # fmt: skip
    elif _use_sequence_kernels(batch):
        _lstm_backward_sequence[_sequence_grid(batch, hidden)](
            lengths, reverse, w_hh, d_out, out_col, gates, c_prev, tanh_c, d_h,
            d_c, d_gates,
        )  # fmt: skip
    else:
        for s in range(gates.shape[0] - 1, -1, -1):
            active = int(batch_sizes[s])
            if active == 0:
                continue
            grid, block = _step_grid(active, hidden)
            _lstm_backward_step[grid, block](
                s, active, lengths, reverse, w_hh, d_out, out_col, gates, c_prev,
                tanh_c, d_h, d_c, d_gates,
            )  # fmt: skip
        _finish_backward(lengths, reverse, w_hh, d_gates, d_gates, d_h)
    _zero_padding_of(d_gates, lengths)


# ---------------------------------------------------------------------- GRU


@cuda.jit(**_DEVICE)
def _gru_forward_point(
    t, b, j, pre_r, pre_z, pre_n, b_hn, h, h_next, out, out_col, gates, h_prev, hn,
):  # fmt: skip
    """Unit ``j`` of sequence ``b`` at time ``t``, given the recurrent products
    ``pre_*`` of its three gate rows (``b_hn`` not yet added)."""
    one = gates.dtype.type(1)
    hidden = h.shape[1]
    row = gates[t, b]
    r_gate = _sigmoid(pre_r + row[j], one)
    z_gate = _sigmoid(pre_z + row[hidden + j], one)
    recurrent_n = pre_n + b_hn[j]
    n_gate = math.tanh(row[2 * hidden + j] + r_gate * recurrent_n)
    row[j] = r_gate
    row[hidden + j] = z_gate
    row[2 * hidden + j] = n_gate
    hn[t, b, j] = recurrent_n
    h_old = h[b, j]
    h_prev[t, b, j] = h_old
    h_new = n_gate + z_gate * (h_old - n_gate)
    h_next[b, j] = h_new
    out[t, b, out_col + j] = h_new


@cuda.jit(**_KERNEL)
def _gru_forward_step(
    s, active, lengths, reverse, w_hh_t, b_hn, h, h_next, out, out_col,
    gates, h_prev, hn,
):  # fmt: skip
    j, b = cuda.grid(2)
    row_ok = b < active
    acc = cuda.local.array(3, dtype=gates.dtype)
    _gate_products(h, b, row_ok, w_hh_t, j, acc)
    if not row_ok or j >= h.shape[1]:
        return
    _gru_forward_point(
        _step_time(s, b, lengths, reverse), b, j, acc[0], acc[1], acc[2], b_hn,
        h, h_next, out, out_col, gates, h_prev, hn,
    )  # fmt: skip


@cuda.jit(**_KERNEL)
def _gru_forward_gemm_step(
    s, active, lengths, reverse, products, b_hn, h, h_next, out, out_col,
    gates, h_prev, hn,
):  # fmt: skip
    """As :func:`_lstm_forward_gemm_step`, for the GRU."""
    j, b = cuda.grid(2)
    hidden = h.shape[1]
    if b < active and j < hidden:
        _gru_forward_point(
            _step_time(s, b, lengths, reverse), b, j, products[b, j],
            products[b, hidden + j], products[b, 2 * hidden + j], b_hn, h,
            h_next, out, out_col, gates, h_prev, hn,
        )  # fmt: skip


@cuda.jit(**_SEQUENCE_KERNEL)
def _gru_forward_sequence(
    lengths, reverse, w_hh_t, b_hn, h, h_other, out, out_col, gates, h_prev, hn,
):  # fmt: skip
    """The whole time loop of :data:`SEQUENCE_ROWS` sequences in one block."""
    batch, hidden = h.shape
    first = cuda.blockIdx.x * SEQUENCE_ROWS
    rows = cuda.local.array(SEQUENCE_ROWS, dtype=types.int64)
    acc = cuda.local.array((SEQUENCE_ROWS, 3), dtype=gates.dtype)
    steps = _block_rows(lengths, rows)
    for s in range(steps):
        current = h if s % 2 == 0 else h_other
        following = h_other if s % 2 == 0 else h
        for j in range(cuda.threadIdx.x, hidden, cuda.blockDim.x):
            _rows_gate_products(current, rows, w_hh_t, j, acc)
            for r in range(SEQUENCE_ROWS):
                b = first + r
                if b < batch and s < lengths[b]:
                    _gru_forward_point(
                        _step_time(s, b, lengths, reverse), b, j,
                        acc[r, 0], acc[r, 1], acc[r, 2], b_hn, current,
                        following, out, out_col, gates, h_prev, hn,
                    )  # fmt: skip
        cuda.syncthreads()


def gru_forward_layer(
    inp, inp_rows, inp_span, w_ih, bias, w_hh, b_hn, lengths, batch_sizes,
    reverse, h, out, out_rows, out_span, out_col, gates, h_prev, hn,
):  # fmt: skip
    """GRU over one layer and direction: the input projection, then the time
    loop in one launch in all, or one per step (see
    :func:`_use_sequence_kernels`).

    Arguments as in :func:`rnntools.kernels.cpu.gru_forward_layer`, as device
    arrays, except the host arrays ``batch_sizes``, ``inp_rows`` and
    ``out_rows`` (see :func:`lstm_forward_layer`).
    """
    _project_layer(inp, inp_rows, w_ih, bias, gates, out_rows)
    buffers = (h, cuda.device_array_like(h))
    batch, hidden = h.shape
    if _use_gemm_steps(batch, w_hh.shape[0], hidden):
        _forward_gemm_steps(
            _gru_forward_gemm_step, w_hh, buffers, batch_sizes, lengths, reverse,
            (b_hn,), (out, out_col, gates, h_prev, hn),
        )  # fmt: skip
        _take_final_state(h, buffers[1], lengths)
        return
    w_hh_t = _transposed(w_hh)
    if _use_sequence_kernels(batch):
        _gru_forward_sequence[_sequence_grid(batch, hidden)](
            lengths, reverse, w_hh_t, b_hn, h, buffers[1], out, out_col, gates,
            h_prev, hn,
        )  # fmt: skip
    else:
        for s in range(gates.shape[0]):
            active = int(batch_sizes[s])
            if active == 0:
                break
            grid, block = _step_grid(active, hidden)
            _gru_forward_step[grid, block](
                s, active, lengths, reverse, w_hh_t, b_hn, buffers[s % 2],
                buffers[(s + 1) % 2], out, out_col, gates, h_prev, hn,
            )  # fmt: skip
    _take_final_state(h, buffers[1], lengths)


@cuda.jit(**_DEVICE)
def _gru_backward_point(
    t, b, j, recurrent, d_out, out_col, gates, h_prev, hn, d_h, d_gates_ih,
    d_gates_hh,
):  # fmt: skip
    """Gate backward of unit ``j`` of sequence ``b`` at time ``t``, given the
    recurrent gradient from the later step."""
    one = gates.dtype.type(1)
    hidden = d_h.shape[1]
    row = gates[t, b]
    r_gate = row[j]
    z_gate = row[hidden + j]
    n_gate = row[2 * hidden + j]
    # d_h holds dL/dh that bypasses the gates: z * dh of the later step, or
    # the final-state gradient at the sequence's last step.
    dh = d_h[b, j] + d_out[t, b, out_col + j] + recurrent
    d_n = dh * (one - z_gate) * (one - n_gate * n_gate)
    d_r = d_n * hn[t, b, j] * r_gate * (one - r_gate)
    d_z = dh * (h_prev[t, b, j] - n_gate) * z_gate * (one - z_gate)
    d_ih = d_gates_ih[t, b]
    d_ih[j] = d_r
    d_ih[hidden + j] = d_z
    d_ih[2 * hidden + j] = d_n
    d_gates_hh[t, b, j] = d_n * r_gate  # the n block: r and z are d_ih's
    d_h[b, j] = dh * z_gate


@cuda.jit(**_KERNEL)
def _gru_backward_step(
    s, active, lengths, reverse, w_hh, d_out, out_col, gates, h_prev, hn,
    d_h, d_gates_ih, d_gates_hh,
):  # fmt: skip
    j, b = cuda.grid(2)
    row_ok = b < active
    later = row_ok and s + 1 < lengths[b]
    t_later = _step_time(s + 1, b, lengths, reverse) if later else 0
    recurrent = _recurrent_grad(d_gates_ih, d_gates_hh, t_later, b, later, w_hh, j)
    if not row_ok or j >= d_h.shape[1]:
        return
    _gru_backward_point(
        _step_time(s, b, lengths, reverse), b, j, recurrent, d_out, out_col,
        gates, h_prev, hn, d_h, d_gates_ih, d_gates_hh,
    )  # fmt: skip


@cuda.jit(**_KERNEL)
def _gru_backward_gemm_step(
    s, active, later_active, recurrent, lengths, reverse, d_out, out_col, gates,
    h_prev, hn, d_h, d_gates_ih, d_gates_hh,
):  # fmt: skip
    """As :func:`_lstm_backward_gemm_step`, for the GRU."""
    j, b = cuda.grid(2)
    if b < active and j < d_h.shape[1]:
        later = recurrent[b, j] if b < later_active else recurrent.dtype.type(0)
        _gru_backward_point(
            _step_time(s, b, lengths, reverse), b, j, later, d_out, out_col,
            gates, h_prev, hn, d_h, d_gates_ih, d_gates_hh,
        )  # fmt: skip


@cuda.jit(**_SEQUENCE_KERNEL)
def _gru_backward_sequence(
    lengths, reverse, w_hh, d_out, out_col, gates, h_prev, hn, d_h, d_gates_ih,
    d_gates_hh,
):  # fmt: skip
    """BPTT of :data:`SEQUENCE_ROWS` sequences in one block, the initial-state
    gradient included."""
    batch, hidden = d_h.shape
    first = cuda.blockIdx.x * SEQUENCE_ROWS
    rows = cuda.local.array(SEQUENCE_ROWS, dtype=types.int64)
    times = cuda.local.array(SEQUENCE_ROWS, dtype=types.int64)
    acc = cuda.local.array(SEQUENCE_ROWS, dtype=gates.dtype)
    steps = _block_rows(lengths, rows)
    for s in range(steps - 1, -1, -1):
        _later_times(s, lengths, reverse, rows, times)
        for j in range(cuda.threadIdx.x, hidden, cuda.blockDim.x):
            _rows_recurrent_grad(d_gates_ih, d_gates_hh, times, rows, w_hh, j, acc)
            for r in range(SEQUENCE_ROWS):
                b = first + r
                if b < batch and s < lengths[b]:
                    recurrent = acc[r] if s + 1 < lengths[b] else acc.dtype.type(0)
                    _gru_backward_point(
                        _step_time(s, b, lengths, reverse), b, j, recurrent,
                        d_out, out_col, gates, h_prev, hn, d_h, d_gates_ih,
                        d_gates_hh,
                    )  # fmt: skip
        cuda.syncthreads()
    _add_initial_state_grads(
        lengths, reverse, rows, w_hh, d_gates_ih, d_gates_hh, d_h, acc, times
    )


def gru_backward_layer(
    d_out, out_col, w_hh, gates, h_prev, hn, lengths, batch_sizes, reverse,
    d_h, d_gates_ih, d_gates_hh,
):  # fmt: skip
    """BPTT through one GRU layer and direction: one launch in all, or
    one per step (see :func:`_use_sequence_kernels`).

    Arguments as in :func:`rnntools.kernels.cpu.gru_backward_layer`, as device
    arrays, except ``batch_sizes``, a host int64 array.
    """
    batch, hidden = d_h.shape
    if _use_gemm_steps(batch, w_hh.shape[0], hidden):
        _backward_gemm_steps(
            _gru_backward_gemm_step, w_hh, d_gates_ih, d_gates_hh, d_h, lengths,
            batch_sizes, reverse,
            (d_out, out_col, gates, h_prev, hn, d_h, d_gates_ih, d_gates_hh),
        )  # fmt: skip
    elif _use_sequence_kernels(batch):
        _gru_backward_sequence[_sequence_grid(batch, hidden)](
            lengths, reverse, w_hh, d_out, out_col, gates, h_prev, hn, d_h,
            d_gates_ih, d_gates_hh,
        )  # fmt: skip
    else:
        for s in range(gates.shape[0] - 1, -1, -1):
            active = int(batch_sizes[s])
            if active == 0:
                continue
            grid, block = _step_grid(active, hidden)
            _gru_backward_step[grid, block](
                s, active, lengths, reverse, w_hh, d_out, out_col, gates, h_prev,
                hn, d_h, d_gates_ih, d_gates_hh,
            )  # fmt: skip
        _finish_backward(lengths, reverse, w_hh, d_gates_ih, d_gates_hh, d_h)
    _zero_padding_of(d_gates_ih, lengths)
    _zero_padding_of(d_gates_hh, lengths)


# ---------------------------------------------------------------- Elman RNN


@cuda.jit(**_DEVICE)
def _rnn_forward_point(t, b, j, pre, relu, h, h_next, out, out_col, gates, h_prev):
    """Unit ``j`` of sequence ``b`` at time ``t``, given its recurrent
    product ``pre``."""
    pre += gates[t, b, j]
    act = max(pre, gates.dtype.type(0)) if relu else math.tanh(pre)
    gates[t, b, j] = act
    # One step long in training, as on the CPU: backward rebuilds the rest
    # from ``gates`` (:func:`rnn_previous_states`).
    h_prev[min(t, h_prev.shape[0] - 1), b, j] = h[b, j]
    h_next[b, j] = act
    out[t, b, out_col + j] = act


@cuda.jit(**_KERNEL)
def _rnn_forward_step(
    s, active, lengths, reverse, w_hh_t, relu, h, h_next, out, out_col,
    gates, h_prev,
):  # fmt: skip
    j, b = cuda.grid(2)
    row_ok = b < active
    acc = cuda.local.array(1, dtype=gates.dtype)
    _gate_products(h, b, row_ok, w_hh_t, j, acc)
    if not row_ok or j >= h.shape[1]:
        return
    _rnn_forward_point(
        _step_time(s, b, lengths, reverse), b, j, acc[0], relu, h, h_next, out,
        out_col, gates, h_prev,
    )  # fmt: skip


@cuda.jit(**_KERNEL)
def _rnn_forward_gemm_step(
    s, active, lengths, reverse, products, relu, h, h_next, out, out_col,
    gates, h_prev,
):  # fmt: skip
    """As :func:`_lstm_forward_gemm_step`, for the Elman RNN."""
    j, b = cuda.grid(2)
    if b < active and j < h.shape[1]:
        _rnn_forward_point(
            _step_time(s, b, lengths, reverse), b, j, products[b, j], relu, h,
            h_next, out, out_col, gates, h_prev,
        )  # fmt: skip


@cuda.jit(**_SEQUENCE_KERNEL)
def _rnn_forward_sequence(
    lengths, reverse, w_hh_t, relu, h, h_other, out, out_col, gates, h_prev,
):  # fmt: skip
    """The whole time loop of :data:`SEQUENCE_ROWS` sequences in one block."""
    batch, hidden = h.shape
    first = cuda.blockIdx.x * SEQUENCE_ROWS
    rows = cuda.local.array(SEQUENCE_ROWS, dtype=types.int64)
    acc = cuda.local.array((SEQUENCE_ROWS, 1), dtype=gates.dtype)
    steps = _block_rows(lengths, rows)
    for s in range(steps):
        current = h if s % 2 == 0 else h_other
        following = h_other if s % 2 == 0 else h
        for j in range(cuda.threadIdx.x, hidden, cuda.blockDim.x):
            _rows_gate_products(current, rows, w_hh_t, j, acc)
            for r in range(SEQUENCE_ROWS):
                b = first + r
                if b < batch and s < lengths[b]:
                    _rnn_forward_point(
                        _step_time(s, b, lengths, reverse), b, j, acc[r, 0],
                        relu, current, following, out, out_col, gates, h_prev,
                    )  # fmt: skip
        cuda.syncthreads()


def rnn_forward_layer(
    inp, inp_rows, inp_span, w_ih, bias, w_hh, relu, lengths, batch_sizes,
    reverse, h, out, out_rows, out_span, out_col, gates, h_prev,
):  # fmt: skip
    """Elman RNN over one layer and direction: the input projection, then the
    time loop in one launch in all, or one per step (see
    :func:`_use_sequence_kernels`).

    Arguments as in :func:`rnntools.kernels.cpu.rnn_forward_layer`, as device
    arrays, except the host arrays ``batch_sizes``, ``inp_rows`` and
    ``out_rows`` (see :func:`lstm_forward_layer`).
    """
    _project_layer(inp, inp_rows, w_ih, bias, gates, out_rows)
    buffers = (h, cuda.device_array_like(h))
    batch, hidden = h.shape
    if _use_gemm_steps(batch, w_hh.shape[0], hidden):
        _forward_gemm_steps(
            _rnn_forward_gemm_step, w_hh, buffers, batch_sizes, lengths, reverse,
            (relu,), (out, out_col, gates, h_prev),
        )  # fmt: skip
        _take_final_state(h, buffers[1], lengths)
        return
    w_hh_t = _transposed(w_hh)
    if _use_sequence_kernels(batch):
        _rnn_forward_sequence[_sequence_grid(batch, hidden)](
            lengths, reverse, w_hh_t, relu, h, buffers[1], out, out_col, gates,
            h_prev,
        )  # fmt: skip
    else:
        for s in range(gates.shape[0]):
            active = int(batch_sizes[s])
            if active == 0:
                break
            grid, block = _step_grid(active, hidden)
            _rnn_forward_step[grid, block](
                s, active, lengths, reverse, w_hh_t, relu, buffers[s % 2],
                buffers[(s + 1) % 2], out, out_col, gates, h_prev,
            )  # fmt: skip
    _take_final_state(h, buffers[1], lengths)


@cuda.jit(**_DEVICE)
def _rnn_backward_point(
    t, b, j, recurrent, relu, d_out, out_col, gates, d_h, d_gates,
):  # fmt: skip
    """Backward of unit ``j`` of sequence ``b`` at time ``t``, given the
    recurrent gradient from the later step."""
    zero = gates.dtype.type(0)
    one = gates.dtype.type(1)
    act = gates[t, b, j]
    dh = d_h[b, j] + d_out[t, b, out_col + j] + recurrent
    if relu:
        d_gates[t, b, j] = dh if act > zero else zero
    else:
        d_gates[t, b, j] = dh * (one - act * act)
    d_h[b, j] = zero


@cuda.jit(**_KERNEL)
def _rnn_backward_step(
    s, active, lengths, reverse, w_hh, relu, d_out, out_col, gates, d_h, d_gates,
):  # fmt: skip
    j, b = cuda.grid(2)
    row_ok = b < active
    later = row_ok and s + 1 < lengths[b]
    t_later = _step_time(s + 1, b, lengths, reverse) if later else 0
    recurrent = _recurrent_grad(d_gates, d_gates, t_later, b, later, w_hh, j)
    if not row_ok or j >= d_h.shape[1]:
        return
    _rnn_backward_point(
        _step_time(s, b, lengths, reverse), b, j, recurrent, relu, d_out,
        out_col, gates, d_h, d_gates,
    )  # fmt: skip


@cuda.jit(**_KERNEL)
def _rnn_backward_gemm_step(
    s, active, later_active, recurrent, lengths, reverse, relu, d_out, out_col,
    gates, d_h, d_gates,
):  # fmt: skip
    """As :func:`_lstm_backward_gemm_step`, for the Elman RNN."""
    j, b = cuda.grid(2)
    if b < active and j < d_h.shape[1]:
        later = recurrent[b, j] if b < later_active else recurrent.dtype.type(0)
        _rnn_backward_point(
            _step_time(s, b, lengths, reverse), b, j, later, relu, d_out,
            out_col, gates, d_h, d_gates,
        )  # fmt: skip


@cuda.jit(**_SEQUENCE_KERNEL)
def _rnn_backward_sequence(
    lengths, reverse, w_hh, relu, d_out, out_col, gates, d_h, d_gates,
):  # fmt: skip
    """BPTT of :data:`SEQUENCE_ROWS` sequences in one block, the initial-state
    gradient included."""
    batch, hidden = d_h.shape
    first = cuda.blockIdx.x * SEQUENCE_ROWS
    rows = cuda.local.array(SEQUENCE_ROWS, dtype=types.int64)
    times = cuda.local.array(SEQUENCE_ROWS, dtype=types.int64)
    acc = cuda.local.array(SEQUENCE_ROWS, dtype=gates.dtype)
    steps = _block_rows(lengths, rows)
    for s in range(steps - 1, -1, -1):
        _later_times(s, lengths, reverse, rows, times)
        for j in range(cuda.threadIdx.x, hidden, cuda.blockDim.x):
            _rows_recurrent_grad(d_gates, d_gates, times, rows, w_hh, j, acc)
            for r in range(SEQUENCE_ROWS):
                b = first + r
                if b < batch and s < lengths[b]:
                    recurrent = acc[r] if s + 1 < lengths[b] else acc.dtype.type(0)
                    _rnn_backward_point(
                        _step_time(s, b, lengths, reverse), b, j, recurrent,
                        relu, d_out, out_col, gates, d_h, d_gates,
                    )  # fmt: skip
        cuda.syncthreads()
    _add_initial_state_grads(
        lengths, reverse, rows, w_hh, d_gates, d_gates, d_h, acc, times
    )


def rnn_backward_layer(
    d_out, out_col, w_hh, gates, relu, lengths, batch_sizes, reverse,
    d_h, d_gates,
):  # fmt: skip
    """BPTT through one Elman RNN layer and direction: one launch in all, or
    one per step (see :func:`_use_sequence_kernels`).

    Arguments as in :func:`rnntools.kernels.cpu.rnn_backward_layer`, as
    device arrays, except ``batch_sizes``, a host int64 array.
    """
    batch, hidden = d_h.shape
    if _use_gemm_steps(batch, w_hh.shape[0], hidden):
        _backward_gemm_steps(
            _rnn_backward_gemm_step, w_hh, d_gates, d_gates, d_h, lengths,
            batch_sizes, reverse, (relu, d_out, out_col, gates, d_h, d_gates),
        )  # fmt: skip
    elif _use_sequence_kernels(batch):
        _rnn_backward_sequence[_sequence_grid(batch, hidden)](
            lengths, reverse, w_hh, relu, d_out, out_col, gates, d_h, d_gates,
        )  # fmt: skip
    else:
        for s in range(gates.shape[0] - 1, -1, -1):
            active = int(batch_sizes[s])
            if active == 0:
                continue
            grid, block = _step_grid(active, hidden)
            _rnn_backward_step[grid, block](
                s, active, lengths, reverse, w_hh, relu, d_out, out_col, gates,
                d_h, d_gates,
            )  # fmt: skip
        _finish_backward(lengths, reverse, w_hh, d_gates, d_gates, d_h)
    _zero_padding_of(d_gates, lengths)


@cuda.jit(**_KERNEL)
def _rnn_previous_states(states, h0, lengths, reverse, h_prev):
    j, b = cuda.grid(2)
    steps, batch, hidden = states.shape
    if b >= batch or j >= hidden:
        return
    first = lengths[b] - 1 if reverse else 0
    for t in range(steps):
        source = t + 1 if reverse else t - 1
        if t == first:
            h_prev[t, b, j] = h0[b, j]
        elif source >= 0 and source < steps:
            h_prev[t, b, j] = states[source, b, j]
        else:
            h_prev[t, b, j] = 0


def rnn_previous_states(states, h0, lengths, reverse, h_prev):
    """As :func:`rnntools.kernels.cpu.rnn_previous_states`, as device arrays:
    thread ``(j, b)`` writes unit ``j`` of sequence ``b`` at every step."""
    batch, hidden = h0.shape
    grid, block = _step_grid(batch, hidden)
    _rnn_previous_states[grid, block](states, h0, lengths, reverse, h_prev)


# ------------------------------------------------------- weight gradients


def layer_param_grads(
    inp, h_prev, w_ih, d_gates_ih, d_gates_hh, d_w_ih, d_w_hh, d_b_ih, d_b_hh,
    d_inp, valid_rows=None,
):  # fmt: skip
    """Weight, bias and input gradients of one layer and direction.

    Arguments as in :func:`rnntools.kernels.cpu.layer_param_grads`, as device
    arrays: three GEMMs over all ``T * B`` rows and two column sums.
    ``valid_rows`` is ignored: the padded rows of ``d_gates_*`` are zero and
    the GEMMs take them as they are.
    """
    steps, batch, features = inp.shape
    rows = steps * batch
    width = d_gates_ih.shape[2]
    g_ih = d_gates_ih.reshape(rows, width)
    h_prev_2d = h_prev.reshape(rows, h_prev.shape[2])
    _matmul(g_ih, inp.reshape(rows, features), d_w_ih, transpose_a=True)
    _matmul(g_ih, w_ih, d_inp.reshape(rows, features))
    _column_sums_into(g_ih, d_b_ih)
    shared = width - d_gates_hh.shape[2]  # the gru's r and z blocks, else 0
    g_hh = d_gates_hh.reshape(rows, width - shared)
    if shared:
        # The r and z rows from g_ih (the GEMM kernel takes no strided view:
        # its n rows are computed, then overwritten).
        _matmul(g_ih, h_prev_2d, d_w_hh, transpose_a=True)
        _column_sums_into(g_ih, d_b_hh)
    _matmul(g_hh, h_prev_2d, d_w_hh[shared:], transpose_a=True)
    _column_sums_into(g_hh, d_b_hh[shared:])


def _column_sums_into(matrix, out):
    """``out[:] = matrix.sum(axis=0)``: a parallel reduction in CuPy where
    :func:`_cupy` finds it, else :func:`_column_sums` (a thread per column)."""
    cupy = _cupy()
    if cupy is not None:
        cupy.sum(_cupy_view(cupy, matrix), axis=0, out=_cupy_view(cupy, out))
    else:
        _column_sums[_flat_grid(out.size)](matrix, out)


# -------------------------------------------------------------- signatures


def _signatures(dtype):
    """Argument types of every kernel launch, for ``dtype`` float32/float64."""
    f1, f2, f3 = (types.Array(dtype, ndim, "C") for ndim in (1, 2, 3))
    i1 = types.Array(types.int64, 1, "C")
    i64, flag = types.int64, types.boolean
    step = (i64, i64, i1, flag)
    seq = (i1, flag)
    later = (i64, i64, i64, f2, i1, flag)  # backward steps on a GEMM per step
    return {
        "_fill_zero": [(f1,)],
        "_add_into": [(f1, f1)],
        "_transpose": [(f2, f2)],
        "_take_final": [(f2, f2, i1)],
        "_zero_padding": [(f3, i1)],
        "_gather_time_major": [(f3, i1, i1, f3)],
        "_scatter_batch_first": [(f3, i1, f3)],
        "_column_sums": [(f2, f1)],
        "_reduce_flat": [(f1, flag, types.Array(types.float64, 1, "C"))],
        "_scale": [(f1, dtype)],
        "_add_scaled": [(f1, f1, dtype)],
        "_adam_update": [(f1, f1, f1, f1, dtype, dtype, dtype, dtype)],
        "_sgd_update": [(f1, f1, f1, dtype, dtype, flag)],
        "_gemm": [(f2, f2, f1, f2, flag, flag, flag)],
        "_initial_state_grad": [(i1, flag, f2, f3, f3, f2)],
        "_rnn_previous_states": [(f3, f2, i1, flag, f3)],
        "_lstm_forward_step": [(*step, f2, f2, f2, f2, f3, i64, f3, f3, f3, f3)],
        "_lstm_backward_step": [(*step, f2, f3, i64, f3, f3, f3, f2, f2, f3)],
        "_gru_forward_step": [(*step, f2, f1, f2, f2, f3, i64, f3, f3, f3)],
        "_gru_backward_step": [(*step, f2, f3, i64, f3, f3, f3, f2, f3, f3)],
        "_rnn_forward_step": [(*step, f2, flag, f2, f2, f3, i64, f3, f3)],
        "_rnn_backward_step": [(*step, f2, flag, f3, i64, f3, f2, f3)],
        "_gather_step_grads": [(*step, f3, f3, f2)],
        "_lstm_forward_gemm_step": [(*step, f2, f2, f2, f2, f3, i64, f3, f3, f3, f3)],
        "_lstm_backward_gemm_step": [(*later, f3, i64, f3, f3, f3, f2, f2, f3)],
        "_gru_forward_gemm_step": [(*step, f2, f1, f2, f2, f3, i64, f3, f3, f3)],
        "_gru_backward_gemm_step": [(*later, f3, i64, f3, f3, f3, f2, f3, f3)],
        "_rnn_forward_gemm_step": [(*step, f2, flag, f2, f2, f3, i64, f3, f3)],
        "_rnn_backward_gemm_step": [(*later, flag, f3, i64, f3, f2, f3)],
        "_lstm_forward_sequence": [(*seq, f2, f2, f2, f2, f3, i64, f3, f3, f3, f3)],
        "_lstm_backward_sequence": [(*seq, f2, f3, i64, f3, f3, f3, f2, f2, f3)],
        "_gru_forward_sequence": [(*seq, f2, f1, f2, f2, f3, i64, f3, f3, f3)],
        "_gru_backward_sequence": [(*seq, f2, f3, i64, f3, f3, f3, f2, f3, f3)],
        "_rnn_forward_sequence": [(*seq, f2, flag, f2, f2, f3, i64, f3, f3)],
        "_rnn_backward_sequence": [(*seq, f2, flag, f3, i64, f3, f2, f3)],
    }


#: ``{dtype name: {kernel name: [argument types, ...]}}`` of every launch the
#: drivers make; the test suite compiles each to PTX and checks, under the
#: simulator, that every actual launch matches one of them.
SIGNATURES = {
    np.dtype(name).name: _signatures(numba_type)
    for name, numba_type in (("float32", types.float32), ("float64", types.float64))
}
