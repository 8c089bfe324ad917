"""Where the time of ``rnn_forward`` + ``rnn_backward(device="cuda")`` goes.

Run it from the repository root on a machine with an NVIDIA GPU::

    python asv_benchmarks/profile_cuda.py --cell lstm --shapes 4x100x256x256

For each shape (float32, one layer, unidirectional) it prints:

1. the median wall time of forward+backward, NumPy in and NumPy out;
2. the same calls with every kernel launch of :mod:`rnntools.kernels.cuda`
   bracketed by ``numba.cuda.synchronize()``: the time of each kernel, its
   number of launches per forward+backward, and what is left outside the
   launches (validation, allocation, host<->device transfers, host-side
   transposes, Python).

The synchronisation serialises the GPU with the host, so the bracketed total
is an upper bound of the plain one; the split is what matters.

With ``--strategies`` it times instead, per shape and for every time-loop
strategy of :mod:`rnntools.kernels.cuda` (sequence-resident, a launch per
step, a cuBLAS product per step where CuPy runs cuBLAS), the forward and the
forward+backward with ``x``, the weights and ``d_output`` already on the
device (the results left there): what sets the batch sizes at which the
drivers switch strategy. Under Numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) it runs, but its times mean
nothing. ``--allow-no-gpu`` makes it exit with status 0 when there is no GPU
(a smoke test in CI).
"""

import argparse
import sys
import time
from collections import defaultdict

import numpy as np
from benchmarks.common import CELLS, format_shape, make_problem, parse_shape

TINY_SHAPE = (2, 3, 4, 5)
EXIT_NO_GPU = 2


def parse_args(argv):
    """Read the command line (``argv`` as for :func:`argparse.parse_args`)."""
    parser = argparse.ArgumentParser(
        description="Split rnntools device='cuda' forward+backward time by kernel."
    )
    parser.add_argument("--cell", default="lstm", choices=CELLS)
    parser.add_argument(
        "--shapes",
        default="4x100x256x256,256x50x64x1024",
        help="comma-separated BxTxIxH (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed calls (default: %(default)s)"
    )
    parser.add_argument(
        "--strategies",
        action="store_true",
        help="time every time-loop strategy (device-resident arrays) per shape",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help=f"one call at {format_shape(TINY_SHAPE)}: a smoke test, not a timing",
    )
    parser.add_argument(
        "--allow-no-gpu",
        action="store_true",
        help="exit with status 0 instead of 2 when no usable GPU is found",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.shapes, args.repeats = [TINY_SHAPE], 1
    else:
        args.shapes = [parse_shape(text) for text in args.shapes.split(",")]
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


class _TimedKernel:
    """Stands in for a kernel: synchronises around each launch and records."""

    def __init__(self, name, kernel, cuda, seconds, launches):
        self.name, self.kernel, self.cuda = name, kernel, cuda
        self.seconds, self.launches = seconds, launches

    def __getitem__(self, config):
        launch = self.kernel[config]

        def timed(*args):
            self.cuda.synchronize()
            start = time.perf_counter()
            launch(*args)
            self.cuda.synchronize()
            self.seconds[self.name] += time.perf_counter() - start
            self.launches[self.name] += 1

        return timed


def _timed_call(name, function, cuda, seconds, launches):
    """``function`` synchronised around each call and recorded as ``name``."""

    def timed(*args, **kwargs):
        cuda.synchronize()
        start = time.perf_counter()
        function(*args, **kwargs)
        cuda.synchronize()
        seconds[name] += time.perf_counter() - start
        launches[name] += 1

    return timed


def profile_shape(cell, shape, repeats, cuda):
    """Print the wall time and the per-kernel split of one shape."""
    from rnntools.functional import rnn_backward, rnn_forward
    from rnntools.kernels import cuda as kernels

    x, params, d_output = make_problem(cell, shape)

    def forward_backward():
        _, _, cache = rnn_forward(x, params, cell, device="cuda")
        rnn_backward(cache, d_output)
        cuda.synchronize()

    forward_backward()  # compiles, or loads the cache
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward_backward()
        walls.append(time.perf_counter() - start)
    print(
        f"== {cell} {format_shape(shape)}: forward+backward median "
        f"{1e3 * np.median(walls):.3f} ms over {repeats} calls"
    )

    seconds, launches = defaultdict(float), defaultdict(int)
    # The Numba kernels, and the two functions that run the large products and
    # bias sums on cuBLAS instead where CuPy can (their launches then do not
    # reach _gemm and _column_sums): a synchronised call of each counts.
    names = list(kernels.SIGNATURES["float32"])
    library_calls = {
        name: getattr(kernels, name) for name in ("_matmul", "_column_sums_into")
    }
    originals = {name: getattr(kernels, name) for name in names}
    try:
        for name, kernel in originals.items():
            setattr(kernels, name, _TimedKernel(name, kernel, cuda, seconds, launches))
        if kernels._cupy() is not None:
            for name, call in library_calls.items():
                label = f"{name} (cuBLAS/CuPy)"
                timed = _timed_call(label, call, cuda, seconds, launches)
                setattr(kernels, name, timed)
        start = time.perf_counter()
        for _ in range(repeats):
            forward_backward()
        wall = (time.perf_counter() - start) / repeats
    finally:
        for name, kernel in {**originals, **library_calls}.items():
            setattr(kernels, name, kernel)
    print(f"   every launch synchronised: {1e3 * wall:.3f} ms per forward+backward")
    print(f"   products and bias sums: {kernels.products_library()}")
    for name in sorted(seconds, key=seconds.get, reverse=True):
        print(
            f"   {name:28s} {1e3 * seconds[name] / repeats:9.3f} ms"
            f"  {launches[name] / repeats:6.0f} launches"
        )
    outside = wall - sum(seconds.values()) / repeats
    print(f"   {'(outside the launches)':28s} {1e3 * outside:9.3f} ms")


#: The time-loop strategies: what ``_use_gemm_steps`` and
#: ``_use_sequence_kernels`` of :mod:`rnntools.kernels.cuda` answer for each.
STRATEGIES = {
    "sequence": (False, True),
    "per step": (False, False),
    "gemm per step": (True, False),
}


def time_strategies(cell, shape, repeats, cuda):
    """Print forward and forward+backward medians of every strategy at one
    shape, with device-resident inputs and results."""
    from rnntools.functional import rnn_backward, rnn_forward
    from rnntools.kernels import cuda as kernels

    x, params, d_output = make_problem(cell, shape)
    x, d_output = cuda.to_device(x), cuda.to_device(d_output)
    params = {name: cuda.to_device(value) for name, value in params.items()}

    def forward():
        result = rnn_forward(x, params, cell, device="cuda")
        cuda.synchronize()
        return result

    def forward_backward():
        rnn_backward(forward()[2], d_output)
        cuda.synchronize()

    batch, _, _, hidden = shape
    width = params["weight_hh_l0"].shape[0]
    chosen = "gemm per step" if kernels._use_gemm_steps(batch, width, hidden) else None
    if chosen is None:
        chosen = "sequence" if kernels._use_sequence_kernels(shape[0]) else "per step"
    originals = (kernels._use_gemm_steps, kernels._use_sequence_kernels)
    for name, (gemm, sequence) in STRATEGIES.items():
        if gemm and kernels._cupy() is None:
            print(f"   {name:14s} not run: {kernels.products_library()} only")
            continue
        kernels._use_gemm_steps = lambda *sizes, gemm=gemm: gemm
        kernels._use_sequence_kernels = lambda batch, sequence=sequence: sequence
        try:
            medians = []
            for call in (forward, forward_backward):
                call()  # compiles, or loads the cache
                walls = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    call()
                    walls.append(time.perf_counter() - start)
                medians.append(1e3 * np.median(walls))
        finally:
            kernels._use_gemm_steps, kernels._use_sequence_kernels = originals
        mark = "  (the drivers' choice)" if name == chosen else ""
        print(
            f"   {name:14s} fwd {medians[0]:9.3f} ms   fwd+bwd {medians[1]:9.3f} ms"
            f"{mark}"
        )


def main(argv=None):
    """Run the profile; return the exit status."""
    args = parse_args(argv)
    from numba import cuda

    if not cuda.is_available():
        print("profile_cuda.py: no usable GPU, nothing profiled")
        return 0 if args.allow_no_gpu else EXIT_NO_GPU
    for shape in args.shapes:
        if args.strategies:
            print(f"== {args.cell} {format_shape(shape)}: time-loop strategies")
            time_strategies(args.cell, shape, args.repeats, cuda)
        else:
            profile_shape(args.cell, shape, args.repeats, cuda)
    return 0


if __name__ == "__main__":
    sys.exit(main())
