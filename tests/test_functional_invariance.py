"""Bitwise batch invariance of :func:`rnn_forward`.

A sequence's outputs and final state are the same bits whether it runs alone,
inside any batch, at any position, and on one thread or several: the forward
products are row-invariant (``kernels/row_invariant.py``) and everything else
is elementwise per sequence. ``np.array_equal``, no tolerance.
"""

import contextlib
import itertools
import os
from random import Random

import numpy as np
import pytest
from helpers import state_arrays
from hypothesis import given
from hypothesis import strategies as st
from strategies import RNNProblem, rnn_problems

from rnntools import functional, rnn_forward
from rnntools.kernels import cpu


@contextlib.contextmanager
def several_blocks_on_two_threads():
    """Split every batch into blocks on two threads, however small."""
    saved = functional._MIN_FLOPS_PER_BLOCK, os.environ.get("RNNTOOLS_NUM_THREADS")
    functional._MIN_FLOPS_PER_BLOCK = 0
    os.environ["RNNTOOLS_NUM_THREADS"] = "2"
    try:
        yield
    finally:
        functional._MIN_FLOPS_PER_BLOCK = saved[0]
        if saved[1] is None:
            del os.environ["RNNTOOLS_NUM_THREADS"]
        else:
            os.environ["RNNTOOLS_NUM_THREADS"] = saved[1]


def forward(arrays, kwargs, rows):
    """``rnn_forward`` of the sequences ``rows`` (in that order)."""
    lengths = None if arrays.lengths is None else arrays.lengths[rows]
    initial = kwargs["initial_state"]
    if initial is not None:
        initial = (
            tuple(part[:, rows] for part in initial)
            if isinstance(initial, tuple)
            else initial[:, rows]
        )
    output, final_state, _ = rnn_forward(
        arrays.x[rows],
        arrays.params,
        kwargs["cell"],
        nonlinearity=kwargs["nonlinearity"],
        bidirectional=kwargs["bidirectional"],
        lengths=lengths,
        initial_state=initial,
    )
    return output, state_arrays(kwargs["cell"], final_state)


@given(
    rnn_problems(max_batch=6, max_hidden=20, max_input=8),
    st.sampled_from([np.float32, np.float64]),
    st.randoms(use_true_random=False),
)
def test_each_sequence_is_bit_identical_alone_in_any_batch_and_thread_count(
    problem, dtype, random
):
    check_batch_invariance(problem, dtype, random)


def check_batch_invariance(problem, dtype, random):
    """Each sequence alone, and the batch shuffled on two threads, give the
    bits of the whole batch in order."""
    arrays = problem.make_arrays(dtype)
    kwargs = problem.forward_kwargs(arrays)
    batch = problem.batch_size
    everything = np.arange(batch)
    output, final = forward(arrays, kwargs, everything)
    shuffled = everything.copy()
    random.shuffle(shuffled)
    with several_blocks_on_two_threads():
        output_shuffled, final_shuffled = forward(arrays, kwargs, shuffled)
    np.testing.assert_array_equal(output_shuffled, output[shuffled])
    for got, expected in zip(final_shuffled, final, strict=True):
        np.testing.assert_array_equal(got, expected[:, shuffled])
    for row in range(batch):
        output_alone, final_alone = forward(arrays, kwargs, np.array([row]))
        np.testing.assert_array_equal(output_alone[0], output[row])
        for got, expected in zip(final_alone, final, strict=True):
            np.testing.assert_array_equal(got[:, 0], expected[:, row])


@given(
    rnn_problems(max_batch=4, max_hidden=8), st.sampled_from([np.float32, np.float64])
)
def test_inference_mode_gives_the_same_bits_and_no_cache(problem, dtype):
    """``return_cache=False`` saves no activations (buffers of no steps)
    but computes exactly what the training forward computes, in one block or
    in several on two threads (ragged batches: blocks of scattered rows)."""
    check_inference_mode(problem, dtype)


def check_inference_mode(problem, dtype):
    """Inference (spans of every length, one block or several) gives the
    training forward's bits."""
    arrays = problem.make_arrays(dtype)
    kwargs = problem.forward_kwargs(arrays)
    output, final_state, cache = rnn_forward(arrays.x, arrays.params, **kwargs)
    assert cache is not None
    row_bytes = problem.batch_size * problem.hidden_size * 4 * arrays.x.itemsize
    # One span of all steps, then spans of one and two steps (the projection
    # computed a few steps at a time, as for long sequences).
    for span_bytes, blocks in itertools.product(
        (functional.INFERENCE_SPAN_BYTES, 1, 2 * row_bytes),
        (contextlib.nullcontext, several_blocks_on_two_threads),
    ):
        saved = functional.INFERENCE_SPAN_BYTES
        functional.INFERENCE_SPAN_BYTES = span_bytes
        try:
            with blocks():
                output_inference, final_inference, no_cache = rnn_forward(
                    arrays.x, arrays.params, **kwargs, return_cache=False
                )
        finally:
            functional.INFERENCE_SPAN_BYTES = saved
        assert no_cache is None
        np.testing.assert_array_equal(output_inference, output)
        for got, expected in zip(
            state_arrays(problem.cell, final_inference),
            state_arrays(problem.cell, final_state),
            strict=True,
        ):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("dtype", "hidden"), [(np.float32, 512), (np.float64, 256)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_wide_lstm_inference_runs_panel_by_panel_with_the_same_bits(
    dtype, hidden, bidirectional
):
    """An LSTM whose gates take 8 KiB a row runs its inference panel by panel
    on gate-interleaved weights (``cpu.gate_panels``): still the training
    forward's bits, in any batch, span and thread count (ragged sequences:
    the reverse direction's rows at different times)."""
    assert cpu.gate_panels(hidden, dtype)
    assert not cpu.gate_panels(hidden // 2, dtype)
    problem = RNNProblem(
        cell="lstm", nonlinearity="tanh", num_layers=2,
        bidirectional=bidirectional, batch_size=5, seq_len=4, input_size=3,
        hidden_size=hidden, lengths=(4, 2, 3, 1, 4), has_initial_state=True,
        seed=0,
    )  # fmt: skip
    check_inference_mode(problem, dtype)
    check_batch_invariance(problem, dtype, Random(0))


@pytest.mark.parametrize(
    "estimator_class", ["RNNClassifier", "RNNRegressor", "RNNTagger"]
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_estimator_predictions_do_not_depend_on_the_batch(estimator_class, dtype):
    """``predict(X)[i]`` is the same bits as ``predict(X[i:i+1])[0]`` (the
    network and the output layer are row-invariant), for ragged lists."""
    import warnings

    import rnntools

    rng = np.random.default_rng(0)
    X = [rng.standard_normal((rng.integers(2, 9), 3)) for _ in range(12)]
    if estimator_class == "RNNTagger":
        y = [rng.integers(0, 3, len(sequence)) for sequence in X]
    elif estimator_class == "RNNRegressor":
        y = rng.standard_normal((12, 2))
    else:
        y = rng.integers(0, 3, 12)
    model = getattr(rnntools, estimator_class)(
        hidden_size=64, num_layers=2, bidirectional=True, max_iter=2,
        dtype=dtype, random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    method = model.predict if estimator_class == "RNNRegressor" else model.predict_proba
    together = method(X)
    for i in range(len(X)):
        np.testing.assert_array_equal(method(X[i : i + 1])[0], together[i])
