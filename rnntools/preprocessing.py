"""Preprocessing for sequences: :class:`SequenceScaler`.

scikit-learn's :class:`~sklearn.preprocessing.StandardScaler` reads a 2-D
table of samples; sequences of different lengths are no such table. The
scaler here takes exactly the inputs of the estimators (a 3-D array
``(n, T, F)``, a list of ``(T_i, F)`` arrays, a 2-D array ``(n, T)`` of
univariate sequences) and standardises each of the ``F`` features over every
time step of every sequence, so it goes first in a :class:`~sklearn.pipeline.Pipeline`.
"""

import numpy as np
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils.validation import check_is_fitted

from ._sequences import check_sequences, is_sequence_list


class SequenceScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardise each feature over all time steps of all sequences.

    ``z = (x - mean) / std``, with the mean and standard deviation of each
    feature taken over every time step of every training sequence (never
    over padding), so that a long sequence counts in proportion to its
    length. The scaler is the sequence counterpart of
    :class:`sklearn.preprocessing.StandardScaler`, and follows it wherever it
    can: the same parameters, fitted attributes and treatment of constant
    features.

    Parameters
    ----------
    with_mean : bool, default=True
        Subtract the mean.
    with_std : bool, default=True
        Divide by the standard deviation.

    Attributes
    ----------
    mean_ : ndarray of shape (F,) or None
        The mean of each feature, in float64. None when ``with_mean`` and
        ``with_std`` are both False.
    var_ : ndarray of shape (F,) or None
        The variance of each feature (divided by the number of steps), in
        float64. None when ``with_std=False``.
    scale_ : ndarray of shape (F,) or None
        The standard deviation of each feature, or 1 where the feature is
        constant (it is then only centred, never divided by ~0). None when
        ``with_std=False``.
    n_samples_seen_ : int
        The number of time steps seen, over all sequences and, with
        :meth:`partial_fit`, over all calls.
    n_features_in_ : int
        The number of features per step, ``F`` (1 for a 2-D ``X``).
    feature_names_in_ : ndarray of shape (F,) of str
        Defined only when ``X`` was a list of pandas DataFrames (one per
        sequence, one column per feature) sharing string column names; a 2-D
        DataFrame is a table of univariate sequences whose columns are time
        steps, not features, so it defines no names.

    See Also
    --------
    sklearn.preprocessing.StandardScaler : The same for a 2-D table.

    Notes
    -----
    Statistics are accumulated in float64 whatever the input dtype. Each call
    of :meth:`partial_fit` computes the mean and the sum of squared deviations
    ``M2`` of its own steps in two passes, then merges them with those seen
    before by the parallel update of Chan, Golub and LeVeque (1979): with
    ``n = n_a + n_b`` and ``d = mean_b - mean_a``,

    ``mean = mean_a + d * n_b / n``,
    ``M2 = M2_a + M2_b + d**2 * n_a * n_b / n``,  ``var = M2 / n``,

    so fitting in chunks gives the one-shot statistics up to rounding.

    A feature is constant when its variance is within the rounding error of
    its computation, ``var <= n * eps * var + (n * mean * eps)**2`` (the
    bound :class:`~sklearn.preprocessing.StandardScaler` uses); its scale is
    then 1.

    Examples
    --------
    >>> import numpy as np
    >>> from rnntools.preprocessing import SequenceScaler
    >>> X = [np.array([[1.0, 100.0], [3.0, 300.0]]), np.array([[5.0, 500.0]])]
    >>> scaler = SequenceScaler().fit(X)
    >>> scaler.mean_, scaler.n_samples_seen_
    (array([  3., 300.]), 3)
    >>> [x.shape for x in scaler.transform(X)]
    [(2, 2), (1, 2)]
    """

    _parameter_constraints: dict = {
        "with_mean": ["boolean"],
        "with_std": ["boolean"],
    }

    def __init__(self, *, with_mean=True, with_std=True):
        self.with_mean = with_mean
        self.with_std = with_std

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute the mean and standard deviation of each feature.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
            The sequences.
        y : None
            Ignored.

        Returns
        -------
        self : SequenceScaler
        """
        self._reset()
        return self._partial_fit(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Update the statistics with more sequences (streaming).

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
            The sequences; after the first call, with ``n_features_in_``
            features per step.
        y : None
            Ignored.

        Returns
        -------
        self : SequenceScaler
        """
        return self._partial_fit(X)

    def transform(self, X):
        """Standardise ``X``.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
            The sequences, with ``n_features_in_`` features per step.

        Returns
        -------
        X_scaled : ndarray of shape (n, T, F) or (n, T), or list of arrays
            The same kind as ``X``: an array of the same shape, or a list
            (an object array for an object array) of arrays of the same
            shapes as the sequences of ``X``. float32 input gives float32.
        """
        padded, lengths = self._check_transform_input(X)
        if self.with_mean:
            padded = padded - self.mean_.astype(padded.dtype)
        if self.with_std:
            padded = padded / self.scale_.astype(padded.dtype)
        return _like(X, padded, lengths)

    def inverse_transform(self, X):
        """Undo :meth:`transform`: ``x = z * scale_ + mean_``.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
            Standardised sequences.

        Returns
        -------
        X_original : ndarray of shape (n, T, F) or (n, T), or list of arrays
            The same kind as ``X``, as for :meth:`transform`.
        """
        padded, lengths = self._check_transform_input(X)
        if self.with_std:
            padded = padded * self.scale_.astype(padded.dtype)
        if self.with_mean:
            padded = padded + self.mean_.astype(padded.dtype)
        return _like(X, padded, lengths)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ---------------------------------------------------------------- helpers
    def _reset(self):
        """Forget the statistics of a previous fit."""
        for name in (
            "n_samples_seen_",
            "n_features_in_",
            "feature_names_in_",
            "mean_",
            "var_",
            "scale_",
            "_train_steps",
            "_mean",
            "_m2",
        ):
            if hasattr(self, name):
                delattr(self, name)

    def _partial_fit(self, X):
        first_call = not hasattr(self, "n_samples_seen_")
        names = _sequence_feature_names(X)
        if not first_call:
            self._check_feature_names(names)
        padded, lengths = check_sequences(
            X,
            n_features=None if first_call else self.n_features_in_,
            n_steps=None if first_call else self._train_steps,
            estimator=self,
        )
        steps = _steps(padded, lengths).astype(np.float64, copy=False)
        n_new = steps.shape[0]
        mean_new = steps.mean(axis=0)
        m2_new = np.square(steps - mean_new).sum(axis=0)

        if first_call:
            self.n_features_in_ = padded.shape[2]
            self._train_steps = (
                int(lengths[0]) if np.all(lengths == lengths[0]) else None
            )
            if names is not None:
                self.feature_names_in_ = names
            n_seen, mean, m2 = n_new, mean_new, m2_new
        else:
            n_old = self.n_samples_seen_
            n_seen = n_old + n_new
            delta = mean_new - self._mean
            mean = self._mean + delta * (n_new / n_seen)
            m2 = self._m2 + m2_new + np.square(delta) * (n_old * n_new / n_seen)
        self.n_samples_seen_ = n_seen
        self._mean, self._m2 = mean, m2

        var = m2 / n_seen
        self.mean_ = mean.copy() if self.with_mean or self.with_std else None
        self.var_ = var if self.with_std else None
        self.scale_ = _scale(var, mean, n_seen) if self.with_std else None
        return self

    def _check_transform_input(self, X):
        check_is_fitted(self)
        self._check_feature_names(_sequence_feature_names(X))
        return check_sequences(
            X,
            n_features=self.n_features_in_,
            n_steps=self._train_steps,
            estimator=self,
        )

    def _check_feature_names(self, names):
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is not None and names is not None and list(names) != list(fitted):
            raise ValueError(
                f"The feature names of X, {list(names)}, differ from those "
                f"{type(self).__name__} was fitted with, {list(fitted)}."
            )


def _steps(padded, lengths):
    """Every time step of every sequence, padding excluded: ``(sum T_i, F)``."""
    n_features = padded.shape[2]
    if np.all(lengths == padded.shape[1]):
        return padded.reshape(-1, n_features)
    return padded[np.arange(padded.shape[1]) < lengths[:, None]]


def _scale(var, mean, n_samples):
    """Standard deviations, with 1 for features whose variance is rounding
    error (as in :class:`sklearn.preprocessing.StandardScaler`)."""
    eps = np.finfo(np.float64).eps
    bound = n_samples * eps * var + np.square(n_samples * mean * eps)
    return np.where(var <= bound, 1.0, np.sqrt(var))


def _sequence_feature_names(X):
    """The column names shared by a list of DataFrames (one per sequence), or
    None when ``X`` is not such a list or its column names are not strings."""
    if not is_sequence_list(X) or len(X) == 0:
        return None
    columns = [getattr(sequence, "columns", None) for sequence in X]
    if any(c is None for c in columns):
        return None
    names = np.asarray(columns[0], dtype=object)
    if names.ndim != 1 or not all(isinstance(name, str) for name in names):
        return None
    for index, other in enumerate(columns[1:], start=1):
        if list(other) != list(names):
            raise ValueError(
                f"Sequence {index} of X has columns {list(other)}, but sequence "
                f"0 has {list(names)}: every sequence needs the same features in "
                "the same order."
            )
    return names


def _like(X, padded, lengths):
    """``padded`` given back in the form of ``X``: the same kind of container,
    each sequence with its own length and number of dimensions."""
    if is_sequence_list(X):
        sequences = [
            padded[row, :length] if _ndim(sequence) == 2 else padded[row, :length, 0]
            for row, (sequence, length) in enumerate(zip(X, lengths, strict=True))
        ]
        if isinstance(X, np.ndarray):
            container = np.empty(len(sequences), dtype=object)
            for row, sequence in enumerate(sequences):
                container[row] = sequence
            return container
        return sequences
    if _ndim(X) == 2:
        return padded[:, :, 0]
    return padded


def _ndim(array_like):
    """The number of dimensions, also of array-likes that NumPy functions
    refuse (objects with only ``__array__``)."""
    ndim = getattr(array_like, "ndim", None)
    return ndim if ndim is not None else np.asarray(array_like).ndim
