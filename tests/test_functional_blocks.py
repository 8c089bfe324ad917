"""Blocks of sequences on several threads: the parallel path of ``rnn_forward``.

Small problems run as one block on the calling thread, so the other tests
rarely reach the multi-block path; here the threshold is lowered so that every
batch is split, and the results are compared with the references and with
the single-block path.
"""

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from helpers import (
    VARIANT_IDS,
    VARIANTS,
    assert_results_close,
    run_naive,
    run_rnntools,
)
from strategies import RNNProblem

import rnntools.functional as functional
from rnntools import _threads
from rnntools.kernels import cpu, spin

# float64 results differ from the reference only by rounding (see
# test_functional_naive.py for the derivation of 1e-12 relative to the scale).
RTOL = 1e-12


@pytest.fixture
def many_blocks(monkeypatch):
    monkeypatch.setattr(functional, "_MIN_FLOPS_PER_BLOCK", 0)
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "3")


def ragged_problem(cell, nonlinearity, seed=0):
    return RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=2,
        bidirectional=True,
        batch_size=7,
        seq_len=6,
        input_size=3,
        hidden_size=4,
        lengths=(6, 1, 4, 6, 2, 5, 3),
        has_initial_state=True,
        seed=seed,
    )


@pytest.mark.parametrize(("cell", "nonlinearity"), VARIANTS, ids=VARIANT_IDS)
def test_blocks_match_reference(cell, nonlinearity, many_blocks):
    problem = ragged_problem(cell, nonlinearity)
    arrays = problem.make_arrays(np.float64)
    _, _, cache = functional.rnn_forward(
        arrays.x, arrays.params, **problem.forward_kwargs(arrays)
    )
    assert len(cache.blocks) == 3
    assert_results_close(
        run_rnntools(problem, arrays), run_naive(problem, arrays), RTOL
    )


@pytest.mark.parametrize(("cell", "nonlinearity"), VARIANTS, ids=VARIANT_IDS)
def test_blocks_match_one_block(cell, nonlinearity, monkeypatch):
    problem = ragged_problem(cell, nonlinearity, seed=1)
    arrays = problem.make_arrays(np.float32)
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "1")
    single = run_rnntools(problem, arrays)
    monkeypatch.setattr(functional, "_MIN_FLOPS_PER_BLOCK", 0)
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "2")
    split = run_rnntools(problem, arrays)
    # Per sequence the arithmetic is the same; only the parameter gradients
    # are summed over blocks in another order (a few float32 ulps).
    assert_results_close(split, single, 1e-5, floor=1.0)


@pytest.mark.parametrize(("cell", "nonlinearity"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("pack", [True, False], ids=["packed", "unpacked"])
def test_weight_gradients_with_and_without_packing(
    cell, nonlinearity, pack, monkeypatch
):
    """The weight gradients over only the unpadded rows (``layer_param_grads``
    with ``valid_rows``) equal the reference, as do those over all rows; the
    input gradient stays 0 at padded steps either way."""
    problem = ragged_problem(cell, nonlinearity, seed=2)  # 27 of 42 rows unpadded
    arrays = problem.make_arrays(np.float64)
    monkeypatch.setattr(cpu, "PACK_FILL", 1.01 if pack else 0.0)
    taken = []
    take_rows = cpu._take_rows
    monkeypatch.setattr(
        cpu, "_take_rows", lambda *args: taken.append(1) or take_rows(*args)
    )
    results = run_rnntools(problem, arrays)
    assert bool(taken) == pack
    assert_results_close(results, run_naive(problem, arrays), RTOL)
    padded = np.arange(problem.seq_len) >= np.array(problem.lengths)[:, None]
    assert np.all(results["d_x"][padded] == 0)


@pytest.mark.parametrize(("cell", "nonlinearity"), VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
def test_training_forward_in_spans_matches_reference(
    cell, nonlinearity, ragged, monkeypatch
):
    """Sequences long enough that the training forward projects the inputs a
    span of steps at a time (``cpu.TRAINING_SPAN_BYTES`` of gates; 3 to 8
    spans here), forwards and, without padding, backwards: the outputs and
    every gradient are the reference's. float64 rounding along these 300
    steps stays below 1e-11 of the scale; a step's gates or saved states
    read from another span are off by far more."""
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "1")  # one block of 8
    steps, batch, hidden = 300, 8, 128
    problem = RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=2,
        bidirectional=True,
        batch_size=batch,
        seq_len=steps,
        input_size=3,
        hidden_size=hidden,
        lengths=(300, 299, 150, 300, 1, 77, 300, 200) if ragged else None,
        has_initial_state=True,
        seed=3,
    )
    width = {"rnn": 1, "gru": 3, "lstm": 4}[cell] * hidden
    assert -(-steps // cpu._span_steps.py_func(steps, batch, width, 8)) >= 3  # spans
    arrays = problem.make_arrays(np.float64)
    assert_results_close(
        run_rnntools(problem, arrays), run_naive(problem, arrays), 1e-10
    )


@pytest.mark.parametrize(("cell", "nonlinearity"), VARIANTS, ids=VARIANT_IDS)
def test_first_layer_inputs_kept_in_full_when_spans_are_skipped(
    cell, nonlinearity, monkeypatch
):
    """What a training forward keeps is finite at every step, the steps of
    spans that no sequence reaches (skipped) too: the first layer's inputs,
    which its kernel gathers from x, and the gates (from which the rnn's
    backward rebuilds h_prev). Here every sequence ends at step 200 of 300
    and spans are about 100 steps, so the last one is skipped; the weight
    gradients read all rows, padding too (no packing). Pooled buffers come
    filled with NaN: a step left unwritten shows."""
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "1")
    monkeypatch.setattr(cpu, "PACK_FILL", 0.0)  # read every row, padding too
    pool_empty = functional.POOL.empty

    def poisoned(shape, dtype):
        array = pool_empty(shape, dtype)
        array.fill(np.nan)
        return array

    cpu_backend = dataclasses.replace(functional._CPU, scratch=poisoned)
    monkeypatch.setattr(functional, "_CPU", cpu_backend)
    steps, hidden, length = 300, 64, 200
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    batch = {"rnn": 20, "gru": 7, "lstm": 5}[cell]  # spans of 97-102 steps
    span = cpu._span_steps.py_func(steps, batch, gates * hidden, 8)
    assert any(length <= start < steps for start in range(0, steps, span))
    problem = RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=1,
        bidirectional=False,
        batch_size=batch,
        seq_len=steps,
        input_size=3,
        hidden_size=hidden,
        lengths=(length,) * batch,
        has_initial_state=True,
        seed=5,
    )
    arrays = problem.make_arrays(np.float64)
    # float64 rounding as in test_training_forward_in_spans_matches_reference.
    assert_results_close(
        run_rnntools(problem, arrays), run_naive(problem, arrays), 1e-10
    )


@pytest.mark.parametrize(("cell", "nonlinearity"), VARIANTS, ids=VARIANT_IDS)
def test_saved_states_are_finite_at_every_padded_step(cell, nonlinearity, monkeypatch):
    """What a training forward keeps at the padded steps of ragged sequences
    (``h_prev``, the layer inputs) is read by the weight gradients when they
    take every row, so it must be finite although pooled buffers hold
    anything: here they come filled with NaN, so a padded step left
    unwritten shows, in both directions of both layers, on two threads."""
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "2")
    monkeypatch.setattr(cpu, "PACK_FILL", 0.0)  # read every row, padding too
    pool_empty = functional.POOL.empty

    def poisoned(shape, dtype):
        array = pool_empty(shape, dtype)
        array.fill(np.nan)
        return array

    cpu_backend = dataclasses.replace(functional._CPU, scratch=poisoned)
    monkeypatch.setattr(functional, "_CPU", cpu_backend)
    problem = RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=2,
        bidirectional=True,
        batch_size=6,
        seq_len=9,
        input_size=3,
        hidden_size=5,
        lengths=(9, 7, 7, 4, 2, 1),
        has_initial_state=True,
        seed=11,
    )
    arrays = problem.make_arrays(np.float64)
    # float64 rounding as in test_training_forward_in_spans_matches_reference.
    assert_results_close(
        run_rnntools(problem, arrays), run_naive(problem, arrays), 1e-10
    )


def _read_only(array):
    array = array.copy()
    array.flags.writeable = False
    return array


@pytest.mark.parametrize(
    "layout",
    [
        np.asfortranarray,
        _read_only,
        lambda array: np.repeat(array, 2, axis=2)[:, :, ::2],  # strided view
    ],
    ids=["fortran", "read-only", "strided"],
)
def test_layouts_and_flags_of_x_and_d_output_change_nothing(layout, many_blocks):
    """Kernels read x (the first layer's) and d_output (a gather of each
    block's rows) in place: whatever their order, strides or flags (or
    d_output's dtype, cast to x's), the results have the bits of C-ordered
    arrays."""
    problem = ragged_problem("lstm", "tanh", seed=4)
    arrays = problem.make_arrays(np.float32)
    expected = run_rnntools(problem, arrays)
    results = run_rnntools(
        problem, arrays, x=layout(arrays.x), d_output=layout(arrays.d_output)
    )
    for name, value in expected.items():
        np.testing.assert_array_equal(results[name], value, err_msg=name)
    d_output = layout(arrays.d_output.astype(np.float64))
    results = run_rnntools(problem, arrays, d_output=d_output)
    for name, value in expected.items():
        np.testing.assert_array_equal(results[name], value, err_msg=name)
    # And no kernel compiled again for them: the kernels that read x and
    # d_output in place (the first layer's; the gather of d_output) always
    # take them C-contiguous and writable.
    for kernel in (cpu.lstm_forward_layer, cpu.gather_span):
        for signature in kernel.signatures:
            assert signature[0].layout == "C" and signature[0].mutable, signature


def test_concurrent_calls_from_threads(many_blocks):
    """Four Python threads at once give the results of serial calls."""
    problem = ragged_problem("lstm", "tanh", seed=2)
    arrays = problem.make_arrays(np.float64)
    expected = run_rnntools(problem, arrays)
    results = [None] * 4
    errors = []

    def work(index):
        try:
            for _ in range(5):
                results[index] = run_rnntools(problem, arrays)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for result in results:
        for name, value in expected.items():
            np.testing.assert_array_equal(result[name], value, err_msg=name)


BLAS_LIMITS_SCRIPT = """
import json
import threadpoolctl
import rnntools.functional  # no scikit-learn, no SciPy BLAS loaded yet
from rnntools._threads import kernel_threads

def blas_threads():
    return {
        info["filepath"]: info["num_threads"]
        for info in threadpoolctl.threadpool_info()
        if info["user_api"] == "blas"
    }

with kernel_threads():
    with kernel_threads():  # reentrant: the inner exit restores nothing
        pass
    inside = blas_threads()
print(json.dumps({"inside": inside, "after": blas_threads()}))
"""


def test_kernel_threads_limits_every_blas_numba_calls():
    """Inside ``kernel_threads`` every BLAS is at one thread, SciPy's too.

    Numba's ``np.dot`` calls SciPy's OpenBLAS, which Numba loads only when a
    kernel is first used; a fresh process that has imported neither
    scikit-learn nor ``scipy.linalg`` must still find and limit it (it was
    missed once, and the forgotten pool made a training step 1.9x slower).
    The limits are restored on exit. BLAS is set to 2 threads, so a limit
    that is not applied, or not restored, shows.
    """
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("OpenBLAS runs one thread on one CPU: no limit to see.")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    result = subprocess.run(
        [sys.executable, "-c", BLAS_LIMITS_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    threads = json.loads(result.stdout)
    assert any("scipy.libs" in path for path in threads["inside"]), threads
    assert len(threads["inside"]) >= 2, threads  # NumPy's and SciPy's
    assert set(threads["inside"].values()) == {1}, threads
    assert set(threads["after"].values()) == {2}, threads


@pytest.mark.parametrize("transposed", [False, True])
def test_parallel_matmul_equals_numpy(monkeypatch, transposed):
    """``_threads.parallel_matmul`` split over 3 threads gives ``a @ b`` (each row by
    the same BLAS kernel; float64, so equal to rounding), for a transposed
    (non-contiguous) ``a`` too, as the layers' weight gradients pass it."""
    monkeypatch.setattr(_threads, "_MIN_MATMUL_FLOPS_PER_THREAD", 1)
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "3")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((13, 7))
    a = np.ascontiguousarray(a.T).T if transposed else a
    b = rng.standard_normal((7, 5))
    np.testing.assert_allclose(
        _threads.parallel_matmul(a, b), a @ b, rtol=1e-13, atol=1e-13
    )


def test_parallel_map_keeps_order_and_reraises_after_every_task():
    """``_threads.parallel_map``: results in the order of the items; an
    exception in a worker reaches the caller once every task has finished, and
    the workers serve later calls; calls from inside a task get workers of
    their own (no deadlock)."""
    finished = []

    def task(item):
        if item == 2:
            raise KeyError("task 2")
        time.sleep(0.01 * (item == 3))
        finished.append(item)
        return item * item

    assert _threads.parallel_map(lambda item: item * item, [0, 1, 2, 3]) == [0, 1, 4, 9]
    with pytest.raises(KeyError, match="task 2"):
        _threads.parallel_map(task, [0, 1, 2, 3])
    assert sorted(finished) == [0, 1, 3]  # the slow task 3 was waited for
    assert _threads.parallel_map(lambda item: item + 1, [0, 1, 2]) == [1, 2, 3]
    nested = _threads.parallel_map(
        lambda outer: _threads.parallel_map(lambda inner: (outer, inner), [0, 1]),
        [0, 1, 2],
    )
    assert nested == [[(outer, 0), (outer, 1)] for outer in range(3)]


@pytest.mark.parametrize("spins", [0, 1, 1000])
def test_parallel_map_when_the_spin_waits_give_up(monkeypatch, spins):
    """The flags are hints: with spin-waits too short to see them (0 spins:
    none at all), hand-offs go through the locks, and every result still
    arrives, also to workers that fell asleep between tasks."""
    monkeypatch.setattr(spin, "SPINS", spins)
    for round_ in range(30):
        if round_ % 10 == 0:
            time.sleep(0.002)  # longer than any spin: the workers block
        items = list(range(round_ % 3 + 2))
        assert _threads.parallel_map(lambda item: item * item, items) == [
            item * item for item in items
        ]


def test_parallel_map_from_many_threads_at_once():
    results = {}

    def caller(name):
        results[name] = [
            _threads.parallel_map(lambda item: (name, item), [0, 1, 2])
            for _ in range(50)
        ]

    threads = [threading.Thread(target=caller, args=(name,)) for name in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in range(4):
        assert results[name] == [[(name, 0), (name, 1), (name, 2)]] * 50
