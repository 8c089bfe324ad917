"""Compile every CPU kernel ahead of time: ``python -m rnntools.compile``.

Numba compiles a kernel on its first call and caches the machine code on
disk (``cache=True``; next to the package, or under ``NUMBA_CACHE_DIR``). The
first ``fit`` in a fresh environment therefore pays the compilation (about
6 s for an LSTM on a 2-core machine, see ``asv_benchmarks/compare_torch.py``'s
start-up rows: Numba optimises a callee's code again in every kernel that
calls it; only the row-invariant products, register tiles written in LLVM
IR, are compiled once per dtype and called through a pointer, see
:mod:`rnntools.kernels.row_invariant`). Running this module
once — in a Docker image build, on each node of a cluster, after ``pip
install`` — fills the cache for every cell, both directions, ragged batches,
both float dtypes, single steps and decoding, so that later processes only
load machine code.

Usage::

    python -m rnntools.compile [--dtypes float32 float64]
"""

import argparse
import time

import numpy as np

from .cells import GATES
from .functional import prepare_step, rnn_backward, rnn_forward, rnn_step
from .kernels import _jit, row_invariant
from .kernels.cpu import GATE_PANEL_ROW_BYTES
from .layers import embedding_backward, embedding_forward
from .optim import AdamOptimizer


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
    from .kernels import spin

    start = time.perf_counter()
    # The threads' spin-wait (no floats: one signature).
    spin.wait_for_flag(np.ones(1, dtype=np.int64), 0, 1)
    spin.set_flag_and_wait(np.ones(2, dtype=np.int64), 1, 0, 1)
    for dtype in dtypes:
        # The products every kernel calls (compiled once: row_invariant).
        row_invariant.product_address(dtype)
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
        # The inference of wide LSTMs, panel by panel (kernels.cpu.gate_panels).
        wide = GATE_PANEL_ROW_BYTES // (4 * np.dtype(dtype).itemsize)
        params = init_params("lstm", 3, wide, 2, True, random_state=0, dtype=dtype)
        rnn_forward(
            np.ones((3, 5, 3), dtype=dtype), params, "lstm", bidirectional=True,
            lengths=np.array([5, 2, 4]), return_cache=False,
        )  # fmt: skip
        # The decoders' own kernels: embeddings, decoding steps, greedy search.
        weight = np.ones((5, 3), dtype=dtype)
        ids = np.array([[0, 4], [2, 2]])
        embedding_backward(ids, embedding_forward(ids, weight), 5)
        # The optimizer's fused Adam step.
        AdamOptimizer([weight], 0.1).update_params([weight], [np.ones_like(weight)])
        _compile_decoder(dtype)
    return time.perf_counter() - start


def _compile_decoder(dtype):
    """The decoding kernels (one step, greedy and beam search) on a tiny
    decoder of every cell, with attention and a merge vector and without
    either: each cell and attention mode compiles its own kernels (the
    unused cells and attention are None, pruned at compile time; see
    :mod:`rnntools.kernels.decoder`)."""
    from .cells import init_params
    from .estimators._decoder import DecoderArrays
    from .estimators._generator import _Condition

    rng = np.random.default_rng(0)
    hidden, memory_size, vocab = 4, 6, 7
    params = {
        "embedding": rng.standard_normal((vocab, 3)),
        "head_weight": rng.standard_normal((vocab, hidden + 2)),
        "head_bias": np.zeros(vocab),
        "attention_a": rng.standard_normal((hidden, memory_size)),
        "attention_c": rng.standard_normal((hidden, memory_size + hidden)),
    }
    params = {key: value.astype(dtype) for key, value in params.items()}
    memory = np.ones((2, 5, memory_size), dtype=dtype)
    merge = np.ones((2, 2), dtype=dtype)
    h0 = np.zeros((1, 2, hidden), dtype=dtype)
    first, rows = np.array([1, 2]), np.array([1, 0])
    for cell in GATES:
        state = (h0, h0) if cell == "lstm" else h0
        for attention in ("general", None):
            arrays = DecoderArrays.from_params(
                params,
                cell=cell,
                nonlinearity="tanh",
                rnn_params=init_params(cell, 3, hidden, random_state=0, dtype=dtype),
                keys={key: key for key in params},
                attention=attention,
            )
            condition = (
                _Condition(
                    memory=memory,
                    memory_lengths=np.array([5, 2]),
                    keys_t=arrays.attention_keys(memory),
                    merge=merge,
                )
                if attention
                else _Condition(merge=merge)
            )
            model = arrays.kernel_model(condition, [0])
            arrays.step_rows(first, rows, state, model)
            arrays.greedy(first, rows, state, model, eos=2, max_length=3, min_length=0)
            arrays.beam(
                first, rows, state, model, eos=2, max_length=3, min_length=0,
                beam_width=2, n_best=2, alpha=0.5,
            )  # fmt: skip


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
