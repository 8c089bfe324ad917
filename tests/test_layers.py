"""Tests of ``rnntools.layers``: embedding, linear and Luong attention.

Each backward function is checked against central differences of its forward
function in float64, with a random upstream gradient ``g`` (loss =
``sum(output * g)``) so that every output element matters; attention is also
checked against an equivalent PyTorch computation (autograd for the
gradients), and for its masking and shape validation.
"""

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rnntools.layers import (
    attention_backward,
    attention_forward,
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
)

# Central differences err by ~step**2 * |f'''| / 6 ~ 1e-13 (truncation; the
# derivatives of tanh, softmax and products of O(1) values are O(1..10)) plus
# ~eps * |f| / step ~ 2e-10 * |f| (rounding of the two losses; |f| is O(1..10)
# on these small problems). FD_RTOL (relative to each element) and FD_ATOL
# (for elements near 0, where the rounding dominates) leave a margin of 10x:
# over 2000 drawn attention problems the largest error was 1.7e-9 absolute and
# at most 0.1 of the allowed ``FD_ATOL + FD_RTOL * |numerical|``. A wrong
# derivative term is off by a sizeable fraction of the gradient.
FD_STEP = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-8
# float64 PyTorch parity, measured against max(scale of the array, 1) (see
# test_functional_torch.py): both sides differ only in rounding (summation
# order of the GEMMs, exp/tanh implementations), ~1e-16 per operation over a
# few dozen dependent operations; measured at most 1.7e-15 over 1000 drawn
# problems. 1e-10 is the brief's bound; a semantic difference (order of
# [c; h], masking, a transposed W_a) is off by 1e-2 or more.
TORCH_RTOL = 1e-10
# The same computation on arrays of other shapes (more padding, one sequence
# alone) may round differently inside BLAS, by a few ulps.
RESHAPE_RTOL = 1e-12
# float32 against float64 on the same inputs: u = 6e-8 over a few dozen
# operations stays within ~1e-6 (measured: at most 5.7e-7 over 1000 drawn
# problems); 1e-4 is a wide margin.
FLOAT32_RTOL = 1e-4

SCORES = ("general", "dot")


def scaled_error(actual, desired):
    """``max |actual - desired|`` over ``max(max |desired|, 1)``."""
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(float(np.abs(desired).max(initial=0.0)), 1.0)
    return float(np.abs(np.asarray(actual, np.float64) - desired).max()) / scale


def numerical_gradient(loss, array):
    """Central differences of ``loss()`` with respect to every element of ``array``.

    ``array`` is perturbed in place and restored.
    """
    gradient = np.empty_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + FD_STEP
        plus = loss()
        array[index] = original - FD_STEP
        minus = loss()
        array[index] = original
        gradient[index] = (plus - minus) / (2 * FD_STEP)
    return gradient


# ------------------------------------------------------------------ embedding


def test_embedding_forward_gathers_rows():
    weight = np.arange(12, dtype=np.float32).reshape(4, 3)
    ids = np.array([[3, 0], [3, 1]])
    out = embedding_forward(ids, weight)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[weight[3], weight[0]], [weight[3], weight[1]]])


def test_embedding_backward_adds_repeated_ids():
    ids = np.array([[1, 1], [0, 1]])
    d_out = np.array([[[1.0, 2.0], [10.0, 20.0]], [[5.0, 6.0], [100.0, 200.0]]])
    d_weight = embedding_backward(ids, d_out, 3)
    np.testing.assert_array_equal(d_weight, [[5.0, 6.0], [111.0, 222.0], [0.0, 0.0]])


@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    num_embeddings=st.integers(1, 4),
    embedding_dim=st.integers(1, 3),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_embedding_matches_numpy(shape, num_embeddings, embedding_dim, dtype, seed):
    """Gather equals fancy indexing; the scatter-add equals ``np.add.at``.

    Few embeddings and many ids make repeated ids the rule. Both sides add the
    rows in the order of ``ids``, starting from 0, so they agree bit for bit.
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, num_embeddings, size=shape)
    weight = rng.standard_normal((num_embeddings, embedding_dim)).astype(dtype)
    d_out = rng.standard_normal((*shape, embedding_dim)).astype(dtype)

    out = embedding_forward(ids, weight)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, weight[ids])

    d_weight = embedding_backward(ids, d_out, num_embeddings)
    expected = np.zeros_like(weight)
    np.add.at(expected, ids.ravel(), d_out.reshape(-1, embedding_dim))
    assert d_weight.dtype == dtype
    np.testing.assert_array_equal(d_weight, expected)


def test_embedding_forward_scalar_id():
    weight = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(embedding_forward(np.int64(2), weight), weight[2])


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        (np.array([0, -1]), ValueError, r"ids must be in \[0, 3\)"),
        (np.array([[0], [3]]), ValueError, r"ids must be in \[0, 3\)"),
        (np.array([0.0, 1.0]), TypeError, "ids must be integers"),
    ],
    ids=["negative", "too-large", "float"],
)
def test_embedding_rejects_bad_ids(ids, error, match):
    weight = np.zeros((3, 2))
    with pytest.raises(error, match=match):
        embedding_forward(ids, weight)
    with pytest.raises(error, match=match):
        embedding_backward(ids, np.zeros((*ids.shape, 2)), 3)


def test_embedding_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"weight must have shape \(V, E\)"):
        embedding_forward(np.array([0]), np.zeros(3))
    with pytest.raises(ValueError, match="d_out has shape"):
        embedding_backward(np.array([[0, 1]]), np.zeros((2, 1, 4)), 3)


# --------------------------------------------------------------------- linear


@given(
    leading_shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    in_features=st.integers(1, 4),
    out_features=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_linear_gradients_match_finite_differences(
    leading_shape, in_features, out_features, seed
):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*leading_shape, in_features))
    weight = rng.standard_normal((out_features, in_features))
    bias = rng.standard_normal(out_features)
    d_out = rng.standard_normal((*leading_shape, out_features))

    out = linear_forward(x, weight, bias)
    np.testing.assert_allclose(
        out, np.einsum("...f,kf->...k", x, weight) + bias, rtol=1e-12, atol=1e-12
    )

    def loss():
        return float(np.sum(linear_forward(x, weight, bias) * d_out))

    d_x, d_weight, d_bias = linear_backward(x, weight, d_out)
    for name, array, analytic in [
        ("x", x, d_x),
        ("weight", weight, d_weight),
        ("bias", bias, d_bias),
    ]:
        assert analytic.shape == array.shape, name
        np.testing.assert_allclose(
            analytic,
            numerical_gradient(loss, array),
            rtol=FD_RTOL,
            atol=FD_ATOL,
            err_msg=name,
        )


@pytest.mark.parametrize(
    ("x_shape", "weight_shape", "bias_shape"),
    [((2, 3), (4, 2), (4,)), ((2, 3), (4, 3), (3,)), ((5, 2, 3), (4, 3), (4, 1))],
    ids=["features", "bias-size", "bias-ndim"],
)
def test_linear_rejects_mismatched_shapes(x_shape, weight_shape, bias_shape):
    with pytest.raises(ValueError, match="do not match"):
        linear_forward(np.zeros(x_shape), np.zeros(weight_shape), np.zeros(bias_shape))


# ------------------------------------------------------------------ attention


@dataclass(frozen=True)
class AttentionProblem:
    """The structure of one attention problem; arrays come from ``seed``.

    Attributes
    ----------
    score : {"general", "dot"}
    batch_size, target_len, source_len, hidden_size, memory_size : int
        ``B``, ``T_dec``, ``T_src``, ``H``, ``H_mem`` (``H_mem == H`` for dot).
    lengths : tuple of int
        ``B`` source lengths in ``[1, T_src]``.
    seed : int
    """

    score: str
    batch_size: int
    target_len: int
    source_len: int
    hidden_size: int
    memory_size: int
    lengths: tuple[int, ...]
    seed: int

    def make_arrays(self, dtype=np.float64):
        """``query``, ``memory``, ``lengths``, ``params`` and ``d_attentional``.

        Query, memory (padding included: it must be ignored) and the upstream
        gradient are standard normal; the weights are ``U(-k, k)`` with
        ``k = 1/sqrt(fan_in)``, PyTorch's ``nn.Linear`` initialisation.
        """
        rng = np.random.default_rng(self.seed)
        hidden, memory_size = self.hidden_size, self.memory_size

        def uniform(*shape):
            bound = 1 / np.sqrt(shape[1])
            return rng.uniform(-bound, bound, shape).astype(dtype)

        query = rng.standard_normal((self.batch_size, self.target_len, hidden)).astype(
            dtype
        )
        memory = rng.standard_normal(
            (self.batch_size, self.source_len, memory_size)
        ).astype(dtype)
        params = {"attention.weight_c": uniform(hidden, memory_size + hidden)}
        if self.score == "general":
            params["attention.weight_a"] = uniform(hidden, memory_size)
        d_attentional = rng.standard_normal(query.shape).astype(dtype)
        lengths = np.array(self.lengths, dtype=np.int64)
        return query, memory, lengths, params, d_attentional


@st.composite
def attention_problems(draw, scores=SCORES, max_batch=3, max_len=5, max_size=4):
    score = draw(st.sampled_from(scores))
    batch_size = draw(st.integers(1, max_batch))
    source_len = draw(st.integers(1, max_len))
    hidden_size = draw(st.integers(1, max_size))
    memory_size = hidden_size if score == "dot" else draw(st.integers(1, max_size))
    lengths = draw(
        st.lists(st.integers(1, source_len), min_size=batch_size, max_size=batch_size)
    )
    return AttentionProblem(
        score=score,
        batch_size=batch_size,
        target_len=draw(st.integers(1, max_len)),
        source_len=source_len,
        hidden_size=hidden_size,
        memory_size=memory_size,
        lengths=tuple(lengths),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def run_attention(problem, query, memory, lengths, params, d_attentional):
    """Forward and backward; all results in one dict of named arrays."""
    attentional, weights, cache = attention_forward(
        query, memory, lengths, params, score=problem.score
    )
    d_query, d_memory, grads = attention_backward(cache, d_attentional)
    assert grads.keys() == params.keys()
    return {
        "attentional": attentional,
        "weights": weights,
        "d_query": d_query,
        "d_memory": d_memory,
        **{f"grad_{key}": value for key, value in grads.items()},
    }


# One source position, one step, one feature: the smallest problem.
SMALLEST = AttentionProblem("general", 1, 1, 1, 1, 1, (1,), 0)
# Every sequence padded but the last, which fills T_src.
RAGGED = AttentionProblem("dot", 3, 4, 5, 3, 3, (1, 3, 5), 1)
RAGGED_GENERAL = AttentionProblem("general", 3, 2, 5, 2, 4, (2, 5, 1), 2)


@given(problem=attention_problems())
@example(problem=SMALLEST)
@example(problem=RAGGED)
@example(problem=RAGGED_GENERAL)
def test_attention_gradients_match_finite_differences(problem):
    query, memory, lengths, params, d_attentional = problem.make_arrays()

    def loss():
        attentional, _, _ = attention_forward(
            query, memory, lengths, params, score=problem.score
        )
        return float(np.sum(attentional * d_attentional))

    results = run_attention(problem, query, memory, lengths, params, d_attentional)
    inputs = {"d_query": query, "d_memory": memory}
    inputs.update({f"grad_{key}": value for key, value in params.items()})
    for name, array in inputs.items():
        assert results[name].shape == array.shape, name
        np.testing.assert_allclose(
            results[name],
            numerical_gradient(loss, array),
            rtol=FD_RTOL,
            atol=FD_ATOL,
            err_msg=name,
        )


@given(problem=attention_problems())
@example(problem=RAGGED)
@example(problem=RAGGED_GENERAL)
def test_attention_ignores_padded_memory(problem):
    """Weights are a distribution over the real positions, 0 on padding, and
    the memory there (here replaced by large values) changes nothing."""
    query, memory, lengths, params, d_attentional = problem.make_arrays()
    results = run_attention(problem, query, memory, lengths, params, d_attentional)

    padding = np.arange(problem.source_len) >= lengths[:, None]
    weights = results["weights"]
    assert np.all(weights[np.broadcast_to(padding[:, None, :], weights.shape)] == 0)
    assert np.all(weights[np.broadcast_to(~padding[:, None, :], weights.shape)] > 0)
    np.testing.assert_allclose(weights.sum(axis=2), 1.0, rtol=0, atol=1e-12)
    assert np.all(results["d_memory"][padding] == 0)

    rng = np.random.default_rng(problem.seed + 1)
    changed = memory.copy()
    changed[padding] = 1e3 * rng.standard_normal(changed[padding].shape)
    changed_results = run_attention(
        problem, query, changed, lengths, params, d_attentional
    )
    for name, expected in results.items():
        np.testing.assert_array_equal(changed_results[name], expected, err_msg=name)


@given(problem=attention_problems(), extra=st.integers(1, 3))
def test_attention_is_independent_of_batch_padding(problem, extra):
    """More padding after the memory, or a sequence alone with its memory cut
    to its own length, give the same results (up to BLAS rounding)."""
    query, memory, lengths, params, d_attentional = problem.make_arrays()
    results = run_attention(problem, query, memory, lengths, params, d_attentional)

    rng = np.random.default_rng(problem.seed + 1)
    padded_memory = np.concatenate(
        [memory, rng.standard_normal((problem.batch_size, extra, memory.shape[2]))],
        axis=1,
    )
    padded = run_attention(
        problem, query, padded_memory, lengths, params, d_attentional
    )
    assert np.all(padded["weights"][:, :, problem.source_len :] == 0)
    assert np.all(padded["d_memory"][:, problem.source_len :] == 0)
    padded["weights"] = padded["weights"][:, :, : problem.source_len]
    padded["d_memory"] = padded["d_memory"][:, : problem.source_len]
    for name, expected in results.items():
        assert scaled_error(padded[name], expected) <= RESHAPE_RTOL, name

    for b, length in enumerate(lengths):
        alone = run_attention(
            problem,
            query[b : b + 1],
            memory[b : b + 1, :length],
            lengths[b : b + 1],
            params,
            d_attentional[b : b + 1],
        )
        for name in ("attentional", "d_query"):
            assert scaled_error(alone[name], results[name][b : b + 1]) <= RESHAPE_RTOL
        assert (
            scaled_error(alone["weights"], results["weights"][b : b + 1, :, :length])
            <= RESHAPE_RTOL
        )
        assert (
            scaled_error(alone["d_memory"], results["d_memory"][b : b + 1, :length])
            <= RESHAPE_RTOL
        )


@pytest.mark.parametrize("score", SCORES)
def test_attention_softmax_is_stable(score):
    """Scores of ~1e5 neither overflow nor produce NaN; one real position gets
    weight exactly 1."""
    problem = AttentionProblem(score, 2, 3, 4, 3, 3, (1, 4), 0)
    query, memory, lengths, params, d_attentional = problem.make_arrays()
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        results = run_attention(
            problem, 1e3 * query, 1e2 * memory, lengths, params, d_attentional
        )
    for name, value in results.items():
        assert np.all(np.isfinite(value)), name
    np.testing.assert_array_equal(results["weights"][0, :, 0], 1.0)
    np.testing.assert_allclose(results["weights"].sum(axis=2), 1.0, atol=1e-12)


def cast(arrays, dtype):
    """A problem's arrays with every float array (and parameter) cast to ``dtype``."""
    query, memory, lengths, params, d_attentional = arrays
    params = {key: value.astype(dtype) for key, value in params.items()}
    return (
        query.astype(dtype),
        memory.astype(dtype),
        lengths,
        params,
        d_attentional.astype(dtype),
    )


@given(problem=attention_problems())
def test_attention_float32(problem):
    """float32 in, float32 out (every result), close to float64 on the same
    (float32-representable) inputs."""
    arrays32 = cast(problem.make_arrays(), np.float32)
    results32 = run_attention(problem, *arrays32)
    results64 = run_attention(problem, *cast(arrays32, np.float64))
    for name, expected in results64.items():
        assert results32[name].dtype == np.float32, name
        assert scaled_error(results32[name], expected) <= FLOAT32_RTOL, name


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def run_torch(torch, problem, query, memory, lengths, params, d_attentional):
    """OpenNMT-py's ``GlobalAttention`` (general/dot, no coverage) in torch.

    OpenNMT-py's ``linear_in`` weight is our ``weight_a`` transposed:
    ``linear_in(h_t) = h_t @ W_a``, so its score ``linear_in(h_t) · h_s`` is
    ``h_t · W_a h_s``.
    """
    functional = torch.nn.functional
    tensors = {
        "query": torch.tensor(query, requires_grad=True),
        "memory": torch.tensor(memory, requires_grad=True),
        **{
            key: torch.tensor(value, requires_grad=True)
            for key, value in params.items()
        },
    }
    h_t, h_s = tensors["query"], tensors["memory"]
    if problem.score == "general":
        h_t_ = functional.linear(h_t, tensors["attention.weight_a"].T)
    else:
        h_t_ = h_t
    scores = torch.bmm(h_t_, h_s.transpose(1, 2))
    mask = torch.arange(problem.source_len)[None, :] >= torch.tensor(lengths)[:, None]
    scores = scores.masked_fill(mask[:, None, :], float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    context = torch.bmm(weights, h_s)
    attentional = torch.tanh(
        functional.linear(
            torch.cat([context, h_t], dim=-1), tensors["attention.weight_c"]
        )
    )
    (attentional * torch.tensor(d_attentional)).sum().backward()
    return {
        "attentional": attentional.detach().numpy(),
        "weights": weights.detach().numpy(),
        "d_query": h_t.grad.numpy(),
        "d_memory": h_s.grad.numpy(),
        **{f"grad_{key}": tensors[key].grad.numpy() for key in params},
    }


@pytest.mark.torch
@given(problem=attention_problems(max_batch=4, max_len=7, max_size=6))
@example(problem=RAGGED)
@example(problem=RAGGED_GENERAL)
def test_attention_matches_torch(torch, problem):
    arrays = problem.make_arrays()
    expected = run_torch(torch, problem, *arrays)
    results = run_attention(problem, *arrays)
    assert results.keys() == expected.keys()
    for name, value in expected.items():
        assert results[name].shape == value.shape, name
        assert scaled_error(results[name], value) <= TORCH_RTOL, name


def _attention_case(problem, change):
    query, memory, lengths, params, _ = problem.make_arrays()
    kwargs = {
        "query": query,
        "memory": memory,
        "memory_lengths": lengths,
        "params": params,
        "score": problem.score,
    }
    change(kwargs)
    return kwargs


def _set(name, value):
    def change(kwargs):
        kwargs[name] = value(kwargs) if callable(value) else value

    return change


def _set_param(key, value):
    def change(kwargs):
        params = dict(kwargs["params"])
        if value is None:
            del params[key]
        else:
            params[key] = value
        kwargs["params"] = params

    return change


GENERAL = AttentionProblem("general", 2, 3, 4, 3, 5, (2, 4), 0)
DOT = AttentionProblem("dot", 2, 3, 4, 3, 3, (2, 4), 0)

ATTENTION_ERRORS = {
    "unknown-score": (
        GENERAL,
        _set("score", "concat"),
        ValueError,
        r"score must be one of \['general', 'dot'\], got 'concat'",
    ),
    "query-2d": (
        GENERAL,
        _set("query", lambda kw: kw["query"][0]),
        ValueError,
        "query must be 3-dimensional",
    ),
    "memory-2d": (
        GENERAL,
        _set("memory", lambda kw: kw["memory"][0]),
        ValueError,
        "memory must be 3-dimensional",
    ),
    "query-int": (
        GENERAL,
        _set("query", lambda kw: kw["query"].astype(np.int64)),
        TypeError,
        "query must have dtype float32 or float64",
    ),
    "empty-decoder": (
        GENERAL,
        _set("query", lambda kw: kw["query"][:, :0]),
        ValueError,
        "query must have no zero-length axis",
    ),
    "batch": (
        GENERAL,
        _set("memory", lambda kw: kw["memory"][:1]),
        ValueError,
        "same batch size",
    ),
    "dot-sizes": (
        DOT,
        _set("memory", lambda kw: np.zeros((2, 4, 2))),
        ValueError,
        'score="dot" needs memory features equal to query features',
    ),
    "lengths-shape": (
        GENERAL,
        _set("memory_lengths", np.array([2, 4, 1])),
        ValueError,
        r"memory_lengths must have shape \(2,\)",
    ),
    "lengths-zero": (
        GENERAL,
        _set("memory_lengths", np.array([0, 4])),
        ValueError,
        r"memory_lengths must be in \[1, 4\]",
    ),
    "lengths-too-long": (
        GENERAL,
        _set("memory_lengths", np.array([2, 5])),
        ValueError,
        r"memory_lengths must be in \[1, 4\]",
    ),
    "lengths-float": (
        GENERAL,
        _set("memory_lengths", np.array([2.0, 4.0])),
        TypeError,
        "memory_lengths must be integers",
    ),
    "missing-weight-a": (
        GENERAL,
        _set_param("attention.weight_a", None),
        ValueError,
        r"params is missing the keys \['attention.weight_a'\]",
    ),
    "missing-weight-c": (
        DOT,
        _set_param("attention.weight_c", None),
        ValueError,
        r"params is missing the keys \['attention.weight_c'\]",
    ),
    "weight-a-with-dot": (
        DOT,
        _set_param("attention.weight_a", np.zeros((3, 3))),
        ValueError,
        r"params has unexpected keys \['attention.weight_a'\]",
    ),
    "weight-a-shape": (
        GENERAL,
        _set_param("attention.weight_a", np.zeros((5, 3))),
        ValueError,
        r"params\['attention.weight_a'\] has shape \(5, 3\), expected \(3, 5\)",
    ),
    "weight-c-shape": (
        GENERAL,
        _set_param("attention.weight_c", np.zeros((3, 6))),
        ValueError,
        r"params\['attention.weight_c'\] has shape \(3, 6\), expected \(3, 8\)",
    ),
}


@pytest.mark.parametrize(
    ("problem", "change", "error", "match"),
    list(ATTENTION_ERRORS.values()),
    ids=list(ATTENTION_ERRORS),
)
def test_attention_forward_rejects_bad_inputs(problem, change, error, match):
    kwargs = _attention_case(problem, change)
    with pytest.raises(error, match=match):
        attention_forward(
            kwargs.pop("query"),
            kwargs.pop("memory"),
            kwargs.pop("memory_lengths"),
            kwargs.pop("params"),
            **kwargs,
        )


def test_attention_backward_rejects_bad_gradient_shape():
    query, memory, lengths, params, _ = GENERAL.make_arrays()
    _, _, cache = attention_forward(query, memory, lengths, params)
    with pytest.raises(ValueError, match=r"d_attentional has shape \(2, 3, 5\)"):
        attention_backward(cache, np.zeros((2, 3, 5)))
