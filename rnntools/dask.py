"""Feed 3-D Dask arrays of sequences to dask-ml's ``Incremental``.

``dask_ml.wrappers.Incremental`` (through ``dask_ml._partial.fit``) hands
each block of ``X`` to ``partial_fit`` by its task key, which it builds as
``(name, i, 0)``: right for a 2-D array, one index short for a 3-D one. The
key names no task, so Dask passes the tuple itself, and the estimator
receives ``("array-<hash>", i, 0)`` instead of data (dask/dask-ml#972).
A 1-D array has keys ``(name, i)``, which dask-ml builds correctly, and a
1-D object array of ``(T, F)`` sequences is an input format the estimators
accept; :func:`sequence_blocks` turns the 3-D array into one, block for block,
without copying the data.

This module needs no import of Dask: it only calls the array's own methods.
"""

import numpy as np


def sequence_blocks(X):
    """A 3-D Dask array of sequences as a 1-D Dask array of sequences.

    Parameters
    ----------
    X : dask.array.Array of shape (n, T, F)
        Chunked along the sequences only (one chunk along ``T`` and ``F``).

    Returns
    -------
    sequences : dask.array.Array of shape (n,), dtype object
        Element ``i`` is the ``(T, F)`` array ``X[i]``; the chunks along the
        sequences are those of ``X``. ``Incremental(estimator).fit(sequences,
        y)`` calls ``estimator.partial_fit`` on each block, which an rnntools
        estimator reads exactly as the 3-D block ``(n_i, T, F)`` itself.

    Notes
    -----
    Only fitting needs this. To predict blockwise, map the fitted estimator
    over the 3-D array itself:
    ``X.map_blocks(model.predict, drop_axis=(1, 2), dtype=model.classes_.dtype)``.
    """
    if getattr(X, "ndim", None) != 3 or not hasattr(X, "map_blocks"):
        raise ValueError(
            "sequence_blocks expects a 3-D Dask array (n_sequences, n_steps, "
            f"n_features), got {type(X).__name__} of shape {getattr(X, 'shape', '?')}."
        )
    if X.numblocks[1:] != (1, 1):
        raise ValueError(
            "X must be chunked along the sequences only, got chunks "
            f"{X.chunks[1:]} along the steps and features: "
            "X.rechunk({1: -1, 2: -1}) first."
        )
    return X.map_blocks(
        _as_object_array,
        drop_axis=(1, 2),
        dtype=object,
        meta=np.empty(0, dtype=object),
    )


def _as_object_array(block):
    """``(n, T, F)`` ndarray -> ``(n,)`` object ndarray of ``(T, F)`` views."""
    sequences = np.empty(len(block), dtype=object)
    for index, sequence in enumerate(block):
        sequences[index] = sequence
    return sequences
