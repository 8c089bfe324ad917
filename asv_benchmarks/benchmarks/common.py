"""Shared pieces of the rnntools benchmarks: grids, data, torch twins, base classes.

Shapes are written ``"BxTxIxH"`` (batch, timesteps, input features, hidden
units), so a benchmark's parameter names say what it ran.

Setting ``RNNTOOLS_BENCH_SMOKE=1`` before this module is imported swaps every
shape grid for one tiny shape; ``asv_benchmarks/smoke.py`` does this to run
each benchmark once, quickly, so the suite cannot rot unnoticed.
"""

import math
import os
import statistics
import time
import timeit

import numpy as np

SMOKE = os.environ.get("RNNTOOLS_BENCH_SMOKE", "0") not in ("", "0")

CELLS = ("rnn", "lstm", "gru")
N_GATES = {"rnn": 1, "lstm": 4, "gru": 3}

if SMOKE:
    SHAPES = ("2x3x4x5",)
    # each start-up benchmark spawns interpreters that compile from scratch
    STARTUP_CELLS = ("lstm",)
else:
    SHAPES = ("16x50x32x64", "64x100x64x128")
    STARTUP_CELLS = CELLS

# torch's intra-op thread count in the benchmarks that run torch; rnntools
# chooses its own threads.
TORCH_THREADS = int(os.environ.get("RNNTOOLS_BENCH_TORCH_THREADS", "2"))


def parse_shape(shape):
    """Read ``"BxTxIxH"`` as the tuple ``(B, T, I, H)`` of positive ints."""
    message = f"shape {shape!r} is not BxTxIxH with positive integer sizes"
    try:
        sizes = tuple(int(size) for size in shape.lower().split("x"))
    except ValueError:
        raise ValueError(message) from None
    if len(sizes) != 4 or min(sizes) < 1:
        raise ValueError(message)
    return sizes


def format_shape(sizes):
    """Write ``(B, T, I, H)`` as ``"BxTxIxH"``."""
    return "x".join(str(size) for size in sizes)


def gemm_flops(
    cell,
    shape,
    *,
    num_layers=1,
    bidirectional=False,
    backward=False,
):
    """Floating-point operations of the matrix products of one call.

    Per layer and direction the forward pass multiplies ``(B*T, I_k + H)`` by
    ``(I_k + H, G*H)``: ``2*B*T*G*H*(I_k + H)`` flops. Backward needs two
    products of the same size (input gradients and weight gradients), so
    forward plus backward counts three times the forward. Pointwise gate
    arithmetic is left out.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    shape : tuple of int
        ``(B, T, I, H)``.
    num_layers : int
    bidirectional : bool
    backward : bool
        Count forward plus backward instead of the forward pass alone.

    Returns
    -------
    flops : int
    """
    batch, steps, input_size, hidden_size = shape
    n_directions = 2 if bidirectional else 1
    flops = 0
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else n_directions * hidden_size
        flops += (
            n_directions
            * 2
            * batch
            * steps
            * N_GATES[cell]
            * hidden_size
            * (layer_input + hidden_size)
        )
    return 3 * flops if backward else flops


def make_problem(
    cell,
    shape,
    *,
    dtype="float32",
    num_layers=1,
    bidirectional=False,
    seed=0,
):
    """Inputs, rnntools parameters and an upstream gradient for one benchmark.

    Returns
    -------
    x : ndarray of shape (B, T, I)
    weights : dict of str to ndarray
        ``rnntools.init_params`` output (PyTorch ``state_dict`` layout).
    d_output : ndarray of shape (B, T, D*H)
        A random upstream gradient, so that the loss ``sum(output * d_output)``
        depends on every output element.
    """
    import rnntools

    batch, steps, input_size, hidden_size = shape
    n_directions = 2 if bidirectional else 1
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, input_size)).astype(dtype)
    d_output = rng.standard_normal((batch, steps, n_directions * hidden_size))
    weights = rnntools.init_params(
        cell,
        input_size,
        hidden_size,
        num_layers=num_layers,
        bidirectional=bidirectional,
        random_state=seed,
        dtype=np.dtype(dtype),
    )
    return x, weights, d_output.astype(dtype)


def make_torch_rnn(cell, weights, shape, *, num_layers=1, bidirectional=False):
    """The ``torch.nn`` module that holds ``weights``, batch first, float32."""
    import torch

    modules = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    _, _, input_size, hidden_size = shape
    module = modules[cell](
        input_size,
        hidden_size,
        num_layers=num_layers,
        batch_first=True,
        bidirectional=bidirectional,
    )
    module.load_state_dict(
        {
            name: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
            for name, value in weights.items()
        },
        strict=True,
    )
    return module


def torch_forward(module, x):
    """Forward pass of ``module`` under ``torch.no_grad()``."""
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(x))


def torch_forward_backward(module, x, d_output):
    """Forward and backward of ``sum(output * d_output)``, ``x`` included.

    Returns the input tensor, whose ``.grad`` holds ``d_x``; the parameter
    gradients are in ``module``'s ``.grad`` attributes (reset on each call,
    so nothing accumulates across calls).
    """
    import torch

    module.zero_grad(set_to_none=True)
    x_tensor = torch.from_numpy(x).requires_grad_(True)
    output, _ = module(x_tensor)
    (output * torch.from_numpy(d_output)).sum().backward()
    return x_tensor


def interleaved_samples(funcs, *, repeats, numbers=None):
    """Time several callables in turn, ``repeats`` rounds.

    Interleaving spreads slow drifts (CPU clock, other load) over all of them
    instead of biasing whichever ran last. Each sample starts after one
    untimed call of the same callable: after a switch, the previous library's
    thread pool may still be spin-waiting on the cores (libgomp spins for
    milliseconds), and that cost belongs to neither library.

    Parameters
    ----------
    funcs : dict of str to callable
    repeats : int
    numbers : dict of str to int, optional
        Calls per sample for each callable (default 1); each sample is the
        mean over its calls.

    Returns
    -------
    samples : dict of str to list of (wall_seconds, cpu_seconds)
        Per-call wall time and per-call CPU time of this process (all its
        threads) for each sample.
    """
    numbers = numbers or {}
    samples = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            number = numbers.get(name, 1)
            func()  # untimed: lets the other library's spinning threads settle
            cpu_start = time.process_time()
            start = time.perf_counter()
            for _ in range(number):
                func()
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            samples[name].append((wall / number, cpu / number))
    return samples


def calls_per_sample(func, min_sample_seconds):
    """How many calls of ``func`` make a sample last ``min_sample_seconds``."""
    start = time.perf_counter()
    func()
    elapsed = time.perf_counter() - start
    return max(1, math.ceil(min_sample_seconds / max(elapsed, 1e-9)))


def median_wall(samples):
    """Median wall time of ``interleaved_samples`` samples."""
    return statistics.median(wall for wall, _ in samples)


class Benchmark:
    """Base class of every rnntools benchmark (asv's timing attributes)."""

    timer = timeit.default_timer  # wall time
    processes = 1
    timeout = 500


class RNNBenchmark(Benchmark):
    """One (cell, shape, direction, dtype) point of ``rnn_forward``/``rnn_backward``.

    ``make_data`` builds the problem and runs forward and backward once, so
    that Numba's compilation happens in ``setup``, never in the timing.
    """

    num_layers = 1

    def make_data(self, cell, shape, *, dtype="float32", bidirectional=False):
        from rnntools.functional import rnn_backward, rnn_forward

        self.rnn_forward = rnn_forward
        self.rnn_backward = rnn_backward
        self.cell = cell
        self.shape = parse_shape(shape)
        self.bidirectional = bidirectional
        self.x, self.weights, self.d_output = make_problem(
            cell,
            self.shape,
            dtype=dtype,
            num_layers=self.num_layers,
            bidirectional=bidirectional,
        )
        self.forward_backward()

    def forward(self):
        return self.rnn_forward(
            self.x, self.weights, self.cell, bidirectional=self.bidirectional
        )

    def forward_backward(self):
        _, _, cache = self.forward()
        return self.rnn_backward(cache, self.d_output)
