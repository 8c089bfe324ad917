"""Shared pieces of the rnntools benchmarks: grids, data, torch twins, base classes.

Shapes are written ``"BxTxIxH"`` (batch, timesteps, input features, hidden
units), so a benchmark's parameter names say what it ran.

Setting ``RNNTOOLS_BENCH_SMOKE=1`` before this module is imported swaps every
shape grid and problem size for a tiny one; ``asv_benchmarks/smoke.py`` does
this to run each benchmark once, quickly, so the suite cannot rot unnoticed.
"""

import math
import os
import statistics
import threading
import time
import timeit
import warnings

import numpy as np

SMOKE = os.environ.get("RNNTOOLS_BENCH_SMOKE", "0") not in ("", "0")

CELLS = ("rnn", "lstm", "gru")
N_GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# Per-timestep overhead: batch 1, tiny input and hidden sizes, so that the
# time of a step is its fixed cost (calls, loops, bookkeeping), not arithmetic.
PER_STEP_SIZES = {"batch": 1, "input_size": 4, "hidden_size": 4}

if SMOKE:
    SHAPES = ("2x3x4x5",)
    # LSTMs wide enough to run their inference panel by panel
    # (rnntools.kernels.cpu.gate_panels: 512 units in float32, 256 in float64)
    WIDE_LSTM_SHAPES = ("2x3x4x512",)
    # each start-up benchmark spawns interpreters that compile from scratch
    STARTUP_CELLS = ("lstm",)
    # sequence counts, step ranges, features and hidden units of the
    # estimator benchmarks (ESTIMATOR_PROBLEM) and of one training epoch
    # against torch (EPOCH_PROBLEM)
    ESTIMATOR_PROBLEM = {
        "n_sequences": 8,
        "steps": (2, 4),
        "n_features": 3,
        "hidden_size": 4,
        "batch_size": 4,
        "max_iter": 2,
    }
    EPOCH_PROBLEM = {
        "n_sequences": 8,
        "steps": (2, 4),
        "n_features": 3,
        "hidden_size": 4,
        "batch_size": 4,
    }
    PER_STEP_STEPS = (5, 20)
else:
    SHAPES = ("16x50x32x64", "64x100x64x128")
    WIDE_LSTM_SHAPES = ("8x50x32x512", "64x50x64x512")
    STARTUP_CELLS = CELLS
    ESTIMATOR_PROBLEM = {
        "n_sequences": 256,
        "steps": (20, 30),
        "n_features": 12,
        "hidden_size": 32,
        "batch_size": 32,
        "max_iter": 20,
    }
    EPOCH_PROBLEM = {
        "n_sequences": 256,
        "steps": (20, 30),
        "n_features": 12,
        "hidden_size": 64,
        "batch_size": 32,
    }
    PER_STEP_STEPS = (1000, 4000)

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


def torch_rnn_class(cell):
    """``torch.nn.RNN``, ``torch.nn.LSTM`` or ``torch.nn.GRU``."""
    import torch

    return {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]


def make_torch_rnn(cell, weights, shape, *, num_layers=1, bidirectional=False):
    """The ``torch.nn`` module that holds ``weights``, batch first, float32."""
    import torch

    _, _, input_size, hidden_size = shape
    module = torch_rnn_class(cell)(
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


def torch_training_forward(module, x):
    """Forward pass of ``module`` with autograd recording, ``x`` included:
    what it keeps for a backward pass (the counterpart of rnntools' forward
    with ``return_cache=True``). The graph goes with the returned output."""
    import torch

    module.zero_grad(set_to_none=True)
    return module(torch.from_numpy(x).requires_grad_(True))


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


def _other_threads_ms():
    """CPU milliseconds run so far by this process's threads other than the
    calling one (Linux ``schedstat``), or None where that cannot be read."""
    own = threading.get_native_id()
    total = 0
    try:
        for task in os.listdir("/proc/self/task"):
            if int(task) == own:
                continue
            with open(f"/proc/self/task/{task}/schedstat") as stat:
                total += int(stat.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e6


def settle(quiet_ms=0.5, interval=0.005, timeout=0.25):
    """Sleep until this process's other threads stop running.

    After a call returns, a library's thread pool may keep spin-waiting on
    the cores: torch's OpenMP workers (libgomp) ran for 8-14 ms after each
    32x50x32x64 LSTM forward+backward here, on a 2-core machine where that is
    a whole core. Waits in steps of ``interval`` seconds until other threads
    ran less than ``quiet_ms`` in one step, at most ``timeout`` seconds; where
    thread run times cannot be read, sleeps ``timeout / 5`` seconds.
    """
    before = _other_threads_ms()
    if before is None:
        time.sleep(timeout / 5)
        return
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        time.sleep(interval)
        after = _other_threads_ms()
        if after is None or after - before < quiet_ms:
            return
        before = after


def interleaved_samples(funcs, *, repeats, numbers=None, min_sample_seconds=None):
    """Time several callables in turn, ``repeats`` rounds.

    Interleaving spreads slow drifts (CPU clock, other load) over all of them
    instead of biasing whichever ran last. Before each sample, the previous
    library's thread pool is left to stop spin-waiting (:func:`settle`), then
    one untimed call of the same callable warms caches and its own threads:
    the spinning of the other library's threads belongs to neither library.

    Parameters
    ----------
    funcs : dict of str to callable
    repeats : int
    numbers : dict of str to int, optional
        Calls per sample for each callable (default 1); each sample is the
        mean over its calls.
    min_sample_seconds : float, optional
        Instead of ``numbers``: as many calls per sample as last this long
        (:func:`calls_per_sample`), for callables of a few milliseconds.

    Returns
    -------
    samples : dict of str to list of (wall_seconds, cpu_seconds)
        Per-call wall time and per-call CPU time of this process (all its
        threads) for each sample.
    """
    if min_sample_seconds is not None:
        numbers = {
            name: calls_per_sample(func, min_sample_seconds)
            for name, func in funcs.items()
        }
    numbers = numbers or {}
    samples = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            number = numbers.get(name, 1)
            settle()
            func()  # untimed: warms caches and this library's threads
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


def speedup_vs_torch(ours, theirs, *, repeats=7, min_sample_seconds=0.01):
    """torch time / rnntools time: medians of interleaved samples.

    Parameters
    ----------
    ours, theirs : callable
        The rnntools call and the torch call, both already warmed up.
    repeats : int
        Samples of each.
    min_sample_seconds : float
        Each sample is the mean of enough calls to last this long.

    Returns
    -------
    speedup : float
        Above 1: rnntools is faster.
    """
    funcs = {"rnntools": ours, "torch": theirs}
    numbers = {
        name: calls_per_sample(func, min_sample_seconds) for name, func in funcs.items()
    }
    samples = interleaved_samples(funcs, repeats=repeats, numbers=numbers)
    return median_wall(samples["torch"]) / median_wall(samples["rnntools"])


# ---------------------------------------------------------------- per-step overhead


def per_step_shape(steps):
    """The ``(B, T, I, H)`` of the per-step overhead benchmarks at ``T = steps``."""
    sizes = PER_STEP_SIZES
    return (sizes["batch"], steps, sizes["input_size"], sizes["hidden_size"])


def per_step_seconds(samples, name, steps=PER_STEP_STEPS):
    """Seconds per timestep: the slope between a short and a long sequence.

    ``(median at T_long - median at T_short) / (T_long - T_short)`` cancels
    the fixed cost of a call (validation, allocation, thread hand-off) and
    keeps the cost of one more step.

    Parameters
    ----------
    samples : dict
        ``interleaved_samples`` output keyed by ``(name, T)``.
    name : str
        Whose samples to use (e.g. ``"rnntools"`` or ``"torch"``).
    steps : tuple of int
        ``(T_short, T_long)``.

    Returns
    -------
    seconds : float
    """
    short, long = steps
    return (median_wall(samples[name, long]) - median_wall(samples[name, short])) / (
        long - short
    )


# ---------------------------------------------------------------- estimators


def make_sequences(
    n_sequences,
    steps,
    n_features,
    *,
    task="classification",
    n_classes=4,
    seed=0,
    dtype="float32",
):
    """Fixed, seeded synthetic sequences of random lengths, and their targets.

    The target depends on the mean of the first feature over the whole
    sequence and on the last feature at its last step, so a model must carry
    information along the sequence to fit it.

    Parameters
    ----------
    n_sequences : int
    steps : tuple of int
        ``(min_steps, max_steps)``: each length is drawn uniformly from it.
    n_features : int
    task : {"classification", "regression"}
    n_classes : int
        Classification only: the labels are ``0 .. n_classes - 1``, cut at the
        quantiles of the underlying real target (balanced classes).
    seed : int
    dtype : str

    Returns
    -------
    X : list of ndarray of shape (T_i, n_features)
    y : ndarray of shape (n_sequences,)
        int labels (classification) or float64 (regression).
    """
    rng = np.random.default_rng(seed)
    low, high = steps
    lengths = rng.integers(low, high + 1, n_sequences)
    X = [rng.standard_normal((length, n_features)).astype(dtype) for length in lengths]
    signal = np.array([x[:, 0].mean() + 0.5 * x[-1, -1] for x in X])
    if task == "regression":
        return X, signal
    edges = np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1])
    return X, np.digitize(signal, edges)


def pad_sequences(X):
    """Zero-pad a list of ``(T_i, F)`` arrays to ``(n, max T_i, F)``.

    Returns
    -------
    padded : ndarray of shape (n, T_max, F)
    lengths : int64 ndarray of shape (n,)
    """
    lengths = np.array([len(x) for x in X], dtype=np.int64)
    padded = np.zeros((len(X), lengths.max(), X[0].shape[1]), dtype=X[0].dtype)
    for row, x in zip(padded, X, strict=True):
        row[: len(x)] = x
    return padded, lengths


def make_torch_classifier(
    cell,
    input_size,
    hidden_size,
    n_outputs,
    *,
    num_layers=1,
    bidirectional=False,
):
    """``RNNClassifier``'s network in PyTorch: an RNN and a linear head.

    The module's ``forward(x, lengths=None)`` takes a padded batch-first
    float32 tensor (and, for sequences of different lengths, their lengths,
    which it packs with ``pack_padded_sequence``) and returns the logits of
    the head applied to the last layer's final hidden state, both directions
    concatenated (forward first) when bidirectional: ``RNNClassifier``'s
    architecture. Its ``state_dict`` keys are ``rnn.<PyTorch name>``,
    ``head.weight`` and ``head.bias`` (see ``torch_classifier_state``).

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    input_size, hidden_size, n_outputs : int
    num_layers : int
    bidirectional : bool

    Returns
    -------
    module : torch.nn.Module
    """
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    n_directions = 2 if bidirectional else 1

    class SequenceClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch_rnn_class(cell)(
                input_size,
                hidden_size,
                num_layers=num_layers,
                batch_first=True,
                bidirectional=bidirectional,
            )
            self.head = torch.nn.Linear(n_directions * hidden_size, n_outputs)

        def forward(self, x, lengths=None):
            if lengths is not None:
                x = pack_padded_sequence(
                    x, lengths, batch_first=True, enforce_sorted=False
                )
            _, state = self.rnn(x)
            h_n = state[0] if cell == "lstm" else state
            return self.head(torch.cat(tuple(h_n[-n_directions:]), dim=1))

    return SequenceClassifier()


def torch_classifier_state(params):
    """``RNNClassifier.params_`` as a ``make_torch_classifier`` state dict."""
    import torch

    return {
        (name if name.startswith("head.") else f"rnn.{name}"): torch.from_numpy(
            np.ascontiguousarray(value, dtype=np.float32)
        )
        for name, value in params.items()
    }


def torch_train_epoch(
    model,
    optimizer,
    X,
    y,
    *,
    batch_size,
    generator,
    lengths=None,
    clip_grad_norm=5.0,
):
    """One epoch of an idiomatic PyTorch training loop.

    Shuffles, then for each minibatch: ``zero_grad``, cross-entropy of the
    model's logits, ``backward``, ``clip_grad_norm_``, ``optimizer.step()``.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(x)``, or ``model(x, lengths)`` when ``lengths`` is
        given (``make_torch_classifier``).
    optimizer : torch.optim.Optimizer
    X : torch.Tensor of shape (n, T, F)
    y : torch.Tensor of shape (n,)
        int64 class indices.
    batch_size : int
    generator : torch.Generator
        Draws the shuffling order.
    lengths : torch.Tensor of shape (n,), optional
        int64 sequence lengths; ``X`` is then zero-padded after them.
    clip_grad_norm : float
    """
    import torch

    order = torch.randperm(len(X), generator=generator)
    for first in range(0, len(X), batch_size):
        index = order[first : first + batch_size]
        optimizer.zero_grad()
        if lengths is None:
            logits = model(X[index])
        else:
            logits = model(X[index], lengths[index])
        loss = torch.nn.functional.cross_entropy(logits, y[index])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()


def epoch_label(problem):
    """``"BxT_min-T_maxxIxH"`` of an ``EPOCH_PROBLEM``-like dict."""
    low, high = problem["steps"]
    return (
        f"{problem['batch_size']}x{low}-{high}x{problem['n_features']}"
        f"x{problem['hidden_size']}"
    )


class EpochComparison:
    """One training epoch of ``RNNClassifier`` and of the same network in torch.

    Same data (``make_sequences``, lengths drawn from ``steps``), same
    architecture (``make_torch_classifier``, starting from rnntools' weights),
    same optimiser (Adam), batch size, gradient clipping (5.0) and shuffling
    each epoch. rnntools trains with ``partial_fit`` on the list of ragged
    sequences, so its time includes the estimator's input validation and
    padding; torch trains on a padded tensor with lengths, packing each
    minibatch. Both the constructor's ``partial_fit`` (which compiles the
    kernels) and one torch epoch are warm-ups; each later call of
    ``rnntools_epoch`` or ``torch_epoch`` trains one more epoch.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    n_sequences : int
    steps : tuple of int
        ``(min_steps, max_steps)``.
    n_features, hidden_size, batch_size : int
    num_layers : int
    bidirectional : bool
    n_classes : int
    learning_rate : float
    seed : int

    Attributes
    ----------
    max_error : float
        Largest difference between the two networks' class probabilities on
        all the sequences, with the same weights, before the timed epochs.
    flops : int
        Matrix-product flops of the recurrent layers in one epoch, over the
        sequences' real steps (``gemm_flops``, forward plus backward).
    label : str
        ``"BxT_min-T_maxxIxH"``, e.g. ``"32x20-30x12x64"``.
    """

    def __init__(
        self,
        cell="lstm",
        *,
        n_sequences,
        steps,
        n_features,
        hidden_size,
        batch_size,
        num_layers=1,
        bidirectional=False,
        n_classes=4,
        learning_rate=1e-3,
        seed=0,
    ):
        import torch

        from rnntools import RNNClassifier

        self.X, self.y = make_sequences(
            n_sequences, steps, n_features, n_classes=n_classes, seed=seed
        )
        self.batch_size = batch_size
        self.classifier = RNNClassifier(
            cell=cell,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            learning_rate_init=learning_rate,
            batch_size=batch_size,
            random_state=seed,
        )
        self.classifier.partial_fit(self.X, self.y, classes=np.arange(n_classes))

        padded, lengths = pad_sequences(self.X)
        self.padded = torch.from_numpy(padded)
        self.lengths = torch.from_numpy(lengths)
        self.targets = torch.from_numpy(self.y.astype(np.int64))
        self.module = make_torch_classifier(
            cell,
            n_features,
            hidden_size,
            n_classes,
            num_layers=num_layers,
            bidirectional=bidirectional,
        )
        self.module.load_state_dict(
            torch_classifier_state(self.classifier.params_), strict=True
        )
        with torch.no_grad():
            torch_proba = torch.softmax(self.module(self.padded, self.lengths), dim=1)
        self.max_error = float(
            np.max(np.abs(self.classifier.predict_proba(self.X) - torch_proba.numpy()))
        )
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=learning_rate)
        self.generator = torch.Generator().manual_seed(seed)
        self.torch_epoch()

        self.flops = gemm_flops(
            cell,
            (1, int(lengths.sum()), n_features, hidden_size),
            num_layers=num_layers,
            bidirectional=bidirectional,
            backward=True,
        )
        self.label = epoch_label(
            {
                "steps": steps,
                "n_features": n_features,
                "hidden_size": hidden_size,
                "batch_size": batch_size,
            }
        )

    def rnntools_epoch(self):
        """One epoch of ``RNNClassifier.partial_fit``."""
        self.classifier.partial_fit(self.X, self.y)

    def torch_epoch(self):
        """One epoch of ``torch_train_epoch``."""
        torch_train_epoch(
            self.module,
            self.optimizer,
            self.padded,
            self.targets,
            lengths=self.lengths,
            batch_size=self.batch_size,
            generator=self.generator,
        )


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

    def inference(self):
        """The forward ``predict`` runs: no cache kept for a backward."""
        return self.rnn_forward(
            self.x,
            self.weights,
            self.cell,
            bidirectional=self.bidirectional,
            return_cache=False,
        )


class EstimatorBenchmark(Benchmark):
    """One cell of an rnntools estimator on fixed, seeded synthetic sequences.

    ``make_data`` builds the data (``make_sequences`` with the sizes of
    ``ESTIMATOR_PROBLEM``) and fits the estimator once, which compiles
    every Numba kernel that fitting and predicting with this cell and dtype
    need, so that no compilation happens in the timed calls. Subclasses set
    ``estimator_name`` (an estimator of ``rnntools``) and ``task``.
    """

    estimator_name = "RNNClassifier"
    task = "classification"
    dtype = "float32"

    def make_estimator(self, cell):
        """An unfitted estimator: fixed epochs, no early stop, seeded."""
        import rnntools

        problem = ESTIMATOR_PROBLEM
        return getattr(rnntools, self.estimator_name)(
            cell=cell,
            hidden_size=problem["hidden_size"],
            batch_size=problem["batch_size"],
            max_iter=problem["max_iter"],
            n_iter_no_change=problem["max_iter"] + 1,
            random_state=0,
            dtype=self.dtype,
        )

    def make_data(self, cell):
        problem = ESTIMATOR_PROBLEM
        self.cell = cell
        self.X, self.y = make_sequences(
            problem["n_sequences"],
            problem["steps"],
            problem["n_features"],
            task=self.task,
            dtype=self.dtype,
        )
        self.estimator = self.fit()  # compiles (warm-up)
        self.estimator.predict(self.X[:2])

    def fit(self):
        """Fit a fresh estimator on the data; return it."""
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return self.make_estimator(self.cell).fit(self.X, self.y)
