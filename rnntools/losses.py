"""Losses of the output layers: value and gradient together.

Every function returns ``(loss, gradient, total_weight)``: the loss is the
weighted mean over the weighted items (sequences, or timesteps of sequences),
so an integer weight is the same as repeating the item, and padding is an
item of weight 0 that contributes nothing, not even NaN. The gradient is in
the dtype of the prediction (the compute dtype), computed with no temporaries
wider than it; only the scalar loss is summed in float64.
"""

import numpy as np

__all__ = ["log_softmax", "softmax_cross_entropy", "squared_error"]


def log_softmax(logits, axis=-1):
    """``log(softmax(logits))`` along ``axis``, without overflow.

    Parameters
    ----------
    logits : ndarray of shape (..., C)
        Float array; the result has its dtype.
    axis : int, default=-1

    Returns
    -------
    log_proba : ndarray of shape (..., C)

    Notes
    -----
    ``z - max(z) - log(sum(exp(z - max(z))))``: every ``exp`` argument is at
    most 0, so nothing overflows, and the largest term of the sum is 1.
    """
    shifted = logits - logits.max(axis=axis, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


def _check_weights(weights, shape):
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != shape:
        raise ValueError(f"weights must have shape {shape}, got {weights.shape}.")
    return weights


def softmax_cross_entropy(logits, targets, weights):
    """Weighted softmax cross-entropy and its gradient with respect to logits.

    Parameters
    ----------
    logits : ndarray of shape (..., C)
        Scores of ``C`` classes for every item (``(N, C)`` for sequences,
        ``(B, T, C)`` for timesteps).
    targets : int ndarray of shape (...)
        Class index of every item, in ``[0, C)`` (any value where the weight
        is 0, e.g. padding, as long as it is in range).
    weights : ndarray of shape (...)
        Weight of every item, ``>= 0``: sample weight times class weight, 0 at
        padding.

    Returns
    -------
    loss : float
        ``sum(w * -log softmax(logits)[target]) / sum(w)``; 0.0 when every
        weight is 0.
    d_logits : ndarray of shape (..., C) or None
        Gradient of ``loss``, in the dtype of ``logits``; None when every
        weight is 0.
    total_weight : float
        ``sum(w)``.
    """
    weights = _check_weights(weights, logits.shape[:-1])
    total_weight = float(weights.sum())
    if total_weight == 0:
        return 0.0, None, 0.0
    classes = logits.shape[-1]
    flat = logits.reshape(-1, classes)
    rows = np.arange(len(flat))
    targets = np.asarray(targets).reshape(-1)
    # softmax(z) = exp(z - max z) / sum: one exp per logit, for the loss and
    # the gradient both; log-probabilities only of the targets. The row
    # reductions run down the columns of the transpose and as a
    # matrix-vector product: numpy's reductions along short rows are 3-6x
    # slower.
    shifted = flat - np.ascontiguousarray(flat.T).max(axis=0)[:, None]
    picked = shifted[rows, targets].astype(np.float64)
    proba = np.exp(shifted, out=shifted)
    sums = (proba @ np.ones(classes, dtype=proba.dtype)).astype(np.float64)
    scale = weights.reshape(-1) / total_weight
    loss = -float(np.dot(scale, picked - np.log(sums)))
    d_logits = proba
    d_logits *= (scale / sums).astype(logits.dtype)[:, None]
    d_logits[rows, targets] -= scale.astype(logits.dtype)
    return loss, d_logits.reshape(logits.shape), total_weight


def squared_error(prediction, targets, weights):
    """Half the weighted mean squared error and its gradient.

    Parameters
    ----------
    prediction : ndarray of shape (N, K)
    targets : ndarray of shape (N, K)
    weights : ndarray of shape (N,)
        Sample weights, ``>= 0``.

    Returns
    -------
    loss : float
        ``0.5 * sum_i w_i * mean_k (prediction - targets)^2 / sum(w)``; 0.0
        when every weight is 0.
    d_prediction : ndarray of shape (N, K) or None
        In the dtype of ``prediction``; None when every weight is 0.
    total_weight : float
    """
    weights = _check_weights(weights, prediction.shape[:1])
    total_weight = float(weights.sum())
    if total_weight == 0:
        return 0.0, None, 0.0
    error = prediction - targets.astype(prediction.dtype, copy=False)
    scale = weights / total_weight
    loss = 0.5 * float(np.dot(scale, (error * error).mean(axis=1, dtype=np.float64)))
    error *= (scale / error.shape[1]).astype(prediction.dtype)[:, None]
    return loss, error, total_weight
