"""Properties of ``rnntools.functional`` that need no reference implementation.

* Padding never influences anything: filling the padding of ``x`` or of
  ``d_output`` with other values or NaN leaves every result bit-identical;
  ``output`` and ``d_x`` are exactly 0 at padded steps.
* Batch composition: a sequence gives the same results alone as inside a
  ragged batch.
* Long sequences (T = 10,000) with inputs of magnitude 1e3 give finite
  results and raise no floating-point warnings.
* Inputs are never written to; read-only and non-contiguous inputs work.
* float32 in, float32 out; the cache can be reused.
* The vectorised ``sigmoid`` / ``tanh`` of ``rnntools.kernels.activations``
  are accurate to a few ulp everywhere, including the extremes.
* ``init_params`` follows PyTorch's and Keras's initialisation schemes.
"""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.special
import scipy.stats
from helpers import (
    VARIANT_IDS,
    VARIANTS,
    assert_results_close,
    assert_results_equal,
    flatten_results,
    map_state,
    run_rnntools,
    state_arrays,
)
from hypothesis import given
from naive import make_params
from numba import njit
from strategies import RNNProblem, rnn_problems

from rnntools import init_params, rnn_backward, rnn_forward
from rnntools.kernels import activations


# The activations are compiled into the kernels only (they have no Python
# entry point): the tests call them from kernels of their own.
@njit
def sigmoid(z, out):
    activations.sigmoid(z, out)


@njit
def tanh(z, out):
    activations.tanh(z, out)


@njit
def gate_activations(gates, tanh_columns):
    activations.gate_activations(gates, tanh_columns)


# Same problem, computed with the batch split differently: BLAS may block the
# GEMMs differently and the parameter gradients are summed in another order,
# so results differ by rounding only (<= 1e-13 of the O(1) terms, see
# test_functional_naive.py); measured against max(scale, 1) for the same
# reason as there.
REARRANGED_RTOL = 1e-12
FLOOR = 1.0


def hard_problem(cell, nonlinearity, seed=0):
    """2 layers, bidirectional, unsorted ragged lengths (T, 1 and between), h_0."""
    return RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=2,
        bidirectional=True,
        batch_size=4,
        seq_len=6,
        input_size=3,
        hidden_size=4,
        lengths=(3, 6, 1, 4),
        has_initial_state=True,
        seed=seed,
    )


def padding_mask(arrays):
    """``(B, T)`` boolean: True at padded steps ``t >= lengths[b]``."""
    steps = arrays.x.shape[1]
    return np.arange(steps)[None, :] >= arrays.lengths[:, None]


def ragged_problems(**kwargs):
    """Problems with lengths where at least one sequence is shorter than T."""
    return rnn_problems(ragged=True, **kwargs).filter(
        lambda problem: min(problem.lengths) < problem.seq_len
    )


def fill(values, mask, how, rng):
    """A copy of ``values`` with ``values[mask]`` replaced by NaN or noise."""
    filled = values.copy()
    if how == "nan":
        filled[mask] = np.nan
    else:
        filled[mask] = 1e3 * rng.standard_normal(filled[mask].shape)
    return filled


FILLS = ["nan", "random"]


# --------------------------------------------------------------------------
# Padding
# --------------------------------------------------------------------------


@pytest.mark.parametrize("how", FILLS)
@given(problem=ragged_problems())
def test_padding_of_x_changes_nothing(how, problem):
    arrays = problem.make_arrays()
    mask = padding_mask(arrays)
    x = fill(arrays.x, mask, how, np.random.default_rng(problem.seed))
    assert_results_equal(
        run_rnntools(problem, arrays, x=x), run_rnntools(problem, arrays)
    )


@pytest.mark.parametrize("how", FILLS)
@given(problem=ragged_problems())
def test_padding_of_d_output_is_ignored(how, problem):
    arrays = problem.make_arrays()
    mask = padding_mask(arrays)
    d_output = fill(arrays.d_output, mask, how, np.random.default_rng(problem.seed))
    zeroed = arrays.d_output.copy()
    zeroed[mask] = 0
    assert_results_equal(
        run_rnntools(problem, arrays, d_output=d_output),
        run_rnntools(problem, arrays, d_output=zeroed),
    )


@given(problem=ragged_problems())
def test_output_and_d_x_are_exactly_zero_at_padded_steps(problem):
    arrays = problem.make_arrays()
    mask = padding_mask(arrays)
    results = run_rnntools(problem, arrays)
    assert np.all(results["output"][mask] == 0)
    assert np.all(results["d_x"][mask] == 0)


# --------------------------------------------------------------------------
# Batch composition
# --------------------------------------------------------------------------


@given(problem=ragged_problems())
def test_sequence_alone_equals_sequence_in_ragged_batch(problem):
    """Each sequence alone, cut to its length, gives the batch's results.

    The batch's parameter gradients are the sum of the sequences' gradients.
    """
    arrays = problem.make_arrays()
    batch = run_rnntools(problem, arrays)
    summed_grads = {name: 0.0 for name in batch if name.startswith("grad_")}
    for b, length in enumerate(arrays.lengths):

        def sequence_state(state, b=b):
            return map_state(state, lambda part: part[:, b : b + 1])

        alone = run_rnntools(
            problem,
            arrays,
            x=arrays.x[b : b + 1, :length],
            lengths=None,
            initial_state=sequence_state(arrays.initial_state),
            d_output=arrays.d_output[b : b + 1, :length],
            d_final_state=sequence_state(arrays.d_final_state),
        )
        for name in summed_grads:
            summed_grads[name] = summed_grads[name] + alone.pop(name)
        # output and d_x are (B, T, F), states are (L*D, B, H).
        in_batch = {
            name: batch[name][b : b + 1, :length]
            if name in ("output", "d_x")
            else batch[name][:, b : b + 1]
            for name in alone
        }
        assert_results_close(in_batch, alone, REARRANGED_RTOL, FLOOR)
    batch_grads = {name: batch[name] for name in summed_grads}
    assert_results_close(batch_grads, summed_grads, REARRANGED_RTOL, FLOOR)


# --------------------------------------------------------------------------
# Long sequences and large inputs
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cell, nonlinearity", VARIANTS, ids=VARIANT_IDS)
def test_long_sequences_with_large_inputs_stay_finite(cell, nonlinearity, dtype):
    """T = 10,000, |x| ~ 1e3: sigmoid and tanh saturate without overflow.

    The relu rnn's recurrent weights are scaled to spectral norm 0.5, which
    makes its recurrence a contraction: its states are then bounded by
    ~2 |W_ih x + b|, and finite is the right answer (with a norm above 1 the
    true states grow like norm**T, and overflow would be correct).
    """
    rng = np.random.default_rng(0)
    params = make_params(cell, 2, 3, 2, True, rng, dtype=dtype)
    if nonlinearity == "relu":
        for name, value in params.items():
            if name.startswith("weight_hh"):
                value *= 0.5 / np.linalg.norm(value, 2)
    steps = 10_000
    x = (1e3 * rng.standard_normal((2, steps, 2))).astype(dtype)
    lengths = np.array([steps, 6_001])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            output, final_state, cache = rnn_forward(
                x,
                params,
                cell,
                nonlinearity=nonlinearity,
                bidirectional=True,
                lengths=lengths,
            )
            d_final_state = map_state(
                final_state, lambda part: rng.standard_normal(part.shape)
            )
            grads, d_x, d_initial_state = rnn_backward(
                cache, rng.standard_normal(output.shape), d_final_state
            )
    results = [output, d_x, *grads.values()]
    results += state_arrays(cell, final_state) + state_arrays(cell, d_initial_state)
    for result in results:
        assert result.dtype == dtype
        assert np.all(np.isfinite(result))
    if nonlinearity == "tanh":  # every cell but the relu rnn: |h| <= 1
        assert np.all(np.abs(output) <= 1)


# --------------------------------------------------------------------------
# Memory: read-only, non-contiguous and untouched inputs
# --------------------------------------------------------------------------


def all_inputs(cell, arrays):
    """Every input array of a forward and backward call, by name."""
    named = {"x": arrays.x, "lengths": arrays.lengths, "d_output": arrays.d_output}
    named.update({f"params[{key}]": value for key, value in arrays.params.items()})
    for name in ("initial_state", "d_final_state"):
        state = getattr(arrays, name)
        if state is not None:
            for index, part in enumerate(state_arrays(cell, state)):
                named[f"{name}[{index}]"] = part
    return named


def transform_arrays(arrays, function, lengths=True):
    """``arrays`` with ``function`` applied to every array (and ``lengths``)."""
    return type(arrays)(
        x=function(arrays.x),
        params={key: function(value) for key, value in arrays.params.items()},
        lengths=function(arrays.lengths) if lengths else arrays.lengths,
        initial_state=map_state(arrays.initial_state, function),
        d_output=function(arrays.d_output),
        d_final_state=map_state(arrays.d_final_state, function),
    )


def read_only_copy(value):
    copy = value.copy()
    copy.setflags(write=False)
    return copy


@pytest.mark.parametrize("writeable", [True, False], ids=["writeable", "read-only"])
@pytest.mark.parametrize("cell, nonlinearity", VARIANTS, ids=VARIANT_IDS)
def test_inputs_are_never_written(cell, nonlinearity, writeable):
    problem = hard_problem(cell, nonlinearity)
    arrays = problem.make_arrays()
    if not writeable:
        arrays = transform_arrays(arrays, read_only_copy)
    before = {name: value.copy() for name, value in all_inputs(cell, arrays).items()}
    results = run_rnntools(problem, arrays)
    for name, value in all_inputs(cell, arrays).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    expected = run_rnntools(problem, transform_arrays(arrays, np.array))
    assert_results_equal(results, expected)


def strided_view(value):
    """The same values in a non-contiguous view (every other element)."""
    holder = np.zeros(tuple(2 * n for n in value.shape), dtype=value.dtype)
    view = holder[tuple(slice(None, None, 2) for _ in value.shape)]
    view[...] = value
    return view


def fortran_order(value):
    return np.asfortranarray(value)


def reversed_view(value):
    """The same values through a negatively strided view."""
    holder = value[tuple(slice(None, None, -1) for _ in value.shape)].copy()
    return holder[tuple(slice(None, None, -1) for _ in value.shape)]


@pytest.mark.parametrize(
    "layout", [strided_view, fortran_order, reversed_view], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("cell, nonlinearity", VARIANTS, ids=VARIANT_IDS)
def test_non_contiguous_inputs_equal_their_contiguous_copies(
    cell, nonlinearity, layout
):
    problem = hard_problem(cell, nonlinearity)
    arrays = problem.make_arrays()
    unusual = transform_arrays(arrays, layout)
    assert not unusual.x.flags.c_contiguous
    expected = run_rnntools(problem, arrays)
    assert_results_equal(run_rnntools(problem, unusual), expected)
    only_x = run_rnntools(problem, arrays, x=layout(arrays.x))
    assert_results_equal(only_x, expected)


# --------------------------------------------------------------------------
# dtypes and the cache
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x_dtype, other_dtype",
    [(np.float32, np.float64), (np.float64, np.float32), (np.float32, np.float32)],
    ids=["float32-x", "float64-x", "all-float32"],
)
@pytest.mark.parametrize("cell, nonlinearity", VARIANTS, ids=VARIANT_IDS)
def test_dtype_of_x_is_the_dtype_of_every_result(
    cell, nonlinearity, x_dtype, other_dtype
):
    """Params, states and upstream gradients of another dtype are cast to x's."""
    problem = hard_problem(cell, nonlinearity)
    arrays = transform_arrays(
        problem.make_arrays(), lambda value: value.astype(other_dtype), lengths=False
    )
    results = run_rnntools(problem, arrays, x=arrays.x.astype(x_dtype))
    for name, value in results.items():
        assert value.dtype == x_dtype, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cell, nonlinearity", VARIANTS, ids=VARIANT_IDS)
def test_cache_can_be_reused(cell, nonlinearity, dtype):
    """Backward twice gives identical results, also after another backward."""
    problem = hard_problem(cell, nonlinearity)
    arrays = problem.make_arrays(dtype)
    other = hard_problem(cell, nonlinearity, seed=1).make_arrays(dtype)
    output, final_state, cache = rnn_forward(
        arrays.x, arrays.params, **problem.forward_kwargs(arrays)
    )

    def backward(d_output, d_final_state):
        return flatten_results(
            cell, output, final_state, *rnn_backward(cache, d_output, d_final_state)
        )

    first = backward(arrays.d_output, arrays.d_final_state)
    assert_results_equal(backward(arrays.d_output, arrays.d_final_state), first)
    different = backward(other.d_output, other.d_final_state)
    assert not np.array_equal(different["d_x"], first["d_x"])
    assert_results_equal(backward(arrays.d_output, arrays.d_final_state), first)
    # And from several threads at once (the cache is only read).
    with ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(backward, arrays.d_output, arrays.d_final_state)
            for _ in range(4)
        ]
        for future in futures:
            assert_results_equal(future.result(), first)


# --------------------------------------------------------------------------
# Vectorised activations
# --------------------------------------------------------------------------

# Both functions reduce exp to a Taylor polynomial whose truncation error is
# below one ulp, then round a handful of times (range reduction, Horner steps
# with fused multiply-adds, the reconstruction 2**-k * (1 + p), the final
# division), each within half an ulp; the final division by ~(1 + e) or
# (2 + m) can amplify the error of e or m by up to ~1.5. That bounds the
# relative error by ~4 eps: 4 float32 eps (4.8e-7) in float32, and in float64
# 1e-15 (4.5 eps; the brief's "4 ulp ~ 1e-15"): measured over 10^7 points,
# tanh reaches 4.09 eps near |z| = 0.17 and sigmoid 2.3 eps, float32 both 1.7.
# The reference is evaluated in long double, so its own error does not count.
# Errors are relative to |reference| where the reference is a normal number.
# Where it is subnormal (|sigmoid| below 1.2e-38 in float32, 2.2e-308 in
# float64), the kernels flush it to zero on purpose: subnormal arithmetic
# takes a slow microcode path (measured 4-10x slower gate blocks), so there the
# check is |error| <= smallest normal number.
ACTIVATION_RTOL = {np.float32: 4 * np.finfo(np.float32).eps, np.float64: 1e-15}

ACTIVATIONS = {
    "sigmoid": (sigmoid, scipy.special.expit),
    "tanh": (tanh, np.tanh),
}


def activation_arguments(region, dtype):
    """Positive and negative arguments of one region of magnitudes, dense."""
    if region == "tiny":  # subnormals, +-0 and up to 1e-2
        magnitudes = np.concatenate(
            [[0.0], np.geomspace(np.finfo(dtype).smallest_subnormal, 1e-2, 10_000)]
        )
    elif region == "moderate":
        magnitudes = np.linspace(1e-2, 50.0, 100_001)
    else:  # "huge": saturated, out to 1e30
        magnitudes = np.geomspace(50.0, 1e30, 10_000)
    return np.concatenate([-magnitudes[::-1], magnitudes]).astype(dtype)


def evaluate(function, z):
    """``function(z, out)`` with a fresh ``out``."""
    out = np.empty_like(z)
    function(z, out)
    return out


@pytest.mark.parametrize("region", ["tiny", "moderate", "huge"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_accuracy(name, dtype, region):
    function, reference_function = ACTIVATIONS[name]
    z = activation_arguments(region, dtype)
    actual = evaluate(function, z)
    assert actual.dtype == dtype
    assert np.all(np.isfinite(actual))
    reference = reference_function(z.astype(np.longdouble))
    tiny = np.finfo(dtype).tiny
    subnormal = np.abs(reference) < tiny
    assert np.all(np.abs(actual[subnormal] - reference[subnormal]) <= tiny)
    error = np.abs(actual.astype(np.longdouble) - reference) / np.maximum(
        np.abs(reference), tiny
    )
    error[subnormal] = 0
    worst = int(np.argmax(error))
    assert error[worst] <= ACTIVATION_RTOL[dtype], (
        f"relative error {float(error[worst]):.3g} at z = {z[worst]!r}: "
        f"got {actual[worst]!r}, expected {float(reference[worst])!r}"
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_activation_saturation_and_symmetry(dtype):
    """Exact limits far out, and the symmetries sigmoid(-z) = 1 - sigmoid(z)."""
    z = np.concatenate(
        [activation_arguments(r, dtype) for r in ("tiny", "moderate", "huge")]
    )
    z = z[z > 0]
    sig_pos, sig_neg = evaluate(sigmoid, z), evaluate(sigmoid, -z)
    tanh_pos, tanh_neg = evaluate(tanh, z), evaluate(tanh, -z)
    np.testing.assert_array_equal(tanh_neg, -tanh_pos)
    # sigmoid(z) + sigmoid(-z) = 1 within the rounding of the larger term.
    np.testing.assert_allclose(
        sig_pos + sig_neg, 1, rtol=0, atol=2 * np.finfo(dtype).eps
    )
    far = z >= 100
    assert np.all(sig_pos[far] == 1) and np.all(tanh_pos[far] == 1)
    assert np.all(tanh_neg[far] == -1)
    assert np.all((sig_neg >= 0) & (sig_pos <= 1) & (np.abs(tanh_pos) <= 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_activation_nan_infinity_and_signed_zero(dtype):
    """NaN stays NaN (a diverging model is caught downstream, not hidden),
    infinities give the limits, and tanh keeps the sign of zero."""
    z = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dtype)
    sig, th = evaluate(sigmoid, z), evaluate(tanh, z)
    assert np.isnan(sig[0]) and np.isnan(th[0])
    np.testing.assert_array_equal(sig[1:], [1, 0, 0.5, 0.5])
    np.testing.assert_array_equal(th[1:], [1, -1, 0, 0])
    assert not np.signbit(th[3]) and np.signbit(th[4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_in_place(name, dtype):
    """``out`` may be ``z`` itself, with the same bits as a separate ``out``."""
    function, _ = ACTIVATIONS[name]
    z = activation_arguments("moderate", dtype)
    expected = evaluate(function, z)
    function(z, z)
    np.testing.assert_array_equal(z, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_gate_activations_overwrite(dtype):
    """``gate_activations(gates)`` writes sigmoid or tanh of ``gates`` over
    ``gates``, by column.

    37 rows of 4 x 40 columns (rows not a multiple of any vector width),
    LSTM's column pattern (tanh on the g block), arguments from 0 to
    saturation. Sigmoid columns keep the relative bound of
    :data:`ACTIVATION_RTOL`; tanh columns go through ``2 sigmoid(2x) - 1``,
    so their error is absolute: that bound times the size of the terms, 2.
    """
    hidden = 40
    rng = np.random.default_rng(0)
    shape = (37, 4 * hidden)
    gates = (rng.standard_normal(shape) * 8).astype(dtype)
    gates[::5, ::7] = 1e3 * np.sign(gates[::5, ::7])  # saturated
    tanh_columns = np.ones(4 * hidden, dtype=dtype)
    tanh_columns[2 * hidden : 3 * hidden] = 2
    z = gates.astype(np.longdouble)
    gate_activations(gates, tanh_columns)
    is_tanh = tanh_columns == 2
    error = np.abs(gates.astype(np.longdouble) - np.where(is_tanh, np.tanh(z), 1))
    sig = scipy.special.expit(z[:, ~is_tanh])
    error[:, ~is_tanh] = np.abs(gates[:, ~is_tanh] - sig) / np.maximum(
        sig, np.finfo(dtype).tiny
    )
    bound = np.where(is_tanh, 2, 1) * ACTIVATION_RTOL[dtype]
    assert np.all(error <= bound), float(np.max(error / bound))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_tanh_keeps_the_sign_of_zero(dtype):
    """tanh is odd: tanh(+0) = +0 and tanh(-0) = -0, as np.tanh (IEEE 754)."""
    z = np.array([0.0, -0.0], dtype=dtype)
    np.testing.assert_array_equal(np.signbit(evaluate(tanh, z)), np.signbit(np.tanh(z)))


# --------------------------------------------------------------------------
# init_params
# --------------------------------------------------------------------------

CELLS = ["rnn", "lstm", "gru"]


@pytest.mark.parametrize("hidden_size", [1, 7, 64])
@pytest.mark.parametrize("cell", CELLS)
def test_init_params_pytorch_scheme_is_uniform_in_bound(cell, hidden_size):
    params = init_params(
        cell, 5, hidden_size, num_layers=2, bidirectional=True, random_state=0
    )
    bound = 1 / np.sqrt(hidden_size)
    values = np.concatenate([value.ravel() for value in params.values()])
    assert np.all(np.abs(values) <= np.float32(bound))
    # Deterministic (seeded): a fixed draw of U(-bound, bound) passes a KS
    # test; a wrong bound (e.g. 1/H or 1/sqrt(I)) fails it with p ~ 0.
    assert scipy.stats.kstest(values, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3


@pytest.mark.parametrize("scheme", ["pytorch", "keras"])
@pytest.mark.parametrize("cell", CELLS)
def test_init_params_dtype_and_determinism(cell, scheme):
    def draw(random_state, **kwargs):
        return init_params(
            cell, 3, 4, num_layers=2, random_state=random_state, scheme=scheme, **kwargs
        )

    default = draw(0)
    assert all(value.dtype == np.float32 for value in default.values())
    double = draw(0, dtype=np.float64)
    assert all(value.dtype == np.float64 for value in double.values())
    for name, value in draw(0).items():
        np.testing.assert_array_equal(value, default[name], err_msg=name)
    for name, value in draw(np.random.RandomState(0)).items():
        np.testing.assert_array_equal(value, default[name], err_msg=name)
    other = draw(1)
    assert not np.array_equal(other["weight_hh_l0"], default["weight_hh_l0"])
    unseeded = draw(None), draw(None)
    assert not np.array_equal(unseeded[0]["weight_ih_l0"], unseeded[1]["weight_ih_l0"])


@pytest.mark.parametrize("cell", CELLS)
def test_init_params_keras_scheme(cell):
    """Glorot-uniform input weights, orthogonal recurrent blocks, forget bias 1."""
    hidden_size, gates = 6, {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    params = init_params(
        cell,
        5,
        hidden_size,
        num_layers=2,
        bidirectional=True,
        random_state=0,
        scheme="keras",
        dtype=np.float64,
    )
    identity = np.eye(hidden_size)
    for name, value in params.items():
        if name.startswith("weight_hh"):
            for block in np.split(value, gates):
                # Orthogonal up to float64 rounding of a QR decomposition.
                np.testing.assert_allclose(block.T @ block, identity, atol=1e-12)
        elif name.startswith("weight_ih"):
            fan_out, fan_in = value.shape
            assert np.all(np.abs(value) <= np.sqrt(6 / (fan_in + fan_out))), name
            assert np.std(value) > 0, name
    for layer in ("l0", "l0_reverse", "l1", "l1_reverse"):
        bias = params[f"bias_ih_{layer}"] + params[f"bias_hh_{layer}"]
        expected = np.zeros(gates * hidden_size)
        if cell == "lstm":  # gate order i, f, g, o: the forget gate is block 1
            expected[hidden_size : 2 * hidden_size] = 1
        np.testing.assert_array_equal(bias, expected, err_msg=layer)
