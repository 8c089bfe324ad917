"""Turn the estimators' input formats into a padded array and lengths.

Accepted ``X``:

* a 3-D array ``(n, T, F)``: ``n`` sequences of ``T`` steps of ``F`` features;
* a list (or 1-D object array) of ``(T_i, F)`` arrays of different lengths (a
  ``(T_i,)`` array is a univariate sequence);
* a 2-D array ``(n, T)``: ``n`` univariate sequences (``F = 1``).
"""

import numpy as np
from sklearn.utils.validation import check_array

_FLOAT_DTYPES = (np.float64, np.float32)


def is_sequence_list(X):
    """Whether ``X`` is a collection of separate sequences (a list, a tuple or a
    1-D object array), as opposed to one array holding all of them."""
    return isinstance(X, (list, tuple)) or (
        isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype == object
    )


def check_sequences(
    X, *, dtype=_FLOAT_DTYPES, n_features=None, n_steps=None, estimator=None
):
    """Validate ``X`` and return it padded, with its lengths.

    Parameters
    ----------
    X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
        The sequences.
    dtype : dtype or tuple of dtypes, default=(float64, float32)
        As in :func:`sklearn.utils.check_array`: float32 input stays float32.
    n_features : int or None
        When given, the number of features ``F`` every sequence must have.
    n_steps : int or None
        When given, the number of columns a 2-D ``X`` must have: the length of
        the training sequences. A 2-D table of another width is far more often
        transposed or wrong than a set of longer sequences, so it is refused;
        3-D arrays and lists may have any length.
    estimator : estimator or None
        Named in error messages.

    Returns
    -------
    padded : ndarray of shape (n, T_max, F)
        C-contiguous; zero after each sequence's end.
    lengths : int64 ndarray of shape (n,)
    """
    name = type(estimator).__name__ if estimator is not None else "the model"
    if _is_dask_key(X):
        raise ValueError(
            f"X is {X!r}, the key of a Dask task, not data. dask-ml's "
            "Incremental (dask_ml._partial.fit) addresses the blocks of an "
            "array of more than 2 dimensions with a key one index short "
            "(dask/dask-ml#972). Pass rnntools.dask.sequence_blocks(X) to "
            "Incremental instead of the 3-D array."
        )
    if is_sequence_list(X):
        padded, lengths = _pad_sequence_list(X, dtype, estimator)
    elif (checked := _float_3d_array(X, dtype)) is not None:
        padded, lengths = checked
    else:
        padded, lengths, is_2d = _check_array_input(X, dtype, estimator)
        if n_steps is not None and is_2d and padded.shape[1] != n_steps:
            raise ValueError(
                f"X has {padded.shape[1]} columns, but {name} was fitted on "
                f"sequences of {n_steps} steps. A 2-D X is read as a table of "
                "univariate sequences of that length, and a table of another "
                "width is more likely transposed or wrong than longer sequences. "
                "To predict on sequences of another length, pass a 3-D array "
                "X[:, :, None] or a list of sequences."
            )
    if n_features is not None and padded.shape[2] != n_features:
        raise ValueError(
            f"X has {padded.shape[2]} features per step, but {name} was fitted "
            f"with {n_features} features per step."
        )
    return padded, lengths


def _is_dask_key(X):
    """Whether ``X`` looks like a Dask block key ``("name", i, j, ...)``."""
    return (
        isinstance(X, tuple)
        and len(X) >= 2
        and isinstance(X[0], str)
        and all(isinstance(index, int) for index in X[1:])
    )


def _pad_sequence_list(X, dtype, estimator):
    if len(X) == 0:
        raise ValueError("X is empty: expected at least one sequence.")
    if dtype == _FLOAT_DTYPES:
        stacked = _pad_float_arrays(X)
        if stacked is not None:
            return stacked
    sequences = []
    for index, sequence in enumerate(X):
        if isinstance(sequence, (str, bytes)):
            raise ValueError(f"Sequence {index} of X is a string, not numbers.")
        array = sequence if hasattr(sequence, "shape") else np.asarray(sequence)
        if np.ndim(array) == 1:
            array = np.reshape(array, (-1, 1))
        if np.ndim(array) != 2:
            raise ValueError(
                f"Sequence {index} of X must be 1-D (T,) or 2-D (T, F), "
                f"got shape {np.shape(array)}."
            )
        if array.shape[0] == 0:
            raise ValueError(f"Sequence {index} of X is empty (0 steps).")
        sequences.append(_check_one(array, dtype, estimator, f"sequence {index} of X"))
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
    return padded, lengths


def _pad_float_arrays(X):
    """Fast path of :func:`_pad_sequence_list`: one finiteness check in all.

    Taken when every sequence is a non-empty 1-D or 2-D ndarray of one float
    dtype and one width, which :func:`sklearn.utils.check_array` would return
    unchanged; it costs ~50 us per sequence, most of an estimator's epoch on
    short sequences. Returns None otherwise, or when a value is not finite:
    the general path then converts, or names the offending sequence.
    """
    first = X[0]
    # Exactly ndarray: subclasses (np.matrix, masked arrays) take the general
    # path, which converts or refuses them as check_array does.
    if type(first) is not np.ndarray or first.dtype not in _FLOAT_DTYPES:
        return None
    dtype = first.dtype
    width = first.shape[1] if first.ndim == 2 else 1
    lengths = np.empty(len(X), dtype=np.int64)
    for index, sequence in enumerate(X):
        if (
            type(sequence) is not np.ndarray
            or sequence.dtype != dtype
            or sequence.ndim not in (1, 2)
            or (sequence.shape[1] if sequence.ndim == 2 else 1) != width
            or sequence.shape[0] == 0
        ):
            return None
        lengths[index] = sequence.shape[0]
    if width == 0:
        return None
    padded = np.zeros((len(X), lengths.max(), width), dtype=dtype)
    for row, sequence in enumerate(X):
        padded[row, : lengths[row]] = sequence.reshape(lengths[row], width)
    if not np.isfinite(padded).all():
        return None
    return padded, lengths


def _float_3d_array(X, dtype):
    """Fast path of :func:`_check_array_input` for a C-contiguous 3-D ndarray
    of a float dtype, non-empty and finite, which
    :func:`sklearn.utils.check_array` would return unchanged: one finiteness
    check, where check_array cost 25 us on 32 x 50 x 32 (a twentieth of a
    predict). Returns None otherwise: the general path converts, or raises
    the errors of :func:`sklearn.utils.check_array`.
    """
    if not (
        type(X) is np.ndarray  # exactly: subclasses take the general path
        and X.ndim == 3
        and dtype == _FLOAT_DTYPES
        and X.dtype in _FLOAT_DTYPES
        and X.flags.c_contiguous
        and X.size > 0
        and np.isfinite(X).all()
    ):
        return None
    return X, np.full(X.shape[0], X.shape[1], dtype=np.int64)


def _check_array_input(X, dtype, estimator):
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(
            "Sparse input is not supported: pass a dense array or a list of sequences."
        )
    array = X if isinstance(X, np.ndarray) else np.asarray(X)
    is_2d = array.ndim == 2
    if is_2d:
        array = _check_one(array, dtype, estimator, "X")[:, :, None]
    elif array.ndim == 3:
        if array.shape[1] == 0:
            raise ValueError(f"X has sequences of length 0 (shape {array.shape}).")
        n, steps, n_features = array.shape
        flat = _check_one(
            np.reshape(array, (n, steps * n_features)), dtype, estimator, "X"
        )
        array = flat.reshape(array.shape)
    elif array.ndim < 2:
        raise ValueError(
            f"Expected a 2-D or 3-D array of sequences, got a {array.ndim}-D array "
            f"of shape {array.shape} instead. Reshape your data: X.reshape(1, -1) "
            "for one univariate sequence, or X.reshape(1, -1, n_features) for one "
            "sequence of n_features features per step."
        )
    else:
        raise ValueError(
            "X must be a 3-D array (n_sequences, n_steps, n_features), a 2-D "
            "array (n_sequences, n_steps) of univariate sequences, or a list "
            f"of (n_steps_i, n_features) arrays; got an array of shape "
            f"{array.shape}."
        )
    padded = np.ascontiguousarray(array)
    lengths = np.full(padded.shape[0], padded.shape[1], dtype=np.int64)
    return padded, lengths, is_2d


def _check_one(array, dtype, estimator, name):
    """One 2-D block through :func:`sklearn.utils.check_array`."""
    if isinstance(array, np.ndarray) and array.dtype.kind in "OUS":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name} must contain numbers: {exc}") from None
    return check_array(
        array,
        dtype=dtype,
        ensure_all_finite=True,
        ensure_min_samples=1,
        ensure_min_features=1,
        estimator=estimator,
        input_name=name,
    )
