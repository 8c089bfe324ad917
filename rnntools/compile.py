"""Compile every CPU kernel ahead of time: ``python -m rnntools.compile``.

Numba compiles a kernel on its first call and caches the machine code on
disk (``cache=True``; next to the package, or under ``NUMBA_CACHE_DIR``). The
first ``fit`` in a fresh environment therefore pays the compilation (about
10 s for an LSTM on a 2-core machine: the row-invariant products are
register tiles written in LLVM IR, which every kernel that calls them
compiles again). Running this module once — in a Docker image build, on each
node of a cluster, after ``pip install`` — fills the cache for every cell, both
directions, ragged batches, both float dtypes, single steps and decoding, so
that later processes only load machine code.

Usage::

    python -m rnntools.compile [--dtypes float32 float64]
"""

import argparse
import time

import numpy as np

from .cells import GATES
from .functional import prepare_step, rnn_backward, rnn_forward, rnn_step
from .kernels import _jit, cpu
from .layers import embedding_backward, embedding_forward


def compile_kernels(dtypes=("float32", "float64")):
    """Call every kernel once on tiny inputs (compiling or loading it).

    Parameters
    ----------
    dtypes : sequence of {"float32", "float64"}

    Returns
    -------
    seconds : float
        Wall time taken.
    """
    from .cells import init_params

    start = time.perf_counter()
    for dtype in dtypes:
        for cell in GATES:
            for bidirectional in (False, True):
                params = init_params(
                    cell, 3, 4, 2, bidirectional, random_state=0, dtype=dtype
                )
                x = np.ones((3, 5, 3), dtype=dtype)
                lengths = np.array([5, 2, 4])
                for ragged in (None, lengths):
                    output, _, cache = rnn_forward(
                        x, params, cell, bidirectional=bidirectional, lengths=ragged
                    )
                    rnn_backward(cache, np.ones_like(output))
                    rnn_forward(
                        x, params, cell, bidirectional=bidirectional,
                        lengths=ragged, return_cache=False,
                    )  # fmt: skip
            params = init_params(cell, 3, 4, 2, random_state=0, dtype=dtype)
            rnn_step(np.ones((2, 3), dtype=dtype), None, prepare_step(params, cell))
        # The decoders' own kernels: embeddings and the attention step.
        weight = np.ones((5, 3), dtype=dtype)
        ids = np.array([[0, 4], [2, 2]])
        embedding_backward(ids, embedding_forward(ids, weight), 5)
        memory = np.ones((2, 3, 4), dtype=dtype)
        query = np.ones((2, 4), dtype=dtype)
        cpu.attention_step(
            query, query, memory, np.ascontiguousarray(memory.transpose(0, 2, 1)),
            np.array([3, 1]), np.array([1, 0]),
            np.empty((2, 8), dtype=dtype), np.empty((2, 3), dtype=dtype),
        )  # fmt: skip
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dtypes", nargs="+", choices=("float32", "float64"),
        default=["float32", "float64"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not _jit.CACHE:
        print(
            "warning: Numba cannot write a cache here (read-only install and no "
            "NUMBA_CACHE_DIR): kernels are compiled but not kept."
        )
    seconds = compile_kernels(args.dtypes)
    print(
        f"compiled (or loaded) every kernel for {', '.join(args.dtypes)} in "
        f"{seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
