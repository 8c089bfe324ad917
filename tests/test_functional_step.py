"""Single-step inference: :func:`prepare_step` and :func:`rnn_step`.

``rnn_step`` over ``T`` steps must equal ``rnn_forward`` over the whole
sequence bit for bit (both run the same row-invariant products and the same
pointwise code), and each row's result must be bit-identical whatever the
batch around it (the property that makes decoding independent of the batch).
"""

import threading

import numpy as np
import pytest
from helpers import state_arrays
from hypothesis import given
from hypothesis import strategies as st
from strategies import rnn_problems

from rnntools import functional, init_params, rnn_forward
from rnntools.functional import PreparedStep, prepare_step, rnn_step
from rnntools.kernels import cpu
from rnntools.kernels.row_invariant import pack_panels, panel_columns

unidirectional = rnn_problems(bidirectional=False, ragged=False)


def run_steps(x, params, cell, nonlinearity, initial_state):
    prepared = prepare_step(params, cell, nonlinearity=nonlinearity)
    state, outputs = initial_state, []
    for t in range(x.shape[1]):
        output, state = rnn_step(x[:, t], state, prepared)
        outputs.append(output)
    return np.stack(outputs, axis=1), state


@given(unidirectional, st.sampled_from([np.float32, np.float64]))
def test_steps_equal_rnn_forward_bit_for_bit(problem, dtype):
    arrays = problem.make_arrays(dtype)
    kwargs = problem.forward_kwargs(arrays)
    output, final_state, _ = rnn_forward(arrays.x, arrays.params, **kwargs)
    stepped, state = run_steps(
        arrays.x,
        arrays.params,
        problem.cell,
        problem.nonlinearity,
        arrays.initial_state,
    )
    assert stepped.dtype == dtype
    np.testing.assert_array_equal(stepped, output)
    for got, expected in zip(
        state_arrays(problem.cell, state),
        state_arrays(problem.cell, final_state),
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_saturated_steps_equal_rnn_forward_bit_for_bit(cell, dtype):
    # The step kernels compute each element's gates in registers, the forward
    # layers over blocks of gates: the same arithmetic, also where the gates
    # saturate (pre-activations of +-1e3, past the flush of exp to zero at
    # -87 in float32) and at exact zeros, the branches of the activations.
    rng = np.random.default_rng(0)
    params = init_params(cell, 4, 8, num_layers=2, random_state=1, dtype=dtype)
    params = {key: value * 40 for key, value in params.items()}
    x = rng.standard_normal((5, 7, 4)).astype(dtype) * 20
    x[:, 3] = 0
    for return_cache in (True, False):
        output = rnn_forward(x, params, cell, return_cache=return_cache)[0]
        stepped, _ = run_steps(x, params, cell, "tanh", None)
        assert np.abs(output).max() > 0.999  # saturated somewhere
        np.testing.assert_array_equal(stepped, output)


@given(
    rnn_problems(bidirectional=False, ragged=False, max_batch=6, max_hidden=40),
    st.sampled_from([np.float32, np.float64]),
    st.randoms(use_true_random=False),
)
def test_each_row_is_bit_identical_alone_and_in_any_batch(problem, dtype, random):
    arrays = problem.make_arrays(dtype)
    prepared = prepare_step(
        arrays.params, problem.cell, nonlinearity=problem.nonlinearity
    )
    batch = problem.batch_size
    order = list(range(batch))
    random.shuffle(order)
    state_together = state_shuffled = None
    for t in range(problem.seq_len):
        out_together, state_together = rnn_step(
            arrays.x[:, t], state_together, prepared
        )
        out_shuffled, state_shuffled = rnn_step(
            arrays.x[order, t], state_shuffled, prepared
        )
        np.testing.assert_array_equal(out_shuffled, out_together[order])
    for row in range(batch):
        state = None
        for t in range(problem.seq_len):
            out_alone, state = rnn_step(arrays.x[row : row + 1, t], state, prepared)
        np.testing.assert_array_equal(out_alone[0], out_together[row])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_steps_in_blocks_on_two_threads_equal_one_block(cell, monkeypatch):
    # A large batch (beams) is stepped in blocks of rows on several threads,
    # each through copies of its rows: the outputs and states are the bits
    # of the whole batch in one block.
    rng = np.random.default_rng(1)
    prepared = prepare_step(init_params(cell, 3, 5, num_layers=2, random_state=0), cell)
    x = rng.standard_normal((4, 7, 3), dtype=np.float32)

    def steps():
        state, outputs = None, []
        for x_t in x:
            output, state = rnn_step(x_t, state, prepared)
            outputs.append(output)
        return np.stack(outputs), state_arrays(cell, state)

    one_block = steps()
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "2")
    monkeypatch.setattr(functional, "_MIN_FLOPS_PER_BLOCK", 0)
    blocks = steps()
    np.testing.assert_array_equal(blocks[0], one_block[0])
    for got, expected in zip(blocks[1], one_block[1], strict=True):
        np.testing.assert_array_equal(got, expected)


def test_state_is_not_modified_and_beams_reorder_by_indexing():
    params = init_params("lstm", 3, 4, num_layers=2, random_state=0, dtype=np.float64)
    prepared = prepare_step(params, "lstm")
    x = np.random.default_rng(0).standard_normal((3, 3))
    _, state = rnn_step(x, None, prepared)
    saved = tuple(part.copy() for part in state)
    _, next_state = rnn_step(x, state, prepared)
    for part, copy in zip(state, saved, strict=True):
        np.testing.assert_array_equal(part, copy)
    index = np.array([2, 2, 0])
    reordered = tuple(part[:, index] for part in state)
    out_reordered, _ = rnn_step(x[index], reordered, prepared)
    out, _ = rnn_step(x, state, prepared)
    np.testing.assert_array_equal(out_reordered, out[index])
    assert next_state[0].shape == (2, 3, 4)


@given(
    rnn_problems(bidirectional=False, ragged=False, max_batch=6, max_hidden=40),
    st.sampled_from([np.float32, np.float64]),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_beams_sharing_a_parent_state_get_the_bits_of_their_own_copy(
    problem, dtype, projected, random
):
    # Beam search hands the stack each distinct parent state once, and every
    # beam the index of its parent: the products are computed per state and
    # shared. Each beam must get the bits of a step on its own copy of the
    # state (as decoding.beam_search's reordered states give it).
    arrays = problem.make_arrays(dtype)
    prepared = prepare_step(
        arrays.params, problem.cell, nonlinearity=problem.nonlinearity
    )
    layers, hidden = prepared.num_layers, prepared.hidden_size
    width = prepared.bias.shape[1]
    rng = np.random.default_rng(problem.batch_size * hidden)
    beams = random.randint(1, 3 * problem.batch_size)
    states = min(problem.batch_size, beams)  # never more states than beams
    h = rng.standard_normal((layers, states, hidden)).astype(dtype)
    c_width = hidden if problem.cell == "lstm" else 0
    c = rng.standard_normal((layers, states, c_width)).astype(dtype)
    parents = np.array([random.randrange(states) for _ in range(beams)], np.int64)
    columns = width if projected else prepared.input_size
    x = rng.standard_normal((beams, columns)).astype(dtype)

    def step(x, h, c, parents):
        rows = x.shape[0]
        h_out = np.full((layers, rows, hidden), np.nan, dtype)
        c_out = np.full((layers, rows, c_width), np.nan, dtype)
        scratch = np.full((rows, 3 * width + 2 * hidden), np.nan, dtype)
        assert cpu.stack_step(
            prepared.kernel_relu, x.copy(), projected,
            prepared.w_ih0_t, prepared.w_ih_rest_t, prepared.w_hh_t,
            prepared.bias, prepared.b_hn, prepared.tanh_columns, h, c, parents,
            h_out, c_out, scratch,
        )  # fmt: skip
        return h_out, c_out

    shared = step(x, h, c, parents)
    copied = step(
        x,
        np.ascontiguousarray(h[:, parents]),
        np.ascontiguousarray(c[:, parents]),
        np.empty(0, np.int64),
    )
    for got, expected in zip(shared, copied, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "allocated"])
def test_scratch_kept_between_steps_serves_any_batch_and_network(kept, monkeypatch):
    # rnn_step keeps each thread's scratch between calls (kept: every batch
    # here; allocated: the kernel allocates the scratch of these small
    # batches); a buffer grown by a bigger step must not leave a stale
    # view behind. Steps of two networks at batches 1, 9, 1 in this thread
    # give the bits of the same steps in a fresh thread (fresh scratch).
    if kept:
        monkeypatch.setattr(functional, "_ALLOCATED_SCRATCH_BYTES", 0)
    rng = np.random.default_rng(0)
    small = prepare_step(init_params("lstm", 3, 4, random_state=0), "lstm")
    large = prepare_step(init_params("gru", 5, 40, num_layers=2, random_state=1), "gru")
    calls = [
        (small, rng.standard_normal((1, 3), dtype=np.float32)),
        (large, rng.standard_normal((9, 5), dtype=np.float32)),
        (small, rng.standard_normal((1, 3), dtype=np.float32)),
        (small, rng.standard_normal((9, 3), dtype=np.float32)),
    ]
    here = [rnn_step(x, None, prepared)[0] for prepared, x in calls]
    fresh = []
    for prepared, x in calls:
        thread = threading.Thread(
            target=lambda p=prepared, x=x: fresh.append(rnn_step(x, None, p)[0])
        )
        thread.start()
        thread.join()
    for ours, reference in zip(here, fresh, strict=True):
        np.testing.assert_array_equal(ours, reference)
    # Row 0 of a batch of 9 is the row alone: the same scratch, another view.
    alone = rnn_step(calls[3][1][:1], None, small)[0]
    np.testing.assert_array_equal(alone[0], here[3][0])


def test_prepare_step_lays_out_weights_once():
    params = init_params("gru", 5, 3, random_state=0)
    prepared = prepare_step(params, "gru")
    assert isinstance(prepared, PreparedStep)
    assert prepared.dtype == np.float32
    assert (prepared.num_layers, prepared.hidden_size, prepared.input_size) == (1, 3, 5)
    # Transposed and packed in panels (9 gate columns: one zero-padded panel).
    np.testing.assert_array_equal(
        prepared.w_ih0_t, pack_panels(params["weight_ih_l0"].T)
    )
    np.testing.assert_array_equal(
        prepared.w_hh_t[0], pack_panels(params["weight_hh_l0"].T)
    )
    np.testing.assert_array_equal(prepared.w_hh_t[0][:, :9], params["weight_hh_l0"].T)
    assert prepared.w_hh_t.flags.c_contiguous
    assert prepared.w_ih_rest_t.shape == (0, 3, panel_columns(np.float32))
    np.testing.assert_array_equal(prepared.b_hn[0], params["bias_hh_l0"][6:])
    expected = params["bias_ih_l0"] + np.r_[params["bias_hh_l0"][:6], 0, 0, 0]
    np.testing.assert_array_equal(prepared.bias[0], expected)
    assert prepare_step(params, "gru", dtype="float64").dtype == np.float64


def test_float32_inputs_run_in_the_prepared_dtype():
    params = init_params("rnn", 2, 3, random_state=0, dtype=np.float64)
    prepared = prepare_step(params, "rnn")
    output, state = rnn_step(np.ones((1, 2), np.float32), None, prepared)
    assert output.dtype == state.dtype == np.float64


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p, s: prepare_step(p, "lstm"), ValueError, "has shape"),
        (lambda p, s: prepare_step(p, "cnn"), ValueError, "cell must be"),
        (lambda p, s: prepare_step([], "gru"), TypeError, "dict"),
        (lambda p, s: prepare_step(p, "gru", dtype="int8"), TypeError, "dtype"),
        (lambda p, s: rnn_step(np.ones((2, 3)), None, p), TypeError, "PreparedStep"),
        (lambda p, s: rnn_step(np.ones((2, 4)), None, s), ValueError, r"x_t has"),
        (lambda p, s: rnn_step(np.ones(3), None, s), ValueError, "2-dimensional"),
        (lambda p, s: rnn_step(np.ones((0, 3)), None, s), ValueError, "one row"),
        (lambda p, s: rnn_step(np.ones((2, 3), int), None, s), TypeError, "float"),
        (
            lambda p, s: rnn_step(np.full((1, 3), np.nan), None, s),
            ValueError,
            "x_t contains NaN",
        ),
        (
            lambda p, s: rnn_step(np.ones((2, 3)), np.ones((1, 3, 4)), s),
            ValueError,
            "state has shape",
        ),
        (
            lambda p, s: rnn_step(np.ones((2, 3)), np.full((1, 2, 4), np.inf), s),
            ValueError,
            "state contains NaN",
        ),
        (
            lambda p, s: rnn_step(np.ones((2, 3)), (np.ones((1, 2, 4)),) * 2, s),
            TypeError,
            "single array h",
        ),
    ],
)
def test_bad_input_is_named(call, error, match):
    params = init_params("gru", 3, 4, random_state=0)
    with pytest.raises(error, match=match):
        call(params, prepare_step(params, "gru"))


def test_bidirectional_networks_are_refused():
    params = init_params("lstm", 3, 4, bidirectional=True, random_state=0)
    with pytest.raises(ValueError, match="unidirectional"):
        prepare_step(params, "lstm")
