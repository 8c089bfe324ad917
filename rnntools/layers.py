"""Layers around the recurrent stack: embedding, linear and Luong attention, as
forward and backward pairs.

The functions validate what a Numba kernel could not survive (indices out of
range, mismatched shapes) and trust the caller for the rest; they are the
building blocks of the generating estimators, which call them on arrays they
have already validated.
"""

from typing import NamedTuple

import numpy as np

from ._arrays import column_sums
from ._threads import parallel_matmul
from .kernels import cpu

__all__ = [
    "AttentionCache",
    "attention_backward",
    "attention_forward",
    "embedding_backward",
    "embedding_forward",
    "linear_backward",
    "linear_forward",
]


def _check_ids(ids, num_embeddings):
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, got dtype {ids.dtype}.")
    if ids.size and (ids.min() < 0 or ids.max() >= num_embeddings):
        raise ValueError(
            f"ids must be in [0, {num_embeddings}), got values from {ids.min()} "
            f"to {ids.max()}."
        )
    return np.asarray(ids, dtype=np.int64, order="C")


def embedding_forward(ids, weight):
    """Look up the rows of ``weight``: ``out[...] = weight[ids[...]]``.

    Parameters
    ----------
    ids : int ndarray of shape (...)
        Token ids in ``[0, V)``.
    weight : ndarray of shape (V, E)

    Returns
    -------
    out : ndarray of shape (..., E)
        In the dtype of ``weight``.
    """
    weight = np.ascontiguousarray(weight)
    if weight.ndim != 2:
        raise ValueError(f"weight must have shape (V, E), got {weight.shape}.")
    ids = _check_ids(ids, weight.shape[0])
    out = np.empty((ids.size, weight.shape[1]), dtype=weight.dtype)
    cpu.embedding_gather(ids.ravel(), weight, out)
    return out.reshape((*ids.shape, weight.shape[1]))


def embedding_backward(ids, d_out, num_embeddings):
    """Gradient of :func:`embedding_forward` with respect to ``weight``.

    Parameters
    ----------
    ids : int ndarray of shape (...)
    d_out : ndarray of shape (..., E)
        Upstream gradient (0 where ``ids`` is padding, if padding must not
        learn).
    num_embeddings : int
        ``V``.

    Returns
    -------
    d_weight : ndarray of shape (V, E)
        ``d_weight[v] = sum of d_out[...] where ids[...] == v`` (a scatter-add
        in the order of ``ids``: deterministic).
    """
    ids = _check_ids(ids, num_embeddings)
    d_out = np.ascontiguousarray(d_out)
    if d_out.shape[:-1] != ids.shape:
        raise ValueError(f"d_out has shape {d_out.shape}, expected {ids.shape} + (E,).")
    d_weight = np.zeros((num_embeddings, d_out.shape[-1]), dtype=d_out.dtype)
    cpu.embedding_scatter_add(
        ids.ravel(), d_out.reshape(ids.size, d_out.shape[-1]), d_weight
    )
    return d_weight


def linear_forward(x, weight, bias):
    """``x @ weight.T + bias`` over the last axis (PyTorch's ``nn.Linear``).

    Parameters
    ----------
    x : ndarray of shape (..., F)
    weight : ndarray of shape (K, F)
    bias : ndarray of shape (K,)

    Returns
    -------
    out : ndarray of shape (..., K)
    """
    if x.shape[-1] != weight.shape[1] or bias.shape != weight.shape[:1]:
        raise ValueError(
            f"x {x.shape}, weight {weight.shape} and bias {bias.shape} do not "
            "match: expected (..., F), (K, F) and (K,)."
        )
    # As one 2-D product: ``(B, T, F) @ (F, K)`` would be B small products.
    out = parallel_matmul(x.reshape(-1, x.shape[-1]), weight.T)
    if np.result_type(out, bias) == out.dtype:
        out += bias
    else:
        out = out + bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


def linear_backward(x, weight, d_out):
    """Gradients of :func:`linear_forward`.

    Parameters
    ----------
    x : ndarray of shape (..., F)
    weight : ndarray of shape (K, F)
    d_out : ndarray of shape (..., K)

    Returns
    -------
    d_x : ndarray of shape (..., F)
    d_weight : ndarray of shape (K, F)
    d_bias : ndarray of shape (K,)
    """
    flat_x = x.reshape(-1, x.shape[-1])
    flat_d = d_out.reshape(-1, d_out.shape[-1])
    d_x = parallel_matmul(flat_d, weight).reshape(x.shape)  # 2-D, as forward
    return d_x, parallel_matmul(flat_d.T, flat_x), column_sums(flat_d)


# ------------------------------------------------------------------ attention

ATTENTION_SCORES = ("general", "dot")


class AttentionCache(NamedTuple):
    """What :func:`attention_backward` needs from :func:`attention_forward`.

    Attributes
    ----------
    score : {"general", "dot"}
    query : ndarray of shape (B, T_dec, H)
    memory : ndarray of shape (B, T_src, H_mem)
    scored_query : ndarray of shape (B, T_dec, H_mem)
        ``query @ weight_a`` for "general", ``query`` itself for "dot".
    weights : ndarray of shape (B, T_dec, T_src)
    context : ndarray of shape (B, T_dec, H_mem)
    attentional : ndarray of shape (B, T_dec, H)
    weight_a : ndarray of shape (H, H_mem) or None
        None for "dot".
    weight_c : ndarray of shape (H, H_mem + H)
    """

    score: str
    query: np.ndarray
    memory: np.ndarray
    scored_query: np.ndarray
    weights: np.ndarray
    context: np.ndarray
    attentional: np.ndarray
    weight_a: np.ndarray | None
    weight_c: np.ndarray


def _check_float_array(value, name, ndim):
    value = np.asarray(value)
    if value.dtype.kind != "f" or value.dtype.itemsize not in (4, 8):
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {value.dtype}."
        )
    if value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {value.shape}.")
    if 0 in value.shape:
        raise ValueError(
            f"{name} must have no zero-length axis, got shape {value.shape}."
        )
    return value


def _attention_param_shapes(score, hidden_size, memory_size):
    shapes = {"attention.weight_c": (hidden_size, memory_size + hidden_size)}
    if score == "general":
        shapes["attention.weight_a"] = (hidden_size, memory_size)
    return shapes


def _check_attention_inputs(query, memory, memory_lengths, params, score):
    if not isinstance(score, str) or score not in ATTENTION_SCORES:
        raise ValueError(
            f"score must be one of {list(ATTENTION_SCORES)}, got {score!r}."
        )
    query = _check_float_array(query, "query", 3)
    dtype = query.dtype
    query = np.ascontiguousarray(query)
    memory = np.ascontiguousarray(_check_float_array(memory, "memory", 3), dtype=dtype)
    batch_size, _, hidden_size = query.shape
    _, source_len, memory_size = memory.shape
    if memory.shape[0] != batch_size:
        raise ValueError(
            f"query and memory must have the same batch size, got shapes "
            f"{query.shape} and {memory.shape}."
        )
    if score == "dot" and memory_size != hidden_size:
        raise ValueError(
            f'score="dot" needs memory features equal to query features, got '
            f"query {query.shape} and memory {memory.shape}; use "
            f'score="general" for different sizes.'
        )
    memory_lengths = np.asarray(memory_lengths)
    if memory_lengths.dtype.kind not in "iu":
        raise TypeError(
            f"memory_lengths must be integers, got dtype {memory_lengths.dtype}."
        )
    if memory_lengths.shape != (batch_size,):
        raise ValueError(
            f"memory_lengths must have shape ({batch_size},), got "
            f"{memory_lengths.shape}."
        )
    if memory_lengths.min() < 1 or memory_lengths.max() > source_len:
        raise ValueError(
            f"memory_lengths must be in [1, {source_len}] (T_src), got values from "
            f"{memory_lengths.min()} to {memory_lengths.max()}."
        )
    shapes = _attention_param_shapes(score, hidden_size, memory_size)
    missing = [key for key in shapes if key not in params]
    if missing:
        raise ValueError(f"params is missing the keys {missing} (score={score!r}).")
    unexpected = [key for key in params if key not in shapes]
    if unexpected:
        raise ValueError(f"params has unexpected keys {unexpected} (score={score!r}).")
    weights = {}
    for key, shape in shapes.items():
        value = np.asarray(params[key])
        if value.shape != shape:
            raise ValueError(
                f"params[{key!r}] has shape {value.shape}, expected {shape} for query "
                f"{query.shape} and memory {memory.shape}."
            )
        weights[key] = np.ascontiguousarray(value, dtype=dtype)
    return (
        query,
        memory,
        memory_lengths.astype(np.int64),
        weights.get("attention.weight_a"),
        weights["attention.weight_c"],
    )


def _project(x, matrix):
    """``x @ matrix`` over the last axis of ``x`` as one 2-D GEMM."""
    flat = parallel_matmul(x.reshape(-1, x.shape[-1]), matrix)
    return flat.reshape((*x.shape[:-1], matrix.shape[1]))


def _outer_sum(a, b):
    """``sum over (b, t) of outer(a[b, t], b[b, t])``: ``(F_a, F_b)``."""
    return parallel_matmul(a.reshape(-1, a.shape[-1]).T, b.reshape(-1, b.shape[-1]))


def attention_forward(query, memory, memory_lengths, params, *, score="general"):
    """Luong global attention of decoder outputs over encoder outputs.

    Parameters
    ----------
    query : ndarray of shape (B, T_dec, H)
        Decoder outputs ``h_t``, float32 or float64: the compute dtype
        (``memory`` and ``params`` are cast to it).
    memory : ndarray of shape (B, T_src, H_mem)
        Encoder outputs ``h_s`` (finite, padding included); ``H_mem == H`` for
        ``score="dot"``.
    memory_lengths : int ndarray of shape (B,)
        Source lengths in ``[1, T_src]``; positions ``s >= memory_lengths[b]``
        are padding and get weight exactly 0.
    params : dict of str to ndarray
        ``"attention.weight_a"`` of shape (H, H_mem) for ``score="general"``
        (absent for ``"dot"``) and ``"attention.weight_c"`` of shape
        (H, H_mem + H); no other keys.
    score : {"general", "dot"}, default="general"

    Returns
    -------
    attentional : ndarray of shape (B, T_dec, H)
        ``h~_t``.
    weights : ndarray of shape (B, T_dec, T_src)
        ``a_t(s)``: each row sums to 1 over the real source positions and is
        exactly 0 on padding.
    cache : AttentionCache
        For :func:`attention_backward`.

    Raises
    ------
    TypeError, ValueError
        On a non-float ``query`` or ``memory``, non-integer lengths, an unknown
        ``score``, or shapes, lengths or parameter keys that do not match.

    Notes
    -----
    Luong, Pham and Manning (2015), "Effective Approaches to Attention-based
    Neural Machine Translation", global attention, applied to every decoder
    output at once (no input feeding), as OpenNMT-py's ``GlobalAttention``
    (``linear_out`` without bias for these scores)::

        score(h_t, h_s) = h_t · W_a h_s  (general),  h_t · h_s  (dot)
        a_t(s) = exp(score(h_t, h_s)) / Σ_{s' < L_b} exp(score(h_t, h_s'))
                 for s < L_b (the source length), 0 for s >= L_b
        c_t = Σ_s a_t(s) h_s;   h~_t = tanh(W_c [c_t; h_t])

    The softmax subtracts the row's largest real score; padded scores are set
    to ``-inf`` first, so their ``exp`` is exactly 0 and never NaN.
    """
    query, memory, memory_lengths, weight_a, weight_c = _check_attention_inputs(
        query, memory, memory_lengths, params, score
    )
    memory_size = memory.shape[2]
    scored_query = query if weight_a is None else _project(query, weight_a)
    scores = scored_query @ memory.transpose(0, 2, 1)
    padding = np.arange(memory.shape[1]) >= memory_lengths[:, None]
    np.copyto(scores, -np.inf, where=padding[:, None, :])
    scores -= scores.max(axis=2, keepdims=True)
    weights = np.exp(scores, out=scores)
    weights /= weights.sum(axis=2, keepdims=True)
    context = weights @ memory
    attentional = _project(context, weight_c[:, :memory_size].T)
    attentional += _project(query, weight_c[:, memory_size:].T)
    np.tanh(attentional, out=attentional)
    cache = AttentionCache(
        score,
        query,
        memory,
        scored_query,
        weights,
        context,
        attentional,
        weight_a,
        weight_c,
    )
    return attentional, weights, cache


def attention_backward(cache, d_attentional):
    """Gradients of :func:`attention_forward`.

    Parameters
    ----------
    cache : AttentionCache
        From :func:`attention_forward`.
    d_attentional : ndarray of shape (B, T_dec, H)
        Upstream gradient of ``attentional`` (0 at padded decoder steps, if
        they must not count).

    Returns
    -------
    d_query : ndarray of shape (B, T_dec, H)
    d_memory : ndarray of shape (B, T_src, H_mem)
        Exactly 0 at padded source positions.
    grads : dict of str to ndarray
        The gradient of every key of ``params``, same shapes.

    Notes
    -----
    With ``g = d_attentional * (1 - h~^2)``: ``dW_c = sum g [c; h]^T``,
    ``dc = W_c[:, :H_mem]^T g``; ``da = dc . h_s`` and through the softmax
    ``dscore = a * (da - sum_s a da)`` (0 where ``a`` is 0); ``dh_s``
    collects ``a dc`` and ``dscore (W_a^T h_t)``, ``dh_t`` collects
    ``W_c[:, H_mem:]^T g`` and ``W_a h_s dscore``.
    """
    attentional = cache.attentional
    d_attentional = np.asarray(d_attentional)
    if d_attentional.shape != attentional.shape:
        raise ValueError(
            f"d_attentional has shape {d_attentional.shape}, expected "
            f"{attentional.shape}."
        )
    d_pre = d_attentional.astype(attentional.dtype) * (1 - attentional * attentional)
    memory_size = cache.memory.shape[2]
    weight_c = cache.weight_c
    d_weight_c = np.concatenate(
        [_outer_sum(d_pre, cache.context), _outer_sum(d_pre, cache.query)], axis=1
    )
    d_context = _project(d_pre, weight_c[:, :memory_size])
    d_query = _project(d_pre, weight_c[:, memory_size:])
    weights = cache.weights
    d_weights = d_context @ cache.memory.transpose(0, 2, 1)
    d_memory = weights.transpose(0, 2, 1) @ d_context
    d_weights -= (weights * d_weights).sum(axis=2, keepdims=True)
    d_scores = np.multiply(weights, d_weights, out=d_weights)
    d_scored_query = d_scores @ cache.memory
    d_memory += d_scores.transpose(0, 2, 1) @ cache.scored_query
    if cache.weight_a is None:
        d_query += d_scored_query
        return d_query, d_memory, {"attention.weight_c": d_weight_c}
    d_query += _project(d_scored_query, cache.weight_a.T)
    grads = {
        "attention.weight_a": _outer_sum(cache.query, d_scored_query),
        "attention.weight_c": d_weight_c,
    }
    return d_query, d_memory, grads
