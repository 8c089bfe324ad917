"""Turn the estimators' input formats into a padded array and lengths.

Accepted ``X``:

* a 3-D array ``(n, T, F)``: ``n`` sequences of ``T`` steps of ``F`` features;
* a list of ``(T_i, F)`` arrays of different lengths (a ``(T_i,)`` array is a
  univariate sequence);
* a 2-D array ``(n, T)``: ``n`` univariate sequences (``F = 1``).
"""

import numpy as np
from sklearn.utils.validation import check_array

_FLOAT_DTYPES = (np.float64, np.float32)


def _is_sequence_list(X):
    return isinstance(X, (list, tuple))


def check_sequences(X, *, dtype=_FLOAT_DTYPES, n_features=None, estimator=None):
    """Validate ``X`` and return it padded, with its lengths.

    Parameters
    ----------
    X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
        The sequences.
    dtype : dtype or tuple of dtypes, default=(float64, float32)
        As in :func:`sklearn.utils.check_array`: float32 input stays float32.
    n_features : int or None
        When given, the number of features ``F`` every sequence must have.
    estimator : estimator or None
        Named in error messages.

    Returns
    -------
    padded : ndarray of shape (n, T_max, F)
        C-contiguous; zero after each sequence's end.
    lengths : int64 ndarray of shape (n,)
    """
    if _is_sequence_list(X):
        if len(X) == 0:
            raise ValueError("X is empty: expected at least one sequence.")
        sequences = []
        for index, sequence in enumerate(X):
            if isinstance(sequence, (str, bytes)):
                raise TypeError(f"Sequence {index} of X is a string, not numbers.")
            array = np.asarray(sequence) if not hasattr(sequence, "shape") else sequence
            if np.ndim(array) == 1:
                array = np.reshape(array, (-1, 1))
            if np.ndim(array) != 2:
                raise ValueError(
                    f"Sequence {index} of X must be 1-D (T,) or 2-D (T, F), "
                    f"got shape {np.shape(array)}."
                )
            sequences.append(
                _check_one(array, dtype, estimator, f"sequence {index} of X")
            )
        widths = {s.shape[1] for s in sequences}
        if len(widths) > 1:
            raise ValueError(
                "All sequences of X must have the same number of features, got "
                f"{sorted(widths)}."
            )
        result_dtype = np.result_type(*sequences)
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        padded = np.zeros(
            (len(sequences), lengths.max(), sequences[0].shape[1]), dtype=result_dtype
        )
        for row, sequence in enumerate(sequences):
            padded[row, : len(sequence)] = sequence
    else:
        if hasattr(X, "toarray") or hasattr(X, "tocsr"):
            raise TypeError(
                "Sparse input is not supported: pass a dense array or a list "
                "of sequences."
            )
        array = X if hasattr(X, "ndim") else np.asarray(X)
        if array.ndim == 2:
            array = _check_one(array, dtype, estimator, "X")[:, :, None]
        elif array.ndim == 3:
            if array.dtype.kind in "OUS":
                raise TypeError(f"X must contain numbers, got dtype {array.dtype}.")
            flat = _check_one(
                np.reshape(array, (array.shape[0], -1)), dtype, estimator, "X"
            )
            array = flat.reshape(array.shape)
        else:
            raise ValueError(
                "X must be a 3-D array (n_sequences, n_steps, n_features), a 2-D "
                "array (n_sequences, n_steps) of univariate sequences, or a list "
                f"of (n_steps_i, n_features) arrays; got an array of shape "
                f"{array.shape}."
            )
        if array.shape[1] == 0:
            raise ValueError("X has sequences of length 0.")
        padded = np.ascontiguousarray(array)
        lengths = np.full(padded.shape[0], padded.shape[1], dtype=np.int64)
    if n_features is not None and padded.shape[2] != n_features:
        name = type(estimator).__name__ if estimator is not None else "the model"
        raise ValueError(
            f"X has {padded.shape[2]} features per step, but {name} was fitted "
            f"with {n_features} features per step."
        )
    return padded, lengths


def _check_one(array, dtype, estimator, name):
    """One 2-D block through :func:`sklearn.utils.check_array`."""
    if isinstance(array, np.ndarray) and array.dtype.kind in "OUS":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must contain numbers: {exc}") from None
    checked = check_array(
        array,
        dtype=dtype,
        ensure_all_finite=True,
        ensure_min_samples=1,
        ensure_min_features=1,
        estimator=estimator,
        input_name=name,
    )
    if checked.dtype == np.float16:
        checked = checked.astype(np.float32)
    return checked
