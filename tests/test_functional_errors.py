"""Malformed calls of ``rnn_forward`` / ``rnn_backward`` raise clear errors.

Validation happens once, at the public boundary: the Numba kernels have no
bounds checks, so anything that reaches them malformed could crash the
interpreter or return garbage. Every case below changes one thing of a valid
call and expects a ``ValueError`` or ``TypeError`` whose message names the
problem (the argument, the key, the dtype or the shape at fault).
"""

import numpy as np
import pytest
from helpers import map_state
from strategies import RNNProblem

from rnntools import functional, init_params, rnn_backward, rnn_forward

BATCH, STEPS, FEATURES, HIDDEN = 3, 4, 3, 2


def valid_call(cell="lstm", bidirectional=True, num_layers=2):
    """Keyword arguments of a valid ``rnn_forward`` call (ragged, with h_0)."""
    problem = RNNProblem(
        cell=cell,
        nonlinearity="tanh",
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_size=BATCH,
        seq_len=STEPS,
        input_size=FEATURES,
        hidden_size=HIDDEN,
        lengths=(4, 2, 3),
        has_initial_state=True,
        seed=0,
    )
    arrays = problem.make_arrays()
    return {
        "x": arrays.x,
        "params": dict(arrays.params),
        **problem.forward_kwargs(arrays),
    }


def with_changed(name, function):
    """A case that replaces ``kwargs[name]`` with ``function(kwargs[name])``."""

    def change(kwargs):
        kwargs[name] = function(kwargs[name])
        return kwargs

    return change


def with_param(key, function):
    """A case that replaces ``params[key]``; ``function`` returning None drops it."""

    def change(kwargs):
        value = function(kwargs["params"].get(key))
        if value is None:
            del kwargs["params"][key]
        else:
            kwargs["params"][key] = value
        return kwargs

    return change


def with_values(index, value):
    """``function`` for :func:`with_changed`: a copy with one entry replaced."""

    def replace(array):
        array = array.copy()
        array[index] = value
        return array

    return replace


def from_other_cell(cell, **kwargs):
    """A case that swaps in the params of another network."""

    def change(call):
        call["params"] = valid_call(cell, **kwargs)["params"]
        return call

    return change


def as_tuple(state):
    return (state, state)


FORWARD_CASES = [
    # x
    pytest.param(
        with_changed("x", lambda x: x[0]), ValueError, "x must be 3-dim", id="x-2d"
    ),
    pytest.param(
        with_changed("x", lambda x: x[None]), ValueError, "x must be 3-dim", id="x-4d"
    ),
    pytest.param(
        with_changed("x", lambda x: x[:0]),
        ValueError,
        "zero-length axis",
        id="x-batch-0",
    ),
    pytest.param(
        with_changed("x", lambda x: x[:, :0]),
        ValueError,
        "zero-length axis",
        id="x-steps-0",
    ),
    pytest.param(
        with_changed("x", lambda x: x[:, :, :0]),
        ValueError,
        "zero-length axis",
        id="x-features-0",
    ),
    pytest.param(
        with_changed("x", lambda x: x[:, :, :2]),
        ValueError,
        "x has 2 features.*weight_ih_l0",
        id="x-feature-mismatch",
    ),
    pytest.param(
        with_changed("x", lambda x: x.astype(np.float16)),
        TypeError,
        "x must have dtype float32 or float64, got float16",
        id="x-float16",
    ),
    pytest.param(
        with_changed("x", lambda x: x.astype(np.int64)),
        TypeError,
        "x must have dtype float32 or float64, got int64",
        id="x-int",
    ),
    pytest.param(
        with_changed("x", lambda x: x.astype(object)),
        TypeError,
        "x must have dtype float32 or float64, got object",
        id="x-object",
    ),
    pytest.param(
        with_changed("x", lambda x: x.astype(np.complex128)),
        TypeError,
        "x must have dtype float32 or float64, got complex128",
        id="x-complex",
    ),
    pytest.param(
        with_changed("x", lambda x: x.astype(bool)),
        TypeError,
        "x must have dtype float32 or float64, got bool",
        id="x-bool",
    ),
    pytest.param(
        with_changed("x", lambda x: "x"),
        TypeError,
        "x must be a NumPy array",
        id="x-str",
    ),
    pytest.param(
        with_changed("x", with_values((1, 1, 0), np.nan)),
        ValueError,
        "x contains NaN",
        id="x-nan-in-sequence",
    ),
    pytest.param(
        with_changed("x", with_values((2, 2, 1), -np.inf)),
        ValueError,
        "x contains NaN or inf",
        id="x-inf-in-sequence",
    ),
    # params
    pytest.param(
        with_changed("params", lambda params: list(params.values())),
        TypeError,
        "params must be a dict",
        id="params-list",
    ),
    pytest.param(
        with_param("bias_hh_l1", lambda value: None),
        ValueError,
        "missing.*'bias_hh_l1'",
        id="missing-key",
    ),
    pytest.param(
        with_param("weight_hh_l0", lambda value: None),
        ValueError,
        "missing.*'weight_hh_l0'",
        id="missing-weight_hh_l0",
    ),
    pytest.param(
        with_param("weight_ih_l1_reverse", lambda value: value[:, :-1]),
        ValueError,
        r"params\['weight_ih_l1_reverse'\] has shape \(8, 3\), expected \(8, 4\)",
        id="misshaped-weight",
    ),
    pytest.param(
        with_param("bias_ih_l0", lambda value: value[:, None]),
        ValueError,
        r"params\['bias_ih_l0'\] has shape",
        id="misshaped-bias",
    ),
    pytest.param(
        with_param("weight_hh_l0", lambda value: value[:, :1]),
        ValueError,
        "weight_hh_l0",
        id="misshaped-weight_hh_l0",
    ),
    pytest.param(
        with_param("weight_ih_10", lambda value: np.zeros((8, 3))),
        ValueError,
        "unexpected key 'weight_ih_10'",
        id="typo-key",
    ),
    pytest.param(
        with_param("head.weight", lambda value: np.zeros((1, 4))),
        ValueError,
        "unexpected key 'head.weight'",
        id="extra-key",
    ),
    pytest.param(
        with_param("weight_ih_l01", lambda value: np.zeros((8, 4))),
        ValueError,
        "weight_ih_l01",
        id="key-with-leading-zero",
    ),
    pytest.param(
        with_changed("bidirectional", lambda value: False),
        ValueError,
        "'weight_ih_l0_reverse'.*bidirectional",
        id="reverse-keys-unidirectional",
    ),
    pytest.param(
        from_other_cell("lstm", bidirectional=False),
        ValueError,
        "missing.*_reverse",
        id="bidirectional-without-reverse-keys",
    ),
    pytest.param(
        from_other_cell("gru"),
        ValueError,
        r"weight_hh_l0.*\(6, 2\).*different cell",
        id="gru-params-lstm-cell",
    ),
    pytest.param(
        with_param("weight_hh_l1", with_values((0, 1), np.nan)),
        ValueError,
        r"params\['weight_hh_l1'\] contains NaN",
        id="nan-in-params",
    ),
    pytest.param(
        with_param("bias_hh_l0_reverse", lambda value: value.astype(np.int64)),
        TypeError,
        r"params\['bias_hh_l0_reverse'\] must have dtype float32 or float64",
        id="int-params",
    ),
    # lengths
    pytest.param(
        with_changed("lengths", with_values(1, 0)),
        ValueError,
        "between 1 and T",
        id="length-0",
    ),
    pytest.param(
        with_changed("lengths", with_values(1, -2)),
        ValueError,
        "between 1 and T",
        id="length-negative",
    ),
    pytest.param(
        with_changed("lengths", with_values(2, STEPS + 1)),
        ValueError,
        "between 1 and T=4",
        id="length-above-T",
    ),
    pytest.param(
        with_changed("lengths", lambda lengths: lengths[:2]),
        ValueError,
        r"lengths must have shape \(3,\)",
        id="lengths-too-few",
    ),
    pytest.param(
        with_changed("lengths", lambda lengths: lengths[:, None]),
        ValueError,
        r"lengths must have shape \(3,\)",
        id="lengths-2d",
    ),
    pytest.param(
        with_changed("lengths", lambda lengths: lengths.astype(float)),
        TypeError,
        "lengths must be integers",
        id="lengths-float",
    ),
    # initial_state
    pytest.param(
        with_changed("initial_state", lambda state: (state[0][:, :2], state[1])),
        ValueError,
        r"initial_state\[0\] has shape \(4, 2, 2\), expected \(4, 3, 2\)",
        id="initial-h-shape",
    ),
    pytest.param(
        with_changed("initial_state", lambda state: state[0]),
        TypeError,
        r"initial_state of an lstm must be a tuple \(h, c\)",
        id="lstm-initial-state-array",
    ),
    pytest.param(
        with_changed("initial_state", lambda state: (*state, state[0])),
        TypeError,
        r"initial_state of an lstm must be a tuple \(h, c\)",
        id="lstm-initial-state-triple",
    ),
    pytest.param(
        with_changed("initial_state", lambda state: (state[0], state[1] * np.inf)),
        ValueError,
        r"initial_state\[1\] contains NaN or inf",
        id="initial-c-inf",
    ),
    # options
    pytest.param(
        with_changed("cell", lambda cell: "transformer"),
        ValueError,
        "cell must be one of.*'transformer'",
        id="unknown-cell",
    ),
    pytest.param(
        with_changed("cell", lambda cell: None),
        ValueError,
        "cell must be one of",
        id="cell-none",
    ),
    pytest.param(
        with_changed("nonlinearity", lambda value: "sigmoid"),
        ValueError,
        "nonlinearity must be one of.*'sigmoid'",
        id="unknown-nonlinearity",
    ),
    pytest.param(
        with_changed("nonlinearity", lambda value: "relu"),
        ValueError,
        "nonlinearity='relu' applies to cell='rnn' only",
        id="relu-with-lstm",
    ),
    pytest.param(
        with_changed("bidirectional", lambda value: "yes"),
        TypeError,
        "bidirectional must be a bool",
        id="bidirectional-str",
    ),
]

GRU_FORWARD_CASES = [
    pytest.param(
        with_changed("initial_state", as_tuple),
        TypeError,
        r"initial_state of a gru is a single array h, not a tuple",
        id="gru-initial-state-tuple",
    ),
    pytest.param(
        with_changed("initial_state", lambda state: state[:, :, :1]),
        ValueError,
        r"initial_state has shape \(4, 3, 1\), expected \(4, 3, 2\)",
        id="gru-initial-state-shape",
    ),
    pytest.param(
        with_changed("initial_state", lambda state: state.astype(np.int32)),
        TypeError,
        "initial_state must have dtype float32 or float64",
        id="gru-initial-state-int",
    ),
    pytest.param(
        from_other_cell("rnn"),
        ValueError,
        r"weight_hh_l0.*\(2, 2\).*different cell",
        id="rnn-params-gru-cell",
    ),
]


@pytest.mark.parametrize("change, error, match", FORWARD_CASES)
def test_malformed_forward_call_raises(change, error, match):
    with pytest.raises(error, match=match):
        rnn_forward(**change(valid_call("lstm")))


@pytest.mark.parametrize("change, error, match", FORWARD_CASES)
def test_malformed_forward_call_raises_after_a_valid_one(change, error, match):
    # A valid call records the params' layout (validated once, then only
    # checked finite): the call changed afterwards must still raise.
    kwargs = valid_call("lstm")
    rnn_forward(**kwargs)
    with pytest.raises(error, match=match):
        rnn_forward(**change(kwargs))


def test_params_made_nan_in_place_after_a_valid_call_raise():
    kwargs = valid_call("lstm")
    rnn_forward(**kwargs)
    kwargs["params"]["bias_ih_l1_reverse"][3] = np.inf
    with pytest.raises(ValueError, match=r"params\['bias_ih_l1_reverse'\] contains"):
        rnn_forward(**kwargs)


@pytest.mark.parametrize("change, error, match", GRU_FORWARD_CASES)
def test_malformed_gru_forward_call_raises(change, error, match):
    with pytest.raises(error, match=match):
        rnn_forward(**change(valid_call("gru")))


@pytest.mark.parametrize(
    "device, error, match",
    [
        pytest.param(
            "tpu", ValueError, "device must be 'cpu' or 'cuda', got 'tpu'", id="tpu"
        ),
        pytest.param("gpu", ValueError, "device must be 'cpu' or 'cuda'", id="gpu"),
        pytest.param("CUDA", ValueError, "device must be 'cpu' or 'cuda'", id="CUDA"),
        pytest.param(0, ValueError, "device must be 'cpu' or 'cuda', got 0", id="0"),
    ],
)
def test_bad_device_raises(device, error, match):
    with pytest.raises(error, match=match):
        rnn_forward(**valid_call("lstm"), device=device)


def beyond_float32(array):
    """A float64 copy with one finite entry too large for float32."""
    return with_values((0,) * array.ndim, 1e39)(array)


@pytest.mark.parametrize(
    "argument, match",
    [
        pytest.param("params", r"params\['weight_hh_l0'\]", id="params"),
        pytest.param("initial_state", r"initial_state\[1\]", id="initial_state"),
        pytest.param("d_output", "d_output", id="d_output"),
    ],
)
def test_float32_call_with_float64_values_beyond_float32_range_raises(argument, match):
    """Other arrays are cast to x's dtype; an entry that becomes inf is invalid.

    The finiteness checks must see the values that the kernels compute with.
    """
    kwargs = valid_call("lstm")
    kwargs["x"] = kwargs["x"].astype(np.float32)
    if argument == "d_output":
        output, _, cache = rnn_forward(**kwargs)
        with pytest.raises(ValueError, match=match):
            rnn_backward(cache, beyond_float32(output.astype(np.float64)))
        return
    if argument == "params":
        weight = kwargs["params"]["weight_hh_l0"]
        kwargs["params"]["weight_hh_l0"] = beyond_float32(weight)
    else:
        h_0, c_0 = kwargs["initial_state"]
        kwargs["initial_state"] = (h_0, beyond_float32(c_0))
    with pytest.raises(ValueError, match=match):
        rnn_forward(**kwargs)


def forward_for_backward(cell):
    """A forward pass and valid ``d_output`` / ``d_final_state`` for it."""
    kwargs = valid_call(cell)
    output, final_state, cache = rnn_forward(**kwargs)
    rng = np.random.default_rng(1)
    d_output = rng.standard_normal(output.shape)
    d_final_state = map_state(final_state, lambda part: rng.standard_normal(part.shape))
    return cache, d_output, d_final_state


BACKWARD_CASES = [
    pytest.param(
        "lstm",
        lambda cache, d_output, d_final: (cache, d_output[:, :-1], d_final),
        ValueError,
        r"d_output has shape \(3, 3, 4\), expected \(3, 4, 4\)",
        id="d_output-shape",
    ),
    pytest.param(
        "lstm",
        lambda cache, d_output, d_final: (cache, d_output[0], d_final),
        ValueError,
        "d_output must be 3-dim",
        id="d_output-2d",
    ),
    pytest.param(
        "lstm",
        lambda cache, d_output, d_final: (
            cache,
            with_values((0, 1, 2), np.nan)(d_output),
            d_final,
        ),
        ValueError,
        "d_output contains NaN",
        id="d_output-nan",
    ),
    pytest.param(
        "lstm",
        lambda cache, d_output, d_final: (cache, d_output.astype(np.int64), d_final),
        TypeError,
        "d_output must have dtype float32 or float64",
        id="d_output-int",
    ),
    pytest.param(
        "lstm",
        lambda cache, d_output, d_final: (
            cache,
            d_output,
            (d_final[0][:2], d_final[1]),
        ),
        ValueError,
        r"d_final_state\[0\] has shape \(2, 3, 2\), expected \(4, 3, 2\)",
        id="d_final_state-shape",
    ),
    pytest.param(
        "lstm",
        lambda cache, d_output, d_final: (cache, d_output, d_final[0]),
        TypeError,
        r"d_final_state of an lstm must be a tuple \(h, c\)",
        id="lstm-d_final_state-array",
    ),
    pytest.param(
        "gru",
        lambda cache, d_output, d_final: (cache, d_output, as_tuple(d_final)),
        TypeError,
        "d_final_state of a gru is a single array",
        id="gru-d_final_state-tuple",
    ),
    pytest.param(
        "gru",
        lambda cache, d_output, d_final: (cache, d_output, d_final * np.nan),
        ValueError,
        "d_final_state contains NaN",
        id="d_final_state-nan",
    ),
    pytest.param(
        "gru",
        lambda cache, d_output, d_final: ({"cache": cache}, d_output, d_final),
        TypeError,
        "cache must be the ForwardCache returned by rnn_forward, got dict",
        id="cache-dict",
    ),
    pytest.param(
        "gru",
        lambda cache, d_output, d_final: (None, d_output, d_final),
        TypeError,
        "cache must be the ForwardCache",
        id="cache-none",
    ),
]


@pytest.mark.parametrize("cell, arguments, error, match", BACKWARD_CASES)
def test_malformed_backward_call_raises(cell, arguments, error, match):
    with pytest.raises(error, match=match):
        rnn_backward(*arguments(*forward_for_backward(cell)))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        pytest.param({"cell": "elman"}, ValueError, "cell must be one of", id="cell"),
        pytest.param(
            {"hidden_size": 0}, ValueError, "hidden_size must be >= 1", id="H-0"
        ),
        pytest.param(
            {"num_layers": 1.5}, TypeError, "num_layers must be an int", id="L-float"
        ),
        pytest.param(
            {"dtype": np.float16},
            TypeError,
            "dtype must be float32 or float64",
            id="float16",
        ),
        pytest.param({"scheme": "xavier"}, ValueError, "scheme must be", id="scheme"),
    ],
)
def test_malformed_init_params_call_raises(kwargs, error, match):
    arguments = {"cell": "lstm", "input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(error, match=match):
        init_params(**arguments)


@pytest.mark.parametrize("return_cache", [True, False])
@pytest.mark.parametrize(
    ("cell", "hidden", "bidirectional"),
    [("lstm", 4, True), ("gru", 4, False), ("rnn", 4, True), ("lstm", 512, True)],
)
def test_x_checked_in_every_block(
    monkeypatch, cell, hidden, bidirectional, return_cache
):
    # On the CPU the forward kernels check the values of x that they gather
    # (each block its own rows, on its own thread; the LSTM of 512 units runs
    # its inference panel by panel): a NaN or infinity in the last block's
    # rows is found, in training and in inference; one in the padding of a
    # ragged row is not looked at.
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "2")
    monkeypatch.setattr(functional, "_MIN_FLOPS_PER_BLOCK", 0)  # two blocks
    rng = np.random.default_rng(0)
    params = init_params(cell, 3, hidden, bidirectional=bidirectional, random_state=0)
    params = {key: value.astype(np.float32) for key, value in params.items()}
    x = rng.standard_normal((6, 5, 3)).astype(np.float32)
    lengths = np.array([5, 5, 3, 5, 5, 5])
    x[2, 3:] = np.nan  # padding: ignored
    kwargs = {"bidirectional": bidirectional, "return_cache": return_cache}
    rnn_forward(x, params, cell, lengths=lengths, **kwargs)
    for value in (np.nan, -np.inf):
        bad = x.copy()
        bad[4, 4, 1] = value  # row 4: the second block (worker thread)
        with pytest.raises(ValueError, match="x contains NaN or infinity"):
            rnn_forward(bad, params, cell, lengths=lengths, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_d_output_checked_in_every_block(monkeypatch, dtype):
    # On the CPU each block checks its own rows of d_output as it gathers
    # them (on its own thread): a NaN in the last block's rows is found, one
    # in the padding of a ragged row is not looked at. 64 x 50 steps of an
    # LSTM of 32 units make two blocks on two threads.
    monkeypatch.setenv("RNNTOOLS_NUM_THREADS", "2")
    rng = np.random.default_rng(0)
    params = init_params("lstm", 8, 32, random_state=0, dtype=dtype)
    x = rng.standard_normal((64, 50, 8)).astype(dtype)
    lengths = np.full(64, 50)
    lengths[62] = 20
    output, _, cache = rnn_forward(x, params, "lstm", lengths=lengths)
    assert len(cache.blocks) == 2
    d_output = np.ones_like(output)
    d_output[62, 30:] = np.nan  # padding: ignored
    rnn_backward(cache, d_output)
    for value in (np.nan, np.inf):
        d_output[63, 10, 5] = value
        with pytest.raises(ValueError, match="d_output contains NaN or infinity"):
            rnn_backward(cache, d_output)
