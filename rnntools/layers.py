"""Layers around the recurrent stack: embedding and linear, as forward and
backward pairs.

The functions validate what a Numba kernel could not survive (indices out of
range, mismatched shapes) and trust the caller for the rest; they are the
building blocks of the generating estimators, which call them on arrays they
have already validated.
"""

import numpy as np

from .kernels import cpu

__all__ = [
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
    return np.ascontiguousarray(ids, dtype=np.int64)


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
    return x @ weight.T + bias


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
    return d_out @ weight, flat_d.T @ flat_x, flat_d.sum(axis=0)
