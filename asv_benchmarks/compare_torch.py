"""Time rnntools against torch.nn.RNN/LSTM/GRU on the CPU, in one process.

Run it from the repository root, with OpenBLAS left to detect the CPU itself::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python asv_benchmarks/compare_torch.py

``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` make OpenBLAS use the kernels
and blocking of another CPU; OpenBLAS reads them when it loads, so they must
be unset before Python starts. The script prints whether they are set.

Options::

    --cells lstm,gru,rnn     cells to run (default: all three)
    --shapes 32x50x32x64,... BxTxIxH shapes (default: five, small to large)
    --repeats 7              timed samples per measurement (default 7, 3 with --quick)
    --threads 2              torch's intra-op threads, and the GEMM peak's
    --num-layers 1 --bidirectional
    --quick                  two small shapes, 3 repeats: a quick look only
    --markdown               print the table as a Markdown table
    --estimator              add "epoch" rows: one training epoch of RNNClassifier
                             against an idiomatic torch training loop, per cell
    --per-step               add per-timestep cost rows at batch 1, I=4, H=4

What it does, in order:

1. Prints the machine state: CPU model, CPUs usable, load average, versions,
   threadpoolctl's view of the BLAS/OpenMP libraries, relevant environment
   variables.
2. Measures the fp32 GEMM peak: NumPy's ``matmul`` of two 2048x2048 float32
   matrices on ``--threads`` BLAS threads (best of 5). torch's ``mm`` is
   shown next to it.
3. Times ``import rnntools`` and, per cell, the first ``rnn_forward`` and
   ``rnn_backward`` calls of the process on a tiny shape, then the second
   ones: the difference is Numba's compilation or cache loading. Whether
   Numba's on-disk cache was warm cannot be known for sure; the number of
   cache index files (``*.nbi``) found beforehand is printed as a hint.
4. Per cell and shape: builds the weights with ``rnntools.init_params``,
   loads them into ``torch.nn.LSTM/GRU/RNN(batch_first=True)`` with
   ``load_state_dict``, and checks rnntools against torch once: the output
   and final state (forward) and every gradient (backward) must agree to
   1e-3, relative to ``max(1, max|torch value|)``. Then, for "fwd" (torch
   under ``torch.no_grad()``; rnntools' forward keeping what backward
   needs), "fwd/grad" (the same rnntools call; torch's forward recording
   autograd, ``x`` included: what each keeps for backward), "infer" (torch
   under ``no_grad`` again; rnntools with ``return_cache=False``, what
   ``predict`` runs) and "fwd+bwd" (forward with
   autograd, ``x`` included, then the backward of ``sum(output * g)``), it
   runs both libraries twice to warm up and times them in alternation: each
   sample is the mean of enough calls to last 20 ms, and the table shows the
   median of the samples. Before each sample it waits until the process's
   other threads stop running (torch's OpenMP workers spin for ~10 ms after
   a call; ``benchmarks.common.settle``), then makes one untimed call.
5. With ``--estimator``, per cell: one training epoch of ``RNNClassifier``
   against the same network trained by an idiomatic PyTorch loop
   (``benchmarks.common.EpochComparison``): 256 sequences of 20 to 30 steps
   x 12 features, 64 hidden units, 4 classes, batch 32, Adam, gradient
   clipping at 5 (``--num-layers`` and ``--bidirectional`` apply). rnntools
   runs ``partial_fit`` (one epoch) on the list of sequences, so its time
   includes the estimator's input validation and padding; torch trains on
   a padded tensor, packing each minibatch with ``pack_padded_sequence``.
   Both start from rnntools' weights; "max err" compares their class
   probabilities then. Row mode "epoch", median of max(7, ``--repeats``)
   epochs; GFLOP/s counts the recurrent layers' matrix products over the
   sequences' real steps.
6. With ``--per-step``, per cell: the cost of one more timestep at batch 1,
   4 input features, 4 hidden units: ``(time at T=4000 - time at T=1000) /
   3000`` from the medians of max(7, ``--repeats``) interleaved samples of
   each length, forward ("fwd/step") and forward+backward ("fwd+bwd/step").
   These rows give microseconds ("us"), not milliseconds; GFLOP/s is the
   matrix products of one step over that time. "max err" is checked at
   T=1000.
7. Prints one table. ``ratio`` is rnntools time / torch time (below 1:
   rnntools is faster). GFLOP/s counts only the matrix products of
   rnntools: ``2*B*T*G*H*(I_k+H)`` per layer and direction forward, three
   times that forward+backward; "% peak" divides it by the GEMM peak.
   ``cores`` is rnntools' CPU time over wall time (how many threads it kept
   busy). A row is flagged ``noisy`` when the samples of either library
   spread by more than 20% ((max - min) / median), or when other processes
   kept more than 0.25 of this process's CPUs busy meanwhile (from
   ``/proc/stat``; where there is none, when the 1-minute load average
   exceeds the usable CPUs).

torch runs ``--threads`` intra-op threads; rnntools chooses its own threads.
The exit status is 1 if any check failed or rnntools raised.
``RNNTOOLS_BENCH_SMOKE=1`` shrinks the "epoch" and per-step problems to a
tiny size (a test of the script; its figures mean nothing).
"""

import argparse
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from benchmarks.common import (
    CELLS,
    EPOCH_PROBLEM,
    PER_STEP_STEPS,
    EpochComparison,
    calls_per_sample,
    epoch_label,
    format_shape,
    gemm_flops,
    interleaved_samples,
    make_problem,
    make_torch_rnn,
    median_wall,
    parse_shape,
    per_step_seconds,
    per_step_shape,
    torch_forward,
    torch_forward_backward,
    torch_training_forward,
)

DEFAULT_SHAPES = (
    (32, 50, 32, 64),
    (64, 100, 64, 128),
    (128, 100, 128, 256),
    (16, 200, 8, 32),
    (256, 50, 64, 512),
)
QUICK_SHAPES = ((32, 50, 32, 64), (16, 200, 8, 32))
QUICK_REPEATS = 3
MIN_EXTRA_REPEATS = 7  # the epoch and per-step rows: median of at least 7
TOLERANCE = 1e-3
MIN_SAMPLE_SECONDS = 0.02
N_WARMUP = 2
SPREAD_LIMIT = 0.20
OTHER_CORES_LIMIT = 0.25
GEMM_SIZE = 2048
FIRST_CALL_SHAPE = (2, 3, 4, 5)
WATCHED_ENV = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMBA_THREADING_LAYER",
    "NUMBA_CACHE_DIR",
    "NUMBA_DISABLE_JIT",
)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Time rnntools against torch.nn.RNN/LSTM/GRU (CPU, float32).",
        epilog="Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
        "python asv_benchmarks/compare_torch.py",
    )
    parser.add_argument(
        "--cells", default=",".join(CELLS), help="comma-separated (default: all)"
    )
    parser.add_argument(
        "--shapes",
        help="comma-separated BxTxIxH (default: "
        + ",".join(format_shape(shape) for shape in DEFAULT_SHAPES)
        + ")",
    )
    parser.add_argument(
        "--repeats", type=int, help="timed samples per measurement (default 7)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads and GEMM-peak BLAS threads (default 2)",
    )
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"shapes {','.join(format_shape(shape) for shape in QUICK_SHAPES)}"
        f" and {QUICK_REPEATS} repeats unless given",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as Markdown"
    )
    parser.add_argument(
        "--estimator",
        action="store_true",
        help="add rows of one training epoch of RNNClassifier against an idiomatic"
        " torch loop (mode 'epoch') for each cell",
    )
    parser.add_argument(
        "--per-step",
        action="store_true",
        help="add rows of the cost of one timestep at batch 1, I=4, H=4, in us"
        " (modes 'fwd/step', 'fwd+bwd/step') for each cell",
    )
    args = parser.parse_args(argv)

    args.cells = [cell.strip() for cell in args.cells.split(",") if cell.strip()]
    unknown = sorted(set(args.cells) - set(CELLS))
    if unknown or not args.cells:
        parser.error(f"--cells takes a comma-separated subset of {CELLS}")
    if args.shapes:
        try:
            args.shapes = [parse_shape(s) for s in args.shapes.split(",") if s]
        except ValueError as exc:
            parser.error(str(exc))
    else:
        args.shapes = list(QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else 7
    for name in ("repeats", "threads", "num_layers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- machine state


def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus():
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cgroup_cpu_limit():
    """CPUs allowed by the cgroup v2 quota, or None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def print_machine_state(rnntools, threads):
    import numba
    import threadpoolctl
    import torch

    limit = cgroup_cpu_limit()
    print("== machine")
    print(f"cpu: {cpu_model()} ({platform.machine()}, {platform.system()})")
    print(
        f"cpus: {os.cpu_count()} online, {len(usable_cpus())} usable by this process"
        + (f", cgroup quota {limit:g}" if limit is not None else "")
    )
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"torch {torch.__version__}, numba {numba.__version__}, "
        f"rnntools {getattr(rnntools, '__version__', '?')} "
        f"({Path(rnntools.__file__).parent})"
    )
    print(
        f"threads: torch {torch.get_num_threads()} (--threads {threads}), "
        f"numba default {numba.config.NUMBA_NUM_THREADS}; rnntools sets its own"
    )
    print("threadpoolctl:")
    for info in threadpoolctl.threadpool_info():
        details = [f"{info['num_threads']} threads"] + [
            f"{key} {info[key]}"
            for key in ("version", "architecture", "threading_layer")
            if info.get(key)
        ]
        print(
            f"  {info['user_api']}/{info['internal_api']}: {', '.join(details)}"
            f" ({Path(info['filepath']).name})"
        )
    print("environment:")
    for name in WATCHED_ENV:
        print(
            f"  {name}={os.environ[name]}" if name in os.environ else f"  {name} unset"
        )
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            print(
                f"WARNING: {name} is set; rerun as `env -u OPENBLAS_CORETYPE "
                "-u OPENBLAS_L2_SIZE python asv_benchmarks/compare_torch.py`"
            )
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        print("WARNING: NUMBA_DISABLE_JIT is set; rnntools runs as plain Python")


def gemm_peak(threads):
    """Best fp32 GEMM GFLOP/s of NumPy and of torch on ``threads`` threads."""
    import torch
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    b = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    flops = 2 * GEMM_SIZE**3
    with threadpool_limits(limits=threads, user_api="blas"):
        samples = interleaved_samples({"numpy": lambda: a @ b}, repeats=6)
    a_tensor, b_tensor = torch.from_numpy(a), torch.from_numpy(b)
    torch_samples = interleaved_samples(
        {"torch": lambda: torch.mm(a_tensor, b_tensor)}, repeats=6
    )
    samples.update(torch_samples)
    # the first sample of each warms up
    return {name: flops / min(w for w, _ in s[1:]) / 1e9 for name, s in samples.items()}


# ---------------------------------------------------------------- other load


class OtherLoad:
    """CPU time that other processes spent on this process's CPUs.

    Reads the busy time of the usable CPUs from ``/proc/stat`` and subtracts
    this process's own CPU time. Where ``/proc/stat`` is missing it falls
    back on the 1-minute load average at the start of the measurement.
    """

    def __init__(self):
        self.cpus = {f"cpu{cpu}" for cpu in usable_cpus()}
        self.ticks_per_second = (
            os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        )
        self.available = self._busy_seconds() is not None

    def _busy_seconds(self):
        try:
            with open("/proc/stat") as stat:
                lines = [line.split() for line in stat if line.startswith("cpu")]
        except OSError:
            return None
        busy = 0
        for fields in lines:
            if fields[0] in self.cpus:
                # user nice system idle iowait irq softirq steal ...
                ticks = [int(value) for value in fields[1:9]]
                busy += sum(ticks) - ticks[3] - ticks[4]
        return busy / self.ticks_per_second

    def start(self):
        return {
            "busy": self._busy_seconds() if self.available else None,
            "cpu": time.process_time(),
            "wall": time.perf_counter(),
            "loadavg": os.getloadavg()[0],
        }

    def is_high(self, start):
        """Whether other processes loaded the CPUs since ``start``; and a note."""
        if not self.available:
            high = start["loadavg"] > len(self.cpus)
            return high, f"loadavg {start['loadavg']:.1f}"
        wall = time.perf_counter() - start["wall"]
        own = time.process_time() - start["cpu"]
        others = max(0.0, (self._busy_seconds() - start["busy"] - own) / wall)
        return others > OTHER_CORES_LIMIT, f"others {others:.2f} cpu"


# ---------------------------------------------------------------- measurements


def first_calls(cells, rnn_forward, rnn_backward, num_layers, bidirectional):
    """Seconds of the first and second forward and backward call per cell."""
    results = {}
    for cell in cells:
        x, weights, d_output = make_problem(
            cell,
            FIRST_CALL_SHAPE,
            num_layers=num_layers,
            bidirectional=bidirectional,
        )
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            _, _, cache = rnn_forward(x, weights, cell, bidirectional=bidirectional)
            middle = time.perf_counter()
            rnn_backward(cache, d_output)
            seconds += [middle - start, time.perf_counter() - middle]
        results[cell] = seconds
    return results


def numba_cache_files():
    """Numba cache index files of rnntools, counted without importing it."""
    spec = importlib.util.find_spec("rnntools")
    locations = spec.submodule_search_locations if spec else None
    roots = [Path(path) for path in locations or []]
    if os.environ.get("NUMBA_CACHE_DIR"):
        roots.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    return sum(len(list(root.rglob("*.nbi"))) for root in roots if root.is_dir())


def max_error(pairs):
    """Largest ``max|ours - ref| / max(1, max|ref|)`` and the name it occurs at."""
    worst, worst_name = 0.0, ""
    for name, ours, reference in pairs:
        ours = np.asarray(ours, dtype=np.float64)
        reference = np.asarray(reference, dtype=np.float64)
        if ours.shape != reference.shape:
            return float("inf"), f"{name} shape {ours.shape} != {reference.shape}"
        scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
        error = float(np.max(np.abs(ours - reference), initial=0.0)) / scale
        if not math.isfinite(error):
            return float("inf"), f"{name} not finite"
        if error > worst:
            worst, worst_name = error, name
    return worst, worst_name


def check_against_torch(problem, module, rnn_forward, rnn_backward):
    """Worst forward and backward errors of rnntools against torch."""
    cell, x, weights, d_output, bidirectional = problem
    output, final_state, cache = rnn_forward(
        x, weights, cell, bidirectional=bidirectional
    )
    grads, d_x, _ = rnn_backward(cache, d_output)

    x_tensor = torch_forward_backward(module, x, d_output)
    torch_output, torch_state = torch_forward(module, x)
    if cell == "lstm":
        states = [
            ("h_n", final_state[0], torch_state[0]),
            ("c_n", final_state[1], torch_state[1]),
        ]
    else:
        states = [("h_n", final_state, torch_state)]
    forward = max_error([("output", output, torch_output.numpy()), *states])
    backward = max_error(
        [("d_x", d_x, x_tensor.grad.numpy())]
        + [
            (name, grads.get(name), parameter.grad.numpy())
            for name, parameter in module.named_parameters()
        ]
    )
    return {"fwd": forward, "fwd+bwd": backward}


def measure(funcs, repeats, other_load):
    """Warm up, calibrate and time ``funcs`` in alternation."""
    for func in funcs.values():
        for _ in range(N_WARMUP):
            func()
    numbers = {
        name: calls_per_sample(func, MIN_SAMPLE_SECONDS) for name, func in funcs.items()
    }
    start = other_load.start()
    samples = interleaved_samples(funcs, repeats=repeats, numbers=numbers)
    load_high, load_note = other_load.is_high(start)
    return samples, load_high, load_note


def spread(samples):
    walls = [wall for wall, _ in samples]
    return (max(walls) - min(walls)) / statistics.median(walls)


def run_shape(cell, shape, args, context):
    """The table rows of one cell and shape (forward, then forward+backward)."""
    rnn_forward, rnn_backward, peak, other_load = context
    x, weights, d_output = make_problem(
        cell, shape, num_layers=args.num_layers, bidirectional=args.bidirectional
    )
    module = make_torch_rnn(
        cell,
        weights,
        shape,
        num_layers=args.num_layers,
        bidirectional=args.bidirectional,
    )
    problem = (cell, x, weights, d_output, args.bidirectional)
    errors = check_against_torch(problem, module, rnn_forward, rnn_backward)

    def ours_forward():
        return rnn_forward(x, weights, cell, bidirectional=args.bidirectional)

    def ours_inference():
        return rnn_forward(
            x, weights, cell, bidirectional=args.bidirectional, return_cache=False
        )

    def ours_forward_backward():
        _, _, cache = ours_forward()
        return rnn_backward(cache, d_output)

    modes = {
        "fwd": (ours_forward, lambda: torch_forward(module, x)),
        "fwd/grad": (ours_forward, lambda: torch_training_forward(module, x)),
        "infer": (ours_inference, lambda: torch_forward(module, x)),
        "fwd+bwd": (
            ours_forward_backward,
            lambda: torch_forward_backward(module, x, d_output),
        ),
    }
    rows = []
    for mode, (ours, theirs) in modes.items():
        samples, load_high, load_note = measure(
            {"rnntools": ours, "torch": theirs}, args.repeats, other_load
        )
        ours_seconds = median_wall(samples["rnntools"])
        torch_seconds = median_wall(samples["torch"])
        flops = gemm_flops(
            cell,
            shape,
            num_layers=args.num_layers,
            bidirectional=args.bidirectional,
            backward=mode == "fwd+bwd",
        )
        rows.append(
            make_row(
                cell=cell,
                shape=format_shape(shape),
                mode=mode,
                seconds=(ours_seconds, torch_seconds),
                samples=samples,
                flops=flops,
                peak=peak,
                error=errors["fwd" if mode in ("infer", "fwd/grad") else mode],
                load=(load_high, load_note),
            )
        )
        log(
            f"{cell} {format_shape(shape)} {mode}: rnntools"
            f" {ours_seconds * 1e3:.3f} ms, torch {torch_seconds * 1e3:.3f} ms"
        )
    return rows


def make_row(*, cell, shape, mode, seconds, samples, flops, peak, error, load):
    """One table row.

    Parameters
    ----------
    cell, shape, mode : str
        The first three columns.
    seconds : tuple of float
        rnntools' and torch's time. ``mode`` ending in ``"/step"`` writes
        them in microseconds (with the unit), else in milliseconds.
    samples : dict
        ``interleaved_samples`` output keyed by ``"rnntools"`` and
        ``"torch"``, or by ``(name, T)``: "spread" is the worst of them and
        "cores" comes from rnntools' samples.
    flops : int
        Matrix-product flops done in ``seconds[0]``.
    peak : float
        GEMM peak, GFLOP/s.
    error : tuple
        ``(max error, where)`` from ``max_error``.
    load : tuple
        ``(high, note)`` from ``OtherLoad.is_high``.

    Returns
    -------
    row : dict of str to str
    """
    ours_seconds, torch_seconds = seconds
    if mode.endswith("/step"):
        ours_text, torch_text = (f"{value * 1e6:.3f} us" for value in seconds)
    else:
        ours_text, torch_text = (f"{value * 1e3:.3f}" for value in seconds)
    gflops = flops / ours_seconds / 1e9
    worst_spread = max(spread(s) for s in samples.values())
    ours_samples = [
        sample
        for key, values in samples.items()
        if "rnntools" in (key if isinstance(key, tuple) else (key,))
        for sample in values
    ]
    cpu = sum(c for _, c in ours_samples)
    wall = sum(w for w, _ in ours_samples)
    error_value, error_at = error
    load_high, load_note = load
    noisy = [f"spread {worst_spread:.0%}"] if worst_spread > SPREAD_LIMIT else []
    if load_high:
        noisy.append(load_note)
    return {
        "cell": cell,
        "shape": shape,
        "mode": mode,
        "rnntools ms": ours_text,
        "torch ms": torch_text,
        "ratio": f"{ours_seconds / torch_seconds:.2f}",
        "GFLOP/s": f"{gflops:.1f}",
        "% peak": f"{100 * gflops / peak:.0f}",
        "cores": f"{cpu / wall:.1f}",
        "spread": f"{worst_spread:.0%}",
        "max err": f"{error_value:.1e}",
        "check": "ok" if error_value <= TOLERANCE else f"FAIL ({error_at})",
        "noisy": "noisy: " + ", ".join(noisy) if noisy else "",
    }


def run_epoch(cell, args, context):
    """The "epoch" row of one cell: RNNClassifier against a torch loop."""
    _, _, peak, other_load = context
    comparison = EpochComparison(
        cell,
        num_layers=args.num_layers,
        bidirectional=args.bidirectional,
        **EPOCH_PROBLEM,
    )
    samples, load_high, load_note = measure(
        {"rnntools": comparison.rnntools_epoch, "torch": comparison.torch_epoch},
        max(args.repeats, MIN_EXTRA_REPEATS),
        other_load,
    )
    seconds = (median_wall(samples["rnntools"]), median_wall(samples["torch"]))
    log(
        f"{cell} {comparison.label} epoch: rnntools {seconds[0] * 1e3:.3f} ms,"
        f" torch {seconds[1] * 1e3:.3f} ms"
    )
    return make_row(
        cell=cell,
        shape=comparison.label,
        mode="epoch",
        seconds=seconds,
        samples=samples,
        flops=comparison.flops,
        peak=peak,
        error=(comparison.max_error, "predict_proba"),
        load=(load_high, load_note),
    )


def per_step_label():
    """``"1xT_short-T_longx4x4"``: the shape column of the per-step rows."""
    short, long = PER_STEP_STEPS
    batch, _, input_size, hidden_size = per_step_shape(short)
    return f"{batch}x{short}-{long}x{input_size}x{hidden_size}"


def run_per_step(cell, args, context):
    """The "fwd/step" and "fwd+bwd/step" rows of one cell."""
    rnn_forward, rnn_backward, peak, other_load = context
    funcs = {"fwd": {}, "fwd+bwd": {}}
    errors = None
    for steps in PER_STEP_STEPS:
        shape = per_step_shape(steps)
        x, weights, d_output = make_problem(
            cell, shape, num_layers=args.num_layers, bidirectional=args.bidirectional
        )
        module = make_torch_rnn(
            cell,
            weights,
            shape,
            num_layers=args.num_layers,
            bidirectional=args.bidirectional,
        )
        if errors is None:  # checked at the shorter length
            problem = (cell, x, weights, d_output, args.bidirectional)
            errors = check_against_torch(problem, module, rnn_forward, rnn_backward)

        def ours_forward(x=x, weights=weights):
            return rnn_forward(x, weights, cell, bidirectional=args.bidirectional)

        def ours_forward_backward(forward=ours_forward, d_output=d_output):
            _, _, cache = forward()
            return rnn_backward(cache, d_output)

        funcs["fwd"]["rnntools", steps] = ours_forward
        funcs["fwd"]["torch", steps] = lambda m=module, x=x: torch_forward(m, x)
        funcs["fwd+bwd"]["rnntools", steps] = ours_forward_backward
        funcs["fwd+bwd"]["torch", steps] = lambda m=module, x=x, g=d_output: (
            torch_forward_backward(m, x, g)
        )
    rows = []
    for mode, mode_funcs in funcs.items():
        samples, load_high, load_note = measure(
            mode_funcs, max(args.repeats, MIN_EXTRA_REPEATS), other_load
        )
        seconds = (
            per_step_seconds(samples, "rnntools"),
            per_step_seconds(samples, "torch"),
        )
        log(
            f"{cell} {per_step_label()} {mode}/step: rnntools"
            f" {seconds[0] * 1e6:.3f} us, torch {seconds[1] * 1e6:.3f} us"
        )
        rows.append(
            make_row(
                cell=cell,
                shape=per_step_label(),
                mode=f"{mode}/step",
                seconds=seconds,
                samples=samples,
                flops=gemm_flops(
                    cell,
                    per_step_shape(1),
                    num_layers=args.num_layers,
                    bidirectional=args.bidirectional,
                    backward=mode == "fwd+bwd",
                ),
                peak=peak,
                error=errors[mode],
                load=(load_high, load_note),
            )
        )
    return rows


# ---------------------------------------------------------------- output

NUMERIC = (
    "rnntools ms",
    "torch ms",
    "ratio",
    "GFLOP/s",
    "% peak",
    "cores",
    "spread",
    "max err",
)
COLUMNS = ("cell", "shape", "mode", *NUMERIC, "check", "noisy")


def format_table(rows, markdown, columns=COLUMNS, numeric=NUMERIC):
    """``rows`` (dicts of strings) as an aligned text or a Markdown table.

    Parameters
    ----------
    rows : list of dict of str to str
    markdown : bool
        Print a Markdown table instead of aligned text.
    columns : sequence of str
        The keys of ``rows`` to show, in order.
    numeric : collection of str
        The columns aligned to the right; the others are aligned to the left.

    Returns
    -------
    table : str
    """
    if markdown:
        lines = [
            "| " + " | ".join(columns) + " |",
            "|" + "|".join("---:" if c in numeric else ":---" for c in columns) + "|",
        ]
        lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
        return "\n".join(lines)
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}

    def line(values):
        return "  ".join(
            values[c].rjust(widths[c]) if c in numeric else values[c].ljust(widths[c])
            for c in columns
        ).rstrip()

    header = line({c: c for c in columns})
    return "\n".join([header, "-" * len(header), *(line(row) for row in rows)])


def error_row(cell, shape, exc, columns=COLUMNS, mode=""):
    """A table row that reports ``exc`` raised at ``cell`` and ``shape``.

    ``shape`` is a ``(B, T, I, H)`` tuple or an already written label.
    """
    row = dict.fromkeys(columns, "")
    row.update(
        cell=cell,
        shape=shape if isinstance(shape, str) else format_shape(shape),
        mode=mode,
        check=f"ERROR {type(exc).__name__}: {exc}",
    )
    return row


def extra_error_row(cell, label, exc, mode):
    """Log ``exc``, raised by an "epoch" or per-step measurement; its row."""
    log(f"{cell} {label} {mode}: {type(exc).__name__}: {exc}")
    return error_row(cell, label, exc, mode=mode)


def main(argv=None):
    args = parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    n_cache_files = numba_cache_files()
    start = time.perf_counter()
    import rnntools.functional

    import_seconds = time.perf_counter() - start
    rnn_forward = rnntools.functional.rnn_forward
    rnn_backward = rnntools.functional.rnn_backward

    print_machine_state(rnntools, args.threads)

    print("\n== fp32 GEMM peak (2048x2048 @ 2048x2048)")
    peaks = gemm_peak(args.threads)
    print(
        f"numpy matmul, {args.threads} BLAS threads: {peaks['numpy']:.1f} GFLOP/s"
        f" (the peak used for % peak); torch.mm: {peaks['torch']:.1f} GFLOP/s"
    )

    print("\n== start-up: import and first calls (float32, shape 2x3x4x5)")
    print(f"import rnntools, rnntools.functional: {import_seconds * 1e3:.0f} ms")
    print(
        f"Numba cache index files (*.nbi) found before the first call: "
        f"{n_cache_files} (a hint only: whether the cache was warm cannot be known)"
    )
    first = first_calls(
        args.cells, rnn_forward, rnn_backward, args.num_layers, args.bidirectional
    )
    for cell, (fwd1, bwd1, fwd2, bwd2) in first.items():
        print(
            f"{cell:5s} first call: forward {fwd1:8.3f} s, backward {bwd1:8.3f} s;"
            f"  second call: forward {fwd2 * 1e3:.2f} ms, backward {bwd2 * 1e3:.2f} ms"
        )

    layout = f"num_layers={args.num_layers}" + (
        ", bidirectional" if args.bidirectional else ""
    )
    print(
        f"\n== rnntools vs torch ({layout}, float32, median of {args.repeats}"
        f" samples, torch threads {args.threads})"
    )
    if args.repeats < 7:
        print(f"note: {args.repeats} repeats give rough medians; use 7 or more")
    other_load = OtherLoad()
    context = (rnn_forward, rnn_backward, peaks["numpy"], other_load)
    rows = []
    for cell in args.cells:
        for shape in args.shapes:
            try:
                rows += run_shape(cell, shape, args, context)
            except Exception as exc:
                log(f"{cell} {format_shape(shape)}: {type(exc).__name__}: {exc}")
                rows.append(error_row(cell, shape, exc))
    if args.estimator:
        for cell in args.cells:
            try:
                rows.append(run_epoch(cell, args, context))
            except Exception as exc:
                rows.append(
                    extra_error_row(cell, epoch_label(EPOCH_PROBLEM), exc, "epoch")
                )
    if args.per_step:
        for cell in args.cells:
            try:
                rows += run_per_step(cell, args, context)
            except Exception as exc:
                rows.append(extra_error_row(cell, per_step_label(), exc, "step"))

    print(format_table(rows, args.markdown))
    print(
        "\nratio = rnntools / torch (below 1: rnntools faster). GFLOP/s counts"
        " rnntools' matrix products only; % peak is against the numpy GEMM peak."
        "\ncores = rnntools CPU time / wall time. spread = (max - min) / median"
        " of the samples, worst of the two libraries. max err is relative to"
        f" max(1, max|torch|), tolerance {TOLERANCE:g}."
    )
    if args.estimator:
        print(
            f"epoch: one training epoch of {EPOCH_PROBLEM['n_sequences']} sequences"
            " (shape = batch x steps x features x hidden), RNNClassifier.partial_fit"
            " on a list of ragged sequences against an idiomatic torch loop"
            " (packed minibatches, cross_entropy, clip_grad_norm_, Adam); max err"
            " compares their predict_proba at the same weights."
        )
    if args.per_step:
        short, long = PER_STEP_STEPS
        print(
            f"fwd/step, fwd+bwd/step: (time at T={long} - time at T={short})"
            f" / {long - short}, in microseconds (us), not ms; max err at T={short}."
        )
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    failed = [row for row in rows if row["check"] != "ok"]
    print(f"total {time.perf_counter() - start:.0f} s; {len(failed)} rows failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
