"""Time rnntools on the GPU against torch.nn.RNN/LSTM/GRU on cuDNN, in one process.

Run it from the repository root, on a machine with an NVIDIA GPU (and, for
the cuDNN columns, a CUDA build of torch)::

    python asv_benchmarks/compare_cuda.py --markdown

Options::

    --cells lstm,gru,rnn     cells to run (default: all three)
    --shapes 4x100x256x256   comma-separated BxTxIxH shapes (default: 4x100x256x256,
                             32x100x256x256, 128x100x512x512, 256x50x64x1024)
    --tiny                   one tiny shape, 2x3x4x4: a smoke test, not a timing
    --repeats 7              timed samples per measurement (at least 7)
    --markdown               print the table as a Markdown table
    --no-torch               time rnntools only
    --allow-tf32             let cuDNN use TF32 tensor cores (default: true fp32)
    --allow-no-gpu           exit with status 0, not 2, when there is no GPU

What it does, in order:

1. Asks ``numba.cuda.is_available()``. Where it is false it prints one line
   saying so and exits: status 0 with ``--allow-no-gpu``, else 2.
2. Prints the machine state: the GPU, CUDA driver and runtime versions,
   torch, cuDNN and Numba versions, whether cuDNN may use TF32. torch runs
   only where it is installed with CUDA and cuDNN (and ``--no-torch`` is not
   given); otherwise the script says why and times rnntools alone.
3. Times, per cell, the first and second ``rnn_forward(..., device="cuda")``
   and ``rnn_backward`` calls of the process on a tiny shape: the difference
   is Numba's CUDA compilation (or cache loading). If the first call raises,
   the script stops with status 1.
4. Per cell and shape (one layer, unidirectional, float32): builds the
   weights with ``rnntools.init_params`` and loads them into
   ``torch.nn.LSTM/GRU/RNN(batch_first=True)`` on the GPU, with
   ``torch.backends.cudnn.enabled``. It checks rnntools once: the output and
   final state (forward) and every gradient (backward) must agree to 1e-3,
   relative to ``max(1, max|reference|)``, with cuDNN, or with rnntools'
   ``device="cpu"`` where torch does not run or ``--allow-tf32`` is given
   (TF32 rounds products to 10-bit mantissas, so cuDNN may miss 1e-3).
   Then, for "fwd" (torch under ``torch.no_grad()``; rnntools' forward
   always keeps what backward needs, its API having no inference mode) and
   "fwd+bwd" (forward with autograd, ``x`` included, then
   ``output.backward(d_output)``), it calls each function twice to warm up
   and times them in alternation (``interleaved_samples`` of
   ``benchmarks/common.py``): each sample is the mean of enough calls to
   last 20 ms, and the table shows the median of the samples. Every timed
   call is bracketed by ``torch.cuda.synchronize()`` (torch) or
   ``numba.cuda.synchronize()`` (rnntools), so the GPU is idle when the
   clock starts and done when it stops, and no two calls overlap.
5. Prints one table; see the lines under it for what each column means.

The four timings:

- ``rnntools ms``: ``rnn_forward(x, params, cell, device="cuda")`` (and
  ``rnn_backward(cache, d_output)``). Its API takes and returns NumPy arrays,
  so this time *includes the host<->device transfers*: ``x``, the weights
  and ``d_output`` to the GPU, the output, final state and gradients back.
- ``rnntools dev ms``: the same calls with ``x``, ``d_output`` and the
  weights already on the GPU (Numba device arrays, uploaded once) and the
  results left there as device arrays: the like of ``cuDNN ms``, and
  ``ratio dev`` compares the two.
- ``cuDNN ms``: torch with ``x``, ``d_output`` and the weights already on
  the GPU and the results left there: cuDNN's own time.
- ``cuDNN+copy ms``: torch with the transfers rnntools makes, except the
  weights (which the module keeps on the GPU): ``x`` (and ``d_output``) from
  NumPy to the GPU, the output and final state (and ``d_x`` and every
  parameter gradient) back to NumPy arrays. Compare ``rnntools ms`` with
  this column for the end-to-end cost of a NumPy-in, NumPy-out call.

The exit status is 1 if any check failed or rnntools raised.
"""

import argparse
import functools
import platform
import sys
import time

import numpy as np
from benchmarks.common import (
    CELLS,
    calls_per_sample,
    format_shape,
    gemm_flops,
    interleaved_samples,
    make_problem,
    make_torch_rnn,
    median_wall,
    parse_shape,
)
from compare_torch import (
    MIN_SAMPLE_SECONDS,
    N_WARMUP,
    SPREAD_LIMIT,
    TOLERANCE,
    cpu_model,
    error_row,
    first_calls,
    format_table,
    log,
    max_error,
    spread,
)

DEFAULT_SHAPES = (
    (4, 100, 256, 256),
    (32, 100, 256, 256),
    (128, 100, 512, 512),
    (256, 50, 64, 1024),
)
TINY_SHAPE = (2, 3, 4, 4)
MIN_REPEATS = 7
TORCH_DEVICE = "cuda"
EXIT_NO_GPU = 2


def parse_args(argv):
    """Read the command line.

    Parameters
    ----------
    argv : list of str or None
        The arguments, ``sys.argv[1:]`` when None.

    Returns
    -------
    args : argparse.Namespace
        ``cells`` a list of cell names, ``shapes`` a list of ``(B, T, I, H)``.
    """
    parser = argparse.ArgumentParser(
        description="Time rnntools device='cuda' against torch.nn.RNN/LSTM/GRU "
        "on cuDNN (float32, one layer, batch first), in one process.",
        epilog="Run as: python asv_benchmarks/compare_cuda.py --markdown",
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
        "--tiny",
        action="store_true",
        help=f"one tiny shape, {format_shape(TINY_SHAPE)}: a smoke test",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=MIN_REPEATS,
        help=f"timed samples per measurement (default and minimum {MIN_REPEATS})",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as Markdown"
    )
    parser.add_argument(
        "--no-torch", action="store_true", help="time rnntools only, without torch"
    )
    parser.add_argument(
        "--allow-tf32",
        action="store_true",
        help="let cuDNN's RNNs use TF32 tensor cores (default: IEEE fp32)",
    )
    parser.add_argument(
        "--allow-no-gpu",
        action="store_true",
        help="exit with status 0 instead of 2 when no usable GPU is found",
    )
    args = parser.parse_args(argv)

    args.cells = [cell.strip() for cell in args.cells.split(",") if cell.strip()]
    unknown = sorted(set(args.cells) - set(CELLS))
    if unknown or not args.cells:
        parser.error(f"--cells takes a comma-separated subset of {CELLS}")
    if args.tiny and args.shapes:
        parser.error("--tiny and --shapes exclude each other")
    if args.shapes:
        try:
            args.shapes = [parse_shape(s) for s in args.shapes.split(",") if s]
        except ValueError as exc:
            parser.error(str(exc))
        if not args.shapes:
            parser.error("--shapes is empty")
    else:
        args.shapes = [TINY_SHAPE] if args.tiny else list(DEFAULT_SHAPES)
    if args.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be at least {MIN_REPEATS}")
    return args


# ---------------------------------------------------------------- availability


def gpu_unavailable():
    """Why Numba cannot use a GPU here, or None when it can.

    Returns
    -------
    reason : str or None
    """
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba is a dependency
        return f"numba.cuda cannot be imported ({exc})"
    if not cuda.is_available():
        return "numba.cuda.is_available() is False (no NVIDIA GPU or CUDA driver)"
    return None


def load_torch(no_torch):
    """torch, when it can run cuDNN here; else None and the reason.

    Parameters
    ----------
    no_torch : bool
        ``--no-torch`` was given.

    Returns
    -------
    torch : module or None
    reason : str or None
        Why torch does not run, or None when it does.
    """
    if no_torch:
        return None, "--no-torch given"
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, (
            f"torch {torch.__version__} has no usable CUDA"
            f" (torch.version.cuda = {torch.version.cuda})"
        )
    if not torch.backends.cudnn.is_available():
        return None, f"torch {torch.__version__} has no cuDNN"
    return torch, None


def set_cudnn_tf32(torch, allow):
    """Allow or forbid TF32 tensor cores in cuDNN's RNNs.

    torch 2.9 and later read ``torch.backends.cudnn.rnn.fp32_precision``
    (and refuse a mix of it and the older flag); earlier versions read
    ``torch.backends.cudnn.allow_tf32``.

    Parameters
    ----------
    torch : module
    allow : bool

    Returns
    -------
    setting : str
        The flag and the value read back from it.
    """
    rnn_flags = getattr(torch.backends.cudnn, "rnn", None)
    if rnn_flags is not None and hasattr(rnn_flags, "fp32_precision"):
        rnn_flags.fp32_precision = "tf32" if allow else "ieee"
        return f"torch.backends.cudnn.rnn.fp32_precision = {rnn_flags.fp32_precision!r}"
    torch.backends.cudnn.allow_tf32 = allow
    return f"torch.backends.cudnn.allow_tf32 = {torch.backends.cudnn.allow_tf32}"


# ---------------------------------------------------------------- machine state


def one_line(exc):
    """``exc``'s type and message on one line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def describe_gpu():
    """The GPU Numba uses and the CUDA versions it sees, as lines of text."""
    import numba
    from numba import cuda

    lines = []
    if numba.config.ENABLE_CUDASIM:
        lines.append(
            "WARNING: NUMBA_ENABLE_CUDASIM is set: rnntools runs on Numba's CUDA"
            " simulator, on the CPU; its timings mean nothing"
        )
    try:
        device = cuda.get_current_device()
        name = getattr(device, "name", "?")
        name = name.decode() if isinstance(name, bytes) else name
        capability = ".".join(map(str, getattr(device, "compute_capability", ())))
        lines.append(f"gpu (numba): {name}, compute capability {capability or '?'}")
    except Exception as exc:
        lines.append(f"gpu (numba): unknown ({one_line(exc)})")
    try:
        from numba.cuda.cudadrv.driver import driver

        driver_version = ".".join(map(str, driver.get_version()))
        runtime_version = ".".join(map(str, cuda.runtime.get_version()))
        lines.append(
            f"cuda: driver {driver_version}, runtime (numba) {runtime_version}"
        )
    except Exception as exc:
        lines.append(f"cuda versions: unknown ({one_line(exc)})")
    return lines


def print_machine_state(rnntools, torch, torch_reason, tf32_setting):
    """Print the versions, the GPU and torch's settings."""
    import numba

    print("== machine")
    print(f"cpu: {cpu_model()} ({platform.machine()}, {platform.system()})")
    for line in describe_gpu():
        print(line)
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {numba.__version__}, rnntools {getattr(rnntools, '__version__', '?')}"
    )
    from rnntools.kernels import cuda as kernels

    print(f"rnntools' large products and bias sums: {kernels.products_library()}")
    if torch is None:
        print(f"torch: not run ({torch_reason}); timing rnntools only")
        return
    print(
        f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
        f"{torch.backends.cudnn.version()}), gpu (torch): "
        f"{torch.cuda.get_device_name(torch.cuda.current_device())}"
    )
    print(
        f"cuDNN: torch.backends.cudnn.enabled = {torch.backends.cudnn.enabled}, "
        f"benchmark = {torch.backends.cudnn.benchmark}; {tf32_setting}"
    )


# ---------------------------------------------------------------- the calls


def rnntools_results(rnn_forward, rnn_backward, problem, device):
    """rnntools' forward and backward results as two dicts of NumPy arrays.

    Parameters
    ----------
    rnn_forward, rnn_backward : callable
        ``rnntools.functional``'s.
    problem : tuple
        ``(cell, x, weights, d_output)``.
    device : {"cpu", "cuda"}

    Returns
    -------
    forward : dict of str to ndarray
        ``output``, ``h_n`` and, for the LSTM, ``c_n``.
    backward : dict of str to ndarray
        ``d_x`` and the gradient of every parameter, under its name.
    """
    cell, x, weights, d_output = problem
    output, final_state, cache = rnn_forward(x, weights, cell, device=device)
    grads, d_x, _ = rnn_backward(cache, d_output)
    forward = {"output": output, **named_states(final_state)}
    return forward, {"d_x": d_x, **grads}


def resident_results(rnn_forward, rnn_backward, cell, on_device):
    """Like :func:`rnntools_results`, from device arrays ``(x, weights,
    d_output)``: the device results, copied to the host for the check."""
    x, weights, d_output = on_device
    output, final_state, cache = rnn_forward(x, weights, cell, device="cuda")
    grads, d_x, _ = rnn_backward(cache, d_output)
    states = final_state if isinstance(final_state, tuple) else (final_state,)
    final_state = tuple(part.copy_to_host() for part in states)
    forward = {"output": output.copy_to_host(), **named_states(final_state)}
    backward = {name: value.copy_to_host() for name, value in grads.items()}
    return forward, {"d_x": d_x.copy_to_host(), **backward}


def named_states(state):
    """A final state, ``h_n`` or ``(h_n, c_n)``, as a dict keyed by those names."""
    states = state if isinstance(state, tuple) else (state,)
    return dict(zip(("h_n", "c_n")[: len(states)], states, strict=True))


def to_numpy(tensor):
    """A torch tensor, copied from the GPU to a NumPy array."""
    return tensor.detach().cpu().numpy()


def state_to_numpy(state):
    """torch's final state (``h_n`` or ``(h_n, c_n)``) as a dict of arrays."""
    return {name: to_numpy(s) for name, s in named_states(state).items()}


def torch_forward_copy(torch, module, x):
    """Forward with NumPy in and out: ``x`` to the GPU, the results back."""
    with torch.no_grad():
        output, state = module(torch.from_numpy(x).to(TORCH_DEVICE))
    return {"output": to_numpy(output), **state_to_numpy(state)}


def torch_forward_backward_copy(torch, module, x, d_output):
    """Forward and backward with NumPy in and out, as rnntools' API has them.

    ``x`` goes to the GPU, the output and final state come back, then
    ``d_output`` goes to the GPU and ``d_x`` and every parameter gradient come
    back.

    Returns
    -------
    forward : dict of str to ndarray
    backward : dict of str to ndarray
    """
    module.zero_grad(set_to_none=True)
    x_tensor = torch.from_numpy(x).to(TORCH_DEVICE).requires_grad_(True)
    output, state = module(x_tensor)
    forward = {"output": to_numpy(output), **state_to_numpy(state)}
    output.backward(torch.from_numpy(d_output).to(TORCH_DEVICE))
    backward = {"d_x": to_numpy(x_tensor.grad)}
    backward.update(
        (name, to_numpy(parameter.grad))
        for name, parameter in module.named_parameters()
    )
    return forward, backward


def torch_forward_on_device(torch, module, x_device):
    """Forward under ``torch.no_grad()``, input and results on the GPU."""
    with torch.no_grad():
        return module(x_device)


def torch_forward_backward_on_device(module, x_device, d_output_device):
    """Forward and backward, ``x`` included, everything left on the GPU."""
    module.zero_grad(set_to_none=True)
    x_tensor = x_device.detach().requires_grad_(True)
    output, _ = module(x_tensor)
    output.backward(d_output_device)
    return x_tensor


def synchronized(func, synchronize):
    """``func`` between two ``synchronize()`` calls: one whole GPU call."""

    def call():
        synchronize()
        func()
        synchronize()

    return call


def measure(funcs, repeats):
    """Warm up, calibrate and time ``funcs`` in alternation.

    Parameters
    ----------
    funcs : dict of str to callable
        Each already synchronized (see ``synchronized``).
    repeats : int

    Returns
    -------
    samples : dict of str to list of (wall_seconds, cpu_seconds)
    """
    for func in funcs.values():
        for _ in range(N_WARMUP):
            func()
    numbers = {
        name: calls_per_sample(func, MIN_SAMPLE_SECONDS) for name, func in funcs.items()
    }
    return interleaved_samples(funcs, repeats=repeats, numbers=numbers)


# ---------------------------------------------------------------- one shape

NUMERIC = (
    "rnntools ms",
    "rnntools dev ms",
    "cuDNN ms",
    "cuDNN+copy ms",
    "ratio",
    "ratio dev",
    "ratio+copy",
    "TFLOP/s",
    "spread",
    "max err",
)
TORCH_COLUMNS = ("cuDNN ms", "cuDNN+copy ms", "ratio", "ratio dev", "ratio+copy")


def table_columns(with_torch):
    """The table's columns, without torch's when torch does not run."""
    columns = ("cell", "shape", "mode", *NUMERIC, "check", "noisy")
    if with_torch:
        return columns
    return tuple(c for c in columns if c not in TORCH_COLUMNS)


def run_shape(cell, shape, args, context):
    """The table rows of one cell and shape (forward, then forward+backward).

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    shape : tuple of int
        ``(B, T, I, H)``.
    args : argparse.Namespace
    context : tuple
        ``(torch or None, rnn_forward, rnn_backward)``.

    Returns
    -------
    rows : list of dict of str to str
    """
    from numba import cuda

    torch, rnn_forward, rnn_backward = context
    x, weights, d_output = make_problem(cell, shape)
    problem = (cell, x, weights, d_output)
    ours = rnntools_results(rnn_forward, rnn_backward, problem, "cuda")
    # Device-resident: x, d_output and the weights uploaded once, the results
    # left on the device (Numba device arrays in, device arrays out).
    on_device = (
        cuda.to_device(x),
        {name: cuda.to_device(value) for name, value in weights.items()},
        cuda.to_device(d_output),
    )
    ours_on_device = resident_results(rnn_forward, rnn_backward, cell, on_device)

    def ours_forward():
        return rnn_forward(x, weights, cell, device="cuda")

    def ours_forward_backward():
        _, _, cache = ours_forward()
        return rnn_backward(cache, d_output)

    def ours_forward_resident():
        return rnn_forward(on_device[0], on_device[1], cell, device="cuda")

    def ours_forward_backward_resident():
        _, _, cache = ours_forward_resident()
        return rnn_backward(cache, on_device[2])

    modes = {
        "fwd": {
            "rnntools": synchronized(ours_forward, cuda.synchronize),
            "rnntools dev": synchronized(ours_forward_resident, cuda.synchronize),
        },
        "fwd+bwd": {
            "rnntools": synchronized(ours_forward_backward, cuda.synchronize),
            "rnntools dev": synchronized(
                ours_forward_backward_resident, cuda.synchronize
            ),
        },
    }
    if torch is not None:
        module = make_torch_rnn(cell, weights, shape).to(TORCH_DEVICE)
        x_device = torch.from_numpy(x).to(TORCH_DEVICE)
        d_output_device = torch.from_numpy(d_output).to(TORCH_DEVICE)
        sync = torch.cuda.synchronize
        modes["fwd"]["cuDNN"] = synchronized(
            functools.partial(torch_forward_on_device, torch, module, x_device), sync
        )
        modes["fwd"]["cuDNN+copy"] = synchronized(
            functools.partial(torch_forward_copy, torch, module, x), sync
        )
        modes["fwd+bwd"]["cuDNN"] = synchronized(
            functools.partial(
                torch_forward_backward_on_device, module, x_device, d_output_device
            ),
            sync,
        )
        modes["fwd+bwd"]["cuDNN+copy"] = synchronized(
            functools.partial(torch_forward_backward_copy, torch, module, x, d_output),
            sync,
        )
    if torch is not None and not args.allow_tf32:
        reference = torch_forward_backward_copy(torch, module, x, d_output)
    else:
        reference = rnntools_results(rnn_forward, rnn_backward, problem, "cpu")
    errors = {
        mode: max(
            max_error(
                (name, value, reference[part].get(name))
                for name, value in results[part].items()
            )
            for results in (ours, ours_on_device)
        )
        for mode, part in (("fwd", 0), ("fwd+bwd", 1))
    }

    rows = []
    for mode, funcs in modes.items():
        samples = measure(funcs, args.repeats)
        seconds = {name: median_wall(s) for name, s in samples.items()}
        flops = gemm_flops(cell, shape, backward=mode == "fwd+bwd")
        worst_spread = max(spread(s) for s in samples.values())
        error, error_at = errors[mode]
        row = {
            "cell": cell,
            "shape": format_shape(shape),
            "mode": mode,
            "rnntools ms": f"{seconds['rnntools'] * 1e3:.3f}",
            "rnntools dev ms": f"{seconds['rnntools dev'] * 1e3:.3f}",
            "TFLOP/s": f"{flops / seconds['rnntools'] / 1e12:.3f}",
            "spread": f"{worst_spread:.0%}",
            "max err": f"{error:.1e}",
            "check": "ok" if error <= TOLERANCE else f"FAIL ({error_at})",
            "noisy": "noisy" if worst_spread > SPREAD_LIMIT else "",
        }
        if torch is not None:
            row.update(
                {
                    "cuDNN ms": f"{seconds['cuDNN'] * 1e3:.3f}",
                    "cuDNN+copy ms": f"{seconds['cuDNN+copy'] * 1e3:.3f}",
                    "ratio": f"{seconds['rnntools'] / seconds['cuDNN']:.2f}",
                    "ratio dev": f"{seconds['rnntools dev'] / seconds['cuDNN']:.2f}",
                    "ratio+copy": f"{seconds['rnntools'] / seconds['cuDNN+copy']:.2f}",
                }
            )
        rows.append(row)
        log(
            f"{cell} {format_shape(shape)} {mode}: "
            + ", ".join(f"{name} {s * 1e3:.3f} ms" for name, s in seconds.items())
        )
    return rows


# ---------------------------------------------------------------- main


def main(argv=None):
    """Run the comparison; return the exit status."""
    args = parse_args(argv)
    reason = gpu_unavailable()
    if reason is not None:
        status = 0 if args.allow_no_gpu else EXIT_NO_GPU
        print(
            f"compare_cuda.py: no usable GPU, nothing timed: {reason}"
            f" (exit status {status})",
            flush=True,
        )
        return status

    start = time.perf_counter()
    torch, torch_reason = load_torch(args.no_torch)
    tf32_setting = None
    if torch is not None:
        torch.backends.cudnn.enabled = True
        tf32_setting = set_cudnn_tf32(torch, args.allow_tf32)

    import rnntools
    from rnntools.functional import rnn_backward, rnn_forward

    print_machine_state(rnntools, torch, torch_reason, tf32_setting)

    print("\n== start-up: first calls, device='cuda' (float32, shape 2x3x4x5)")
    try:
        first = first_calls(
            args.cells,
            functools.partial(rnn_forward, device="cuda"),
            rnn_backward,
            num_layers=1,
            bidirectional=False,
        )
    except Exception as exc:
        print(f"rnntools device='cuda' raised on its first call: {one_line(exc)}")
        return 1
    for cell, (fwd1, bwd1, fwd2, bwd2) in first.items():
        print(
            f"{cell:5s} first call: forward {fwd1:8.3f} s, backward {bwd1:8.3f} s;"
            f"  second call: forward {fwd2 * 1e3:.2f} ms, backward {bwd2 * 1e3:.2f} ms"
        )

    versus = " vs torch cuDNN" if torch is not None else " alone (torch not run)"
    print(
        f"\n== rnntools device='cuda'{versus} (num_layers=1, batch_first,"
        f" float32, median of {args.repeats} samples)"
    )
    print(
        "rnntools ms INCLUDES host<->device transfers: its API takes NumPy arrays"
        " (x, weights, d_output) and returns NumPy arrays (output, final state,"
        " gradients). rnntools dev ms: x, weights and d_output already on the"
        " GPU (device arrays), results left there."
    )
    if torch is not None:
        print(
            "cuDNN ms: torch with inputs, weights and results on the GPU (no"
            " transfers). cuDNN+copy ms: torch with x (and d_output) copied from"
            " NumPy to the GPU and the output, final state (and d_x, parameter"
            " gradients) copied back to NumPy; weights stay on the GPU."
        )
    else:
        print(f"torch: not run ({torch_reason}).")
    if torch is not None and not args.allow_tf32:
        reference = "torch cuDNN"
    else:
        reference = "rnntools device='cpu'"
    if args.tiny:
        print("note: --tiny: a smoke test; the timings mean nothing")

    columns = table_columns(torch is not None)
    context = (torch, rnn_forward, rnn_backward)
    rows = []
    for cell in args.cells:
        for shape in args.shapes:
            try:
                rows += run_shape(cell, shape, args, context)
            except Exception as exc:
                log(f"{cell} {format_shape(shape)}: {type(exc).__name__}: {exc}")
                rows.append(error_row(cell, shape, exc, columns))
            finally:
                if torch is not None:
                    torch.cuda.empty_cache()

    print(format_table(rows, args.markdown, columns, NUMERIC))
    notes = [
        "Every timed call is bracketed by a device synchronize (torch: "
        "torch.cuda.synchronize(), rnntools: numba.cuda.synchronize()).",
    ]
    if torch is not None:
        notes.append(
            "ratio = rnntools / cuDNN, ratio dev = rnntools dev / cuDNN,"
            " ratio+copy = rnntools / cuDNN+copy (below 1: rnntools faster)."
        )
    notes += [
        "TFLOP/s = rnntools' GEMM flops (2*B*T*G*H*(I+H) forward, three times"
        " that forward+backward; pointwise work left out) / rnntools ms,"
        " transfers included.",
        "spread = (max - min) / median of the samples, worst of the libraries;"
        f" noisy above {SPREAD_LIMIT:.0%}.",
        f"max err: rnntools against {reference}, relative to max(1, max|ref|),"
        f" tolerance {TOLERANCE:g}; fwd rows check the output and final state,"
        " fwd+bwd rows every gradient.",
    ]
    print("\n" + "\n".join(notes))
    failed = [row for row in rows if row["check"] != "ok"]
    print(f"total {time.perf_counter() - start:.0f} s; {len(failed)} rows failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
