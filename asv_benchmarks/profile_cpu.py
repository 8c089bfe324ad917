"""Where the time of a CPU ``rnn_forward`` or ``rnn_backward`` call goes,
thread by thread.

Run it from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python asv_benchmarks/profile_cpu.py --cell lstm --shapes 32x50x32x64

A call splits the batch into blocks of sequences, one per thread
(:mod:`rnntools.functional`); the calling thread runs the first block itself.
For each shape and mode (``inference``: ``rnn_forward(...,
return_cache=False)``; ``forward``: the training forward; ``backward``:
``rnn_backward`` after an untimed forward), float32, one layer,
unidirectional, it prints medians over the calls of:

1. the time before the first block starts: argument checks, the weights
   transposed, the batch split, the hand-off of the other blocks;
2. for each thread (the caller first, then the workers by start time): when
   its block starts, how long its block runs Python before its first kernel,
   the time in kernels (from the call to the return, so re-taking the GIL
   counts), the rest of the block (Python, and waiting for the GIL), and when
   the block ends;
3. the time after the last block ends: results assembled, the workers'
   hand-back.

Times are from the start of the call. Kernels are the entry points of
:mod:`rnntools.kernels.cpu` that :mod:`rnntools.functional` calls (for
``layer_param_grads``, thin Python around compiled products). ``--ragged``
draws lengths between ``T/4`` and ``T``. The number of threads is rnntools'
(``RNNTOOLS_NUM_THREADS`` or the CPUs).
"""

import argparse
import sys
import threading
import time

import numpy as np
from benchmarks.common import CELLS, format_shape, make_problem, parse_shape

TINY_SHAPE = (2, 3, 4, 5)
MODES = ("inference", "forward", "backward")
#: The kernels module's entry points that the functional API calls.
KERNELS = (
    "lstm_forward_layer",
    "gru_forward_layer",
    "rnn_forward_layer",
    "lstm_backward_layer",
    "gru_backward_layer",
    "rnn_backward_layer",
    "layer_param_grads",
    "rnn_previous_states",
)


def parse_args(argv):
    """Read the command line (``argv`` as for :func:`argparse.parse_args`)."""
    parser = argparse.ArgumentParser(
        description="Split the time of CPU rnn_forward/rnn_backward calls by thread."
    )
    parser.add_argument("--cell", default="lstm", choices=CELLS)
    parser.add_argument(
        "--shapes",
        default="32x50x32x64,64x100x64x128",
        help="comma-separated BxTxIxH (default: %(default)s)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated, of %(default)s (default: all)",
    )
    parser.add_argument(
        "--calls", type=int, default=300, help="timed calls (default: %(default)s)"
    )
    parser.add_argument(
        "--ragged", action="store_true", help="lengths between T/4 and T"
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help=f"3 calls at {format_shape(TINY_SHAPE)}: a smoke test, not a timing",
    )
    args = parser.parse_args(argv)
    args.modes = args.modes.split(",")
    unknown = sorted(set(args.modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {list(MODES)}")
    if args.tiny:
        args.shapes, args.calls = [TINY_SHAPE], 3
    else:
        args.shapes = [parse_shape(text) for text in args.shapes.split(",")]
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    return args


class _Recorder:
    """Replaces functions by timed wrappers that record ``(kind, thread,
    start, end)``; :meth:`restore` puts the originals back."""

    def __init__(self):
        self.events = []
        self._patched = []

    def patch(self, owner, name, kind):
        original = getattr(owner, name)
        events = self.events

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                # list.append is atomic under the GIL: workers record too.
                events.append((kind, threading.get_ident(), start, time.perf_counter()))

        setattr(owner, name, timed)
        self._patched.append((owner, name, original))

    def restore(self):
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._patched.clear()


def _call_split(events, start, end, caller):
    """The split of one call (see the module docstring), in seconds."""
    inside = [event for event in events if start <= event[2] and event[3] <= end]
    blocks = sorted((e for e in inside if e[0] == "block"), key=lambda e: e[2])

    def first_start(thread):
        return min(b[2] for b in blocks if b[1] == thread)

    threads = sorted(
        {e[1] for e in blocks}, key=lambda t: (t != caller, first_start(t))
    )
    rows = []
    for thread in threads:
        own = [b for b in blocks if b[1] == thread]
        block_start = min(b[2] for b in own)
        block_end = max(b[3] for b in own)
        kernels = [e for e in inside if e[0] == "kernel" and e[1] == thread]
        in_kernels = sum(e[3] - e[2] for e in kernels)
        first = min((e[2] for e in kernels), default=block_end)
        rows.append(
            (
                block_start - start,
                first - block_start,
                in_kernels,
                block_end - block_start - in_kernels,
                block_end - start,
            )
        )
    before = blocks[0][2] - start if blocks else end - start
    after = end - max(b[3] for b in blocks) if blocks else 0.0
    return end - start, before, rows, after


def profile_shape(cell, shape, mode, calls, ragged):
    """Print the split of one shape and mode."""
    from rnntools import functional
    from rnntools._threads import num_threads

    x, params, d_output = make_problem(cell, shape)
    batch, steps = shape[0], shape[1]
    rng = np.random.default_rng(1)
    lengths = rng.integers(max(1, steps // 4), steps + 1, batch) if ragged else None
    if lengths is not None:
        lengths[0] = steps

    def prepare():
        """What the timed call needs: a forward's cache for backward."""
        if mode == "backward":
            return functional.rnn_forward(x, params, cell, lengths=lengths)[2]
        return None

    def run(cache):
        if mode == "backward":
            functional.rnn_backward(cache, d_output)
        else:
            functional.rnn_forward(
                x, params, cell, lengths=lengths, return_cache=mode == "forward"
            )

    for _ in range(min(10, calls)):  # compiles, or loads the cache; warms up
        run(prepare())
    recorder = _Recorder()
    block_function = {
        "inference": "_run_block",
        "forward": "_run_block",
        "backward": "_backward_block",
    }[mode]
    recorder.patch(functional, block_function, "block")
    kernels = functional._backend("cpu").kernels
    for name in KERNELS:
        recorder.patch(kernels, name, "kernel")
    splits = []
    try:
        for _ in range(calls):
            argument = prepare()
            recorder.events.clear()
            start = time.perf_counter()
            run(argument)
            end = time.perf_counter()
            splits.append(
                _call_split(recorder.events, start, end, threading.get_ident())
            )
    finally:
        recorder.restore()
    _print_split(cell, shape, mode, ragged, num_threads(), splits)


def _print_split(cell, shape, mode, ragged, threads, splits):
    def us(values):
        return f"{1e6 * np.median(values):8.0f} us"

    totals, befores, rows, afters = zip(*splits, strict=True)
    print(
        f"== {cell} {format_shape(shape)}{' ragged' if ragged else ''} {mode}, "
        f"{threads} threads, float32: median {1e3 * np.median(totals):.3f} ms "
        f"over {len(splits)} calls"
    )
    print(f"   {'before the first block (checks, weights, split)':49s}{us(befores)}")
    print(
        f"   {'thread':10s} {'block start':>11s} {'to kernel':>11s} "
        f"{'in kernels':>11s} {'Python, GIL':>11s} {'block end':>11s}"
    )
    width = max(len(row) for row in rows)
    for index in range(width):
        # Calls that split the batch into fewer blocks leave this row out.
        present = [row[index] for row in rows if len(row) > index]
        columns = list(zip(*present, strict=True))
        label = "caller" if index == 0 else f"worker {index}"
        print(f"   {label:10s} " + " ".join(f"{us(column):>11s}" for column in columns))
    print(f"   {'after the last block (results, hand-back)':49s}{us(afters)}")


def main(argv=None):
    """Run the profile; return the exit status."""
    args = parse_args(argv)
    for shape in args.shapes:
        for mode in args.modes:
            profile_shape(args.cell, shape, mode, args.calls, args.ragged)
    return 0


if __name__ == "__main__":
    sys.exit(main())
