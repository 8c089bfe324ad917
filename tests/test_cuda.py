"""The CUDA backend (``device="cuda"``) agrees with the CPU kernels.

Runs unchanged on a real GPU and under Numba's CUDA simulator, which the
README's test command selects with ``NUMBA_ENABLE_CUDASIM=1`` in a separate
pytest invocation (the variable must be set before Numba is imported).
Skipped when neither is usable. The simulator runs every GPU thread as an OS
thread and blocks one after another, so shapes stay tiny (B, T, H <= 8).

The CPU kernels are checked against the naive references, finite differences
and PyTorch elsewhere; agreement with them here makes the CUDA kernels right.
"""

import pickle
import threading
import time
import warnings
from types import SimpleNamespace

import numba
import numpy as np
import pytest
from helpers import assert_results_close, flatten_results, run_rnntools
from numba import types
from numba.np.numpy_support import from_dtype
from strategies import RNNProblem

from rnntools import RNNClassifier, RNNTagger, load_model, save_model
from rnntools.functional import rnn_backward, rnn_forward
from rnntools.kernels import cuda as cuda_kernels


def cuda_usable():
    try:
        from numba import cuda
    except ImportError:
        return False
    return cuda.is_available()


pytestmark = pytest.mark.skipif(
    not cuda_usable(),
    reason="no GPU; run with NUMBA_ENABLE_CUDASIM=1 for the CUDA simulator",
)

# float64: the two backends do the same operations in another order (tiled
# sums on the GPU, BLAS blocking on the CPU, another exp/tanh); along the
# ~10^2-operation chains of these problems (T <= 4 steps, L <= 2 layers, H <= 8)
# rounding stays below 1e-13 of the terms' size. 1e-10 is the issue's bound;
# a wrong index or a missing term is off by 1e-2 or more.
FLOAT64_RTOL = 1e-10
# float32: each side rounds to 2**-24 ~ 6e-8 per operation, and the GPU's
# expf/tanhf are within 2 ulp; ~10^2 operations give <= ~1e-5 of the scale
# (the bound). The simulator computes exp in float64, so it cannot
# tune this number; it is set from the operation count, not from a run.
FLOAT32_RTOL = 1e-5
# Every array is measured against max(its scale, 1): its terms are O(1), and an
# array that cancelled to near 0 keeps their absolute rounding error.
FLOOR = 1.0


def problem(cell, bidirectional, num_layers, ragged, nonlinearity="tanh", **shape):
    sizes = {"batch_size": 3, "seq_len": 4, "input_size": 3, "hidden_size": 5}
    sizes.update(shape)
    lengths = None
    if ragged:  # unsorted, with one full-length and one length-1 sequence
        lengths = tuple([2, sizes["seq_len"], 1, 3][: sizes["batch_size"]])
    return RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=num_layers,
        bidirectional=bidirectional,
        lengths=lengths,
        has_initial_state=ragged,  # half the grid starts from a drawn state
        seed=num_layers * 4 + bidirectional * 2 + ragged,
        **sizes,
    )


def assert_cuda_matches_cpu(case, dtype, rtol):
    arrays = case.make_arrays(dtype)
    gpu = run_rnntools(case, arrays, device="cuda")
    cpu = run_rnntools(case, arrays, device="cpu")
    for name, value in gpu.items():
        assert value.dtype == dtype, name
        assert isinstance(value, np.ndarray), name
    assert_results_close(gpu, cpu, rtol, FLOOR)


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_float64_forward_and_backward_match_cpu(
    cell, bidirectional, num_layers, ragged
):
    case = problem(cell, bidirectional, num_layers, ragged)
    assert_cuda_matches_cpu(case, np.float64, FLOAT64_RTOL)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_relu_rnn_matches_cpu(bidirectional):
    case = problem("rnn", bidirectional, 2, True, nonlinearity="relu")
    assert_cuda_matches_cpu(case, np.float64, FLOAT64_RTOL)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_float32_matches_cpu(cell):
    case = problem(cell, True, 2, True)
    assert_cuda_matches_cpu(case, np.float32, FLOAT32_RTOL)


def use_per_step_kernels(monkeypatch):
    """Make the drivers launch one kernel per step whatever the batch size."""
    monkeypatch.setattr(cuda_kernels, "_use_gemm_steps", lambda *sizes: False)
    monkeypatch.setattr(cuda_kernels, "_use_sequence_kernels", lambda batch: False)


def use_gemm_steps(monkeypatch):
    """Make the drivers run the time loop as a product per step (cuBLAS on a
    GPU with CuPy; the Numba GEMM under the simulator) whatever the batch."""
    monkeypatch.setattr(cuda_kernels, "_use_gemm_steps", lambda *sizes: True)


@pytest.mark.parametrize(
    "cell, nonlinearity",
    [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu")],
)
def test_per_step_kernels_match_cpu(cell, nonlinearity, monkeypatch):
    """The other strategy, one launch per step, which the drivers choose for
    batches too large for one wave of sequence-resident blocks."""
    use_per_step_kernels(monkeypatch)
    case = problem(cell, True, 2, True, nonlinearity=nonlinearity)
    assert_cuda_matches_cpu(case, np.float64, FLOAT64_RTOL)


@pytest.mark.parametrize(
    "cell, nonlinearity",
    [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu")],
)
def test_gemm_per_step_time_loop_matches_cpu(cell, nonlinearity, monkeypatch):
    """The third strategy, a matrix product and a pointwise launch per step,
    which the drivers choose for large batches where cuBLAS runs: every
    sequence finishing at another step (ragged, unsorted), both directions
    (the reverse one reads each row at its own time), two layers, and the
    initial-state gradient."""
    use_gemm_steps(monkeypatch)
    case = problem(cell, True, 2, True, nonlinearity=nonlinearity, batch_size=4)
    assert_cuda_matches_cpu(case, np.float64, FLOAT64_RTOL)


def test_gemm_steps_only_where_cublas_runs_large_products(monkeypatch):
    monkeypatch.setattr(cuda_kernels, "_cupy", lambda: None)
    assert not cuda_kernels._use_gemm_steps(10**6, 4096, 1024)
    monkeypatch.setattr(cuda_kernels, "_cupy", lambda: object())
    width, hidden = 4 * 1024, 1024  # an LSTM of 1024 units
    smallest = -(-cuda_kernels.GEMM_STEP_MIN_MACS // (width * hidden))
    assert cuda_kernels._use_gemm_steps(smallest, width, hidden)
    assert not cuda_kernels._use_gemm_steps(smallest - 1, width, hidden)


# The tile sizes are compile-time constants of the kernels: patching them
# re-specialises the simulator's plain Python, not a GPU's compiled (and
# cached) kernels. On a GPU, test_shapes_beyond_the_default_tiles_match_cpu
# covers several blocks and ragged edges at the real sizes.
only_on_simulator = pytest.mark.skipif(
    not numba.config.ENABLE_CUDASIM,
    reason="patches compile-time tile sizes, which only the simulator re-reads",
)


@pytest.mark.skipif(
    not numba.config.ENABLE_CUDASIM,
    reason="the CUDA simulator as tests/cudasim.py prepares it",
)
def test_simulator_shared_arrays_are_one_per_block(monkeypatch):
    """The simulator's ``cuda.shared.array``, as tests/cudasim.py installs it,
    gives every thread of a block the same array even when they all reach the
    line at once: the array is made slowly here (20 ms), so without the lock
    each of the 16 threads would find none yet and make its own."""
    import cudasim
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    assert FakeCUDAShared.array is cudasim._atomic_shared_array
    shared = FakeCUDAShared(0)

    class SlowNumPy:
        def empty(self, shape, dtype):
            time.sleep(0.02)
            return np.empty(shape, dtype)

    monkeypatch.setattr(cudasim, "np", SlowNumPy())
    start = threading.Barrier(16)
    arrays = []

    def allocate():
        start.wait()
        arrays.append(shared.array((4,), np.float64))  # one line, one array

    threads = [threading.Thread(target=allocate) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(arrays) == 16
    assert all(array is arrays[0] for array in arrays)


@pytest.mark.skipif(
    not numba.config.ENABLE_CUDASIM,
    reason="detects the read through the simulator's NumPy arithmetic warnings",
)
@pytest.mark.parametrize("strategy", ["sequence", "per_step", "gemm_steps"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_kernels_read_no_unwritten_memory(cell, strategy, monkeypatch):
    """No kernel, forward or backward, of any time-loop strategy reads a
    device buffer before writing it (the sequence kernels' recurrent gradient
    once read, and discarded, the gate gradients of a row's step after its
    last, not yet written). Every uninitialised
    float buffer is filled with +inf and -inf in turn: a read of one adds inf to
    -inf, which the simulator's NumPy arithmetic reports as a RuntimeWarning,
    an error here."""

    def poisoned(shape, dtype):
        if np.dtype(dtype).kind != "f":  # indices: as they were
            return numba.cuda.device_array(shape, dtype=dtype)
        host = np.full(shape, np.inf, dtype=dtype)
        host.reshape(host.size)[1::2] = -np.inf
        return numba.cuda.to_device(host)

    monkeypatch.setattr(cuda_kernels, "empty", poisoned)
    monkeypatch.setattr(
        cuda_kernels, "_use_gemm_steps", lambda *sizes: strategy == "gemm_steps"
    )
    monkeypatch.setattr(
        cuda_kernels, "_use_sequence_kernels", lambda batch: strategy == "sequence"
    )
    case = problem(cell, True, 1, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert_cuda_matches_cpu(case, np.float64, FLOAT64_RTOL)


@only_on_simulator
@pytest.mark.parametrize("strategy", ["sequence", "per_step"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_several_tiles_and_blocks_match_cpu(cell, strategy, monkeypatch):
    """Blocks and tiles smaller than the problem. Per step: several
    shared-memory chunks per dot product, several thread blocks per step and
    per GEMM, partial edge tiles. Sequence-resident: two blocks of two
    sequences (the second half empty), two threads striding over five
    hidden units, dot products in unrolled pairs plus a remainder. GEMMs:
    2x2 threads of 2x2 outputs, several blocks and several shared-memory
    steps along every edge of the 12x6, 12x20 and 20x6 products, with
    partial edges. (The default sizes cover these tiny
    shapes in one block.)"""
    if strategy == "per_step":
        use_per_step_kernels(monkeypatch)
        monkeypatch.setattr(cuda_kernels, "STEP_TILE", 2)
        monkeypatch.setattr(cuda_kernels, "STEP_ROWS", 2)
    else:
        monkeypatch.setattr(cuda_kernels, "SEQUENCE_ROWS", 2)
        monkeypatch.setattr(cuda_kernels, "SEQUENCE_THREADS", 2)
        monkeypatch.setattr(cuda_kernels, "SEQUENCE_UNROLL", 2)
    monkeypatch.setattr(cuda_kernels, "GEMM_TILE", 2)
    monkeypatch.setattr(cuda_kernels, "GEMM_WORK", 2)
    monkeypatch.setattr(cuda_kernels, "GEMM_SPAN", 4)
    case = problem(cell, True, 1, True, batch_size=3, hidden_size=5, input_size=6)
    assert_cuda_matches_cpu(case, np.float64, FLOAT64_RTOL)


@pytest.mark.parametrize(
    "shape",
    [
        {"batch_size": 1, "seq_len": 1, "input_size": 1, "hidden_size": 1},
        {"batch_size": 5, "seq_len": 3, "input_size": 2, "hidden_size": 3},
    ],
    ids=["1x1x1x1", "5x3x2x3"],
)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_edge_shapes_match_cpu(cell, shape):
    """One sequence of one step with one unit (one thread, rows clamped to the
    only sequence); and five sequences, so the second block of four holds a
    single real one."""
    case = problem(cell, True, 1, False, **shape)
    assert_cuda_matches_cpu(case, np.float64, FLOAT64_RTOL)


def test_strategy_is_chosen_by_batch_size(monkeypatch):
    """Sequence-resident kernels while their blocks fit the GPU at once."""
    device = SimpleNamespace(MULTIPROCESSOR_COUNT=2)
    monkeypatch.setattr(cuda_kernels.cuda, "get_current_device", lambda: device)
    rows = cuda_kernels.SEQUENCE_ROWS
    assert cuda_kernels._use_sequence_kernels(2 * rows)
    assert not cuda_kernels._use_sequence_kernels(2 * rows + 1)


on_simulator = pytest.mark.skipif(
    numba.config.ENABLE_CUDASIM,
    reason="a real GPU only: the simulator would take hours at these shapes",
)


@on_simulator
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_shapes_beyond_the_default_tiles_match_cpu(cell, dtype):
    """Real-GPU shapes with the real tiles: H=70 and I=45 span three
    STEP_TILE chunks and several GEMM tiles with ragged edges, B=37 spans five
    STEP_ROWS blocks, and 37 unsorted lengths in [1, 23] retire sequences at
    most steps. Bidirectional and two layers, from a drawn initial state."""
    lengths = np.random.default_rng(7).integers(1, 24, size=37)
    lengths[5] = 23
    case = RNNProblem(
        cell=cell,
        nonlinearity="tanh",
        num_layers=2,
        bidirectional=True,
        batch_size=37,
        seq_len=23,
        input_size=45,
        hidden_size=70,
        lengths=tuple(int(n) for n in lengths),
        has_initial_state=True,
        seed=11,
    )
    # float64: ~10^4-operation chains (23 steps x 2 layers x 70-term dot
    # products, both directions) round to ~1e-12 of the scale; 1e-10 still
    # catches any wrong index. float32: the same chains at 2**-24 per operation
    # give a few 1e-5 in the gradients, which sum over all steps; 1e-4 is
    # that bound with room, and a wrong term is off by 1e-2 or more.
    rtol = FLOAT64_RTOL if dtype == np.float64 else 1e-4
    assert_cuda_matches_cpu(case, dtype, rtol)


def test_long_sequence_with_large_inputs_stays_finite():
    """Saturated gates over many steps: no overflow in exp or tanh."""
    case = problem("lstm", False, 1, False, batch_size=2, seq_len=40, hidden_size=3)
    arrays = case.make_arrays(np.float32)
    results = run_rnntools(case, arrays, x=arrays.x * 1e3, device="cuda")
    for name, value in results.items():
        assert np.isfinite(value).all(), name


def test_padding_never_leaks_into_results():
    case = problem("gru", True, 2, True)
    arrays = case.make_arrays(np.float64)
    noisy = arrays.x.copy()
    for b, length in enumerate(arrays.lengths):
        noisy[b, length:] = np.nan
    clean = run_rnntools(case, arrays, device="cuda")
    dirty = run_rnntools(case, arrays, x=noisy, device="cuda")
    for name, value in clean.items():
        np.testing.assert_array_equal(dirty[name], value, err_msg=name)
    for b, length in enumerate(arrays.lengths):
        assert (clean["output"][b, length:] == 0).all()
        assert (clean["d_x"][b, length:] == 0).all()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_inference_returns_no_cache_and_the_cpu_outputs(cell):
    """``return_cache=False`` on the GPU keeps nothing for the caller (the
    GPU path saves activations all the same, and releases them) and gives
    the CPU inference path's outputs."""
    case = problem(cell, True, 2, True)
    arrays = case.make_arrays(np.float64)
    common = {
        "bidirectional": True,
        "lengths": arrays.lengths,
        "initial_state": arrays.initial_state,
        "return_cache": False,
    }
    gpu = rnn_forward(arrays.x, arrays.params, cell, device="cuda", **common)
    cpu = rnn_forward(arrays.x, arrays.params, cell, **common)
    assert gpu[2] is None and cpu[2] is None
    # Different summation orders (tiled GPU GEMMs, CPU register tiles).
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-10, atol=1e-12)
    gpu_final, cpu_final = (
        final if isinstance(final, tuple) else (final,) for final in (gpu[1], cpu[1])
    )
    for gpu_part, cpu_part in zip(gpu_final, cpu_final, strict=True):
        np.testing.assert_allclose(gpu_part, cpu_part, rtol=1e-10, atol=1e-12)


def launched_signatures(monkeypatch):
    """Record the argument types of every kernel launch in :mod:`.cuda`."""
    recorded = []

    def numba_type(value):
        if hasattr(value, "copy_to_host"):  # a device array
            layout = "C" if value.flags["C_CONTIGUOUS"] else "A"
            return types.Array(from_dtype(value.dtype), value.ndim, layout)
        if isinstance(value, (bool, np.bool_)):
            return types.boolean
        if isinstance(value, np.floating):
            return from_dtype(value.dtype)
        if isinstance(value, (int, np.integer)):
            return types.int64
        raise AssertionError(f"unexpected kernel argument {value!r}")

    class Recorder:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, config):
            launch = self.kernel[config]

            def call(*args):
                dtype = next(
                    a.dtype
                    for a in args
                    if hasattr(a, "copy_to_host") and a.dtype.kind == "f"
                )
                signature = tuple(numba_type(a) for a in args)
                recorded.append((dtype.name, self.name, signature))
                return launch(*args)

            return call

    for name in cuda_kernels.SIGNATURES["float32"]:
        monkeypatch.setattr(
            cuda_kernels, name, Recorder(name, getattr(cuda_kernels, name))
        )
    return recorded


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_launch_matches_a_declared_signature(cell, monkeypatch):
    """The PTX compile check (test_cuda_compile.py) compiles SIGNATURES; this
    shows those are the types the drivers really launch with, all three
    strategies, on the Numba GEMM (a GPU with CuPy would run the products on
    cuBLAS, and ``_gemm`` and ``_column_sums`` would never launch)."""
    monkeypatch.setattr(cuda_kernels, "_cupy", lambda: None)
    recorded = launched_signatures(monkeypatch)
    for dtype in (np.float32, np.float64):
        case = problem(cell, True, 2, True, seq_len=2, hidden_size=2)
        run_rnntools(case, case.make_arrays(dtype), device="cuda")
    with monkeypatch.context() as patch:
        use_per_step_kernels(patch)
        run_rnntools(case, case.make_arrays(np.float32), device="cuda")
    with monkeypatch.context() as patch:
        use_gemm_steps(patch)
        run_rnntools(case, case.make_arrays(np.float32), device="cuda")
    assert {name for _, name, _ in recorded} >= {
        "_gemm",
        "_column_sums",
        f"_{cell}_forward_sequence",
        f"_{cell}_backward_sequence",
        f"_{cell}_forward_step",
        f"_{cell}_backward_step",
        "_initial_state_grad",
        f"_{cell}_forward_gemm_step",
        f"_{cell}_backward_gemm_step",
        "_gather_step_grads",
    }
    for dtype, name, signature in recorded:
        assert signature in cuda_kernels.SIGNATURES[dtype][name], (name, signature)


def device_params(params):
    from numba import cuda

    return {key: cuda.to_device(value) for key, value in params.items()}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_device_params_are_used_in_place_and_give_device_grads(cell):
    case = problem(cell, True, 2, True)
    arrays = case.make_arrays(np.float64)
    kwargs = {**case.forward_kwargs(arrays), "device": "cuda"}
    output, _, cache = rnn_forward(arrays.x, arrays.params, **kwargs)
    grads, d_x, _ = rnn_backward(cache, arrays.d_output, arrays.d_final_state)
    output_d, _, cache_d = rnn_forward(arrays.x, device_params(arrays.params), **kwargs)
    assert cache_d.resident
    grads_d, d_x_d, _ = rnn_backward(cache_d, arrays.d_output, arrays.d_final_state)
    np.testing.assert_array_equal(output_d, output)
    np.testing.assert_array_equal(d_x_d, d_x)
    assert grads_d.keys() == grads.keys()
    for key, value in grads.items():
        assert hasattr(grads_d[key], "copy_to_host"), key
        np.testing.assert_array_equal(grads_d[key].copy_to_host(), value, key)


def test_bad_device_params_are_clear_errors():
    from numba import cuda

    case = problem("gru", False, 1, False)
    arrays = case.make_arrays(np.float64)
    call = {"x": arrays.x, "cell": "gru"}
    on_device = device_params(arrays.params)
    with pytest.raises(TypeError, match="pass device='cuda'"):
        rnn_forward(params=on_device, **call)
    mixed = {**on_device, "bias_hh_l0": arrays.params["bias_hh_l0"]}
    with pytest.raises(TypeError, match="mixes CUDA device arrays and host"):
        rnn_forward(params=mixed, device="cuda", **call)
    as_float32 = {
        k: cuda.to_device(v.astype(np.float32)) for k, v in arrays.params.items()
    }
    with pytest.raises(TypeError, match="dtype of x"):
        rnn_forward(params=as_float32, device="cuda", **call)
    nan = arrays.params["weight_hh_l0"].copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] contains NaN"):
        rnn_forward(
            params={**on_device, "weight_hh_l0": cuda.to_device(nan)},
            device="cuda",
            **call,
        )
    wrong = arrays.params["weight_hh_l0"][:, :-1].copy()
    with pytest.raises(ValueError, match="weight_hh_l0"):
        rnn_forward(
            params={**on_device, "weight_hh_l0": cuda.to_device(wrong)},
            device="cuda",
            **call,
        )


def on_gpu(value):
    """A device copy of an array or of each array of a tuple; None stays."""
    from numba import cuda

    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(cuda.to_device(part) for part in value)
    return cuda.to_device(value)


def from_gpu(value):
    """The host copy of a device array or of each of a tuple, checking that
    each was on the device."""
    parts = value if isinstance(value, tuple) else (value,)
    assert all(hasattr(part, "copy_to_host") for part in parts)
    host = tuple(part.copy_to_host() for part in parts)
    return host if isinstance(value, tuple) else host[0]


def nan_at_padding(array, lengths):
    """A copy of a ``(B, T, F)`` array with NaN at every padded step."""
    out = array.copy()
    out[np.arange(array.shape[1]) >= np.asarray(lengths)[:, None]] = np.nan
    return out


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_device_inputs_give_device_results_with_the_same_bits(cell):
    """``x``, the initial state, ``d_output`` and ``d_final_state`` as device
    arrays: the sequences never go to the host, and the output, final state,
    ``d_x`` and initial-state gradient come back as device arrays, with the
    bits of the NumPy-in, NumPy-out call (the same kernels run; only where
    the inputs come from and the results go changes). NaN at padded steps is
    ignored on the device as on the host."""
    case = problem(cell, True, 2, True)
    arrays = case.make_arrays(np.float64)
    x = nan_at_padding(arrays.x, arrays.lengths)
    d_output = nan_at_padding(arrays.d_output, arrays.lengths)
    kwargs = {**case.forward_kwargs(arrays), "device": "cuda"}
    expected = run_rnntools(case, arrays, x=x, d_output=d_output, device="cuda")
    kwargs["initial_state"] = on_gpu(kwargs["initial_state"])
    output, final_state, cache = rnn_forward(on_gpu(x), arrays.params, **kwargs)
    grads, d_x, d_initial_state = rnn_backward(
        cache, on_gpu(d_output), on_gpu(arrays.d_final_state)
    )
    results = flatten_results(
        cell, from_gpu(output), from_gpu(final_state), grads, from_gpu(d_x),
        from_gpu(d_initial_state),
    )  # fmt: skip
    assert results.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(results[name], value, name)


def test_bad_device_inputs_are_clear_errors():
    from numba import cuda

    case = problem("gru", False, 1, True)
    arrays = case.make_arrays(np.float64)
    kwargs = {"cell": "gru", "lengths": arrays.lengths}
    x_on_gpu = cuda.to_device(arrays.x)
    with pytest.raises(TypeError, match="x is a CUDA device array: pass device="):
        rnn_forward(x_on_gpu, arrays.params, **kwargs)
    wider = cuda.to_device(np.concatenate([arrays.x, arrays.x], axis=2))
    strided = wider[:, :, : arrays.x.shape[2]]
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        rnn_forward(strided, arrays.params, "gru", device="cuda")
    with pytest.raises(ValueError, match="x must be 3-dimensional"):
        rnn_forward(cuda.to_device(arrays.x[0]), arrays.params, "gru", device="cuda")
    nan = arrays.x.copy()
    nan[1, 0, 0] = np.nan  # sequence 1's first step: never padding
    with pytest.raises(ValueError, match="x contains NaN"):
        rnn_forward(cuda.to_device(nan), arrays.params, device="cuda", **kwargs)
    h0 = cuda.to_device(np.zeros((1, arrays.x.shape[0], case.hidden_size)))
    with pytest.raises(TypeError, match="initial_state holds a CUDA device array"):
        rnn_forward(arrays.x, arrays.params, initial_state=h0, **kwargs)
    _, _, cache = rnn_forward(x_on_gpu, arrays.params, device="cuda", **kwargs)
    as_float32 = cuda.to_device(arrays.d_output.astype(np.float32))
    with pytest.raises(TypeError, match=r"d_output .*compute dtype \(float64\)"):
        rnn_backward(cache, as_float32)
    with pytest.raises(ValueError, match="d_output has shape"):
        rnn_backward(cache, cuda.to_device(arrays.d_output[:, :-1].copy()))
    nan = arrays.d_output.copy()
    nan[1, 0, 0] = np.inf
    with pytest.raises(ValueError, match="d_output contains NaN or infinity"):
        rnn_backward(cache, cuda.to_device(nan))


def tiny_sequences(rng, n=8):
    lengths = rng.integers(2, 5, size=n)
    X = [rng.standard_normal((length, 2)) for length in lengths]
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    return X, y


def params_passed_to_the_network(monkeypatch):
    """Record, for each rnn_forward call of the estimators, whether every
    parameter was already a device array."""
    from rnntools.estimators import _base as estimators

    resident = []

    def recording(x, params, *args, **kwargs):
        resident.append(all(hasattr(v, "copy_to_host") for v in params.values()))
        return rnn_forward(x, params, *args, **kwargs)

    monkeypatch.setattr(estimators, "rnn_forward", recording)
    return resident


TRAINING_SETTINGS = {
    # Adam, the default; gradients clipped at 5 (inactive here).
    "adam": {},
    # The device paths of SGD with Nesterov momentum, weight decay, active
    # clipping, and early stopping (validation scored from synced params_).
    "sgd-alpha-clip-early-stopping": {
        "solver": "sgd",
        "alpha": 0.01,
        "clip_grad_norm": 0.05,
        "early_stopping": True,
        "validation_fraction": 0.25,
    },
    # Dropout runs the layers one rnn_forward at a time, with device-resident
    # parameters and the same masks (drawn on the host) as on the CPU.
    "dropout": {"dropout": 0.3, "num_layers": 2, "bidirectional": True},
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("training", list(TRAINING_SETTINGS))
@pytest.mark.parametrize("Estimator", [RNNClassifier, RNNTagger])
def test_estimator_trains_on_gpu_like_on_cpu(
    Estimator, training, tmp_path, monkeypatch
):
    rng = np.random.default_rng(0)
    X, y = tiny_sequences(rng)
    if Estimator is RNNTagger:
        y = [(x[:, 0] > 0).astype(int) for x in X]
    settings = {
        "cell": "gru",
        "hidden_size": 4,
        "max_iter": 2,
        "batch_size": 4,
        "dtype": "float64",
        "random_state": 0,
        **TRAINING_SETTINGS[training],
    }
    resident = params_passed_to_the_network(monkeypatch)
    launches = launched_signatures(monkeypatch)
    on_gpu = Estimator(device="cuda", **settings).fit(X, y)
    for dtype, name, signature in launches:  # the optimizer's kernels too
        assert signature in cuda_kernels.SIGNATURES[dtype][name], (name, signature)
    # Parameters stayed on the GPU for every minibatch (and the validation).
    assert resident and all(resident)
    for value in on_gpu.params_.values():
        assert isinstance(value, np.ndarray)
    for state in vars(on_gpu._optimizer).values():
        if isinstance(state, list):  # moments back on the host: picklable
            assert all(isinstance(a, np.ndarray) for a in state)
    on_cpu = Estimator(device="cpu", **settings).fit(X, y)
    for key, value in on_cpu.params_.items():
        np.testing.assert_allclose(on_gpu.params_[key], value, rtol=0, atol=1e-10)
    proba = on_gpu.predict_proba(X)
    # Trained on the GPU, predicting on the CPU after pickling or save_model.
    restored = [pickle.loads(pickle.dumps(on_gpu))]
    save_model(on_gpu, tmp_path / "model.npz")
    restored.append(load_model(tmp_path / "model.npz"))
    for model in restored:
        model.set_params(device="cpu")
        for mine, theirs in zip(model.predict(X), on_gpu.predict(X), strict=True):
            np.testing.assert_array_equal(mine, theirs)
        for mine, theirs in zip(model.predict_proba(X), proba, strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "dtype, rtol", [(np.float64, FLOAT64_RTOL), (np.float32, FLOAT32_RTOL)]
)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_cublas_products_match_the_numba_gemm(cell, dtype, rtol, monkeypatch):
    """Where CuPy can run cuBLAS (a real GPU with CuPy installed), the input
    projections, weight gradients and bias sums run there, and agree with the
    Numba GEMM and column sums that the simulator runs (and that the tests
    above compare with the CPU). Sizes past one GEMM block and not multiples
    of its tiles (I = 70, H = 67), two bidirectional layers, ragged batch."""
    cupy = cuda_kernels._cupy()
    if cupy is None:
        pytest.skip("no cuBLAS here: simulator, no CuPy, or RNNTOOLS_CUBLAS=0")
    case = problem(cell, True, 2, True, seq_len=6, input_size=70, hidden_size=67)
    arrays = case.make_arrays(dtype)
    library_calls = []
    real_matmul, real_sum = cupy.matmul, cupy.sum

    def counted(real):
        def call(*args, **kwargs):
            library_calls.append(real.__name__)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(cupy, "matmul", counted(real_matmul))
    monkeypatch.setattr(cupy, "sum", counted(real_sum))
    with_cublas = run_rnntools(case, arrays, device="cuda")
    # 2 layers x 2 directions: 1 projection forward, 3 products and 2 sums back.
    assert library_calls.count("matmul") == 4 * (1 + 3 + (cell == "gru"))
    assert library_calls.count("sum") == 4 * (2 + (cell == "gru"))
    monkeypatch.setattr(cuda_kernels, "_cupy", lambda: None)
    with_numba_gemm = run_rnntools(case, arrays, device="cuda")
    assert_results_close(with_cublas, with_numba_gemm, rtol, FLOOR)
