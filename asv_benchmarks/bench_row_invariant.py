"""GFLOP/s of the forward products: BLAS against the row-invariant tiles.

One thread (OpenBLAS limited by threadpoolctl). Each kernel is called in a
loop inside an ``@njit`` function (as the RNN kernels call it), about 2 ms per
timing; the kernels are interleaved round after round, and each cell is the
median (and, with ``--best``, also the best) over the rounds: the machine is
shared. Columns: ``blas.matmul`` (float32 in OpenBLAS small-kernel blocks),
the plain row-by-row loop, ``row_invariant_matmul`` reading ``b`` in place,
and ``row_invariant_matmul`` reading ``b`` packed in panels
(:func:`~rnntools.kernels.row_invariant.pack_panels`, as every RNN kernel
reads its weights; packed once, outside the timing). 128 x 512 x 2048 is an
LSTM of 512 units' recurrent product on one thread's 128 rows, whose panels
are deeper than L1 (see ``PREFETCH_ROWS``).

Run as::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python asv_benchmarks/bench_row_invariant.py [--rounds 21] [--best]
"""

import argparse
import time

import numpy as np
import threadpoolctl
from numba import njit
from threadpoolctl import threadpool_limits

from rnntools.kernels import blas, row_invariant

SHAPES = [
    (1, 32, 128), (1, 128, 512), (4, 32, 128), (16, 64, 256), (32, 64, 256),
    (32, 128, 512), (100, 128, 512), (128, 256, 1024), (128, 512, 2048),
    (500, 128, 512), (1600, 32, 256), (12800, 128, 1024),
]  # fmt: skip


@njit
def _row_by_row(a, b, out):
    row_invariant._row_by_row(a, b, out, out.reshape(out.size)[:0])


@njit
def _row_invariant(a, b, out):
    row_invariant.row_invariant_matmul(a, b, out, row_invariant.no_bias(out))


KERNELS = {
    "blas.matmul": blas.matmul,
    "row by row": _row_by_row,
    "row_invariant": _row_invariant,
    "packed": _row_invariant,
}


@njit
def repeat(kernel, a, b, out, n):
    for _ in range(n):
        kernel(a, b, out)


def timings(calls, rounds):
    """Per-call seconds of each callable, ``rounds`` interleaved samples."""
    repeats = []
    for call in calls:
        call(1)
        start = time.perf_counter()
        call(3)
        repeats.append(max(1, int(2e-3 / ((time.perf_counter() - start) / 3))))
    samples = [[] for _ in calls]
    for _ in range(rounds):
        for call, count, times in zip(calls, repeats, samples, strict=True):
            start = time.perf_counter()
            call(count)
            times.append((time.perf_counter() - start) / count)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--best", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # Load SciPy's OpenBLAS (Numba's np.dot resolves it on first use) before
    # limiting threads: threadpoolctl only limits libraries already loaded.
    x = np.ones((2, 2), np.float32)
    repeat(blas.matmul, x, x, np.empty_like(x), 1)
    with threadpool_limits(1):
        for info in threadpoolctl.threadpool_info():
            print(f"{info['internal_api']}: {info['num_threads']} thread(s)")
        for dtype in (np.float32, np.float64):
            best = " (best)" if args.best else ""
            print(f"\n{dtype.__name__}: GFLOP/s, median{best}")
            print(f"{'M x K x N':>16}" + "".join(f"{n:>18}" for n in KERNELS))
            for m, k, n in SHAPES:
                a = rng.standard_normal((m, k)).astype(dtype)
                b = rng.standard_normal((k, n)).astype(dtype)
                out = np.empty((m, n), dtype)
                packed = row_invariant.pack_panels(b)
                calls = [
                    lambda count, kernel=kernel, a=a, b=operand, out=out: repeat(
                        kernel, a, b, out, count
                    )
                    for name, kernel in KERNELS.items()
                    for operand in [packed if name == "packed" else b]
                ]
                flops = 2.0 * m * k * n
                cells = []
                for times in timings(calls, args.rounds):
                    cell = f"{flops / np.median(times) / 1e9:.0f}"
                    if args.best:
                        cell += f" ({flops / np.min(times) / 1e9:.0f})"
                    cells.append(cell)
                print(f"{f'{m}x{k}x{n}':>16}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main()
