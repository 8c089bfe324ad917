""":class:`RNNRegressor`: one real vector per sequence (forecasting too)."""

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from .._json import is_int
from ..losses import squared_error
from ._base import _BaseRNN


class RNNRegressor(RegressorMixin, _BaseRNN):
    """Recurrent network regressor: one real vector per sequence.

    The head reads the last layer's final hidden state; the loss is half the
    mean squared error. Parameters and attributes are those of
    :class:`RNNClassifier` without ``class_weight`` and ``classes_``.
    """

    _FITTED_SCALARS = {
        **_BaseRNN._FITTED_SCALARS,
        "_y_ndim": lambda v: v in (1, 2) and is_int(v),
        "_n_targets": lambda v: is_int(v) and v >= 1,
    }

    def _encode_targets(self, y, lengths, first_call, classes=None):
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"y must contain numbers: {exc}") from None
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}.")
        if len(y) != len(lengths):
            raise ValueError(f"X has {len(lengths)} sequences but y has {len(y)}.")
        if y.ndim == 2 and y.shape[1] == 0:
            raise ValueError("y has 0 targets per sequence.")
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity.")
        if first_call:
            attributes = {
                "_y_ndim": y.ndim,
                "_n_targets": 1 if y.ndim == 1 else y.shape[1],
            }
        else:
            attributes = {"_y_ndim": self._y_ndim, "_n_targets": self._n_targets}
        y = y.reshape(len(y), -1)
        if y.shape[1] != attributes["_n_targets"]:
            raise ValueError(
                f"y has {y.shape[1]} targets, the model was fitted with "
                f"{attributes['_n_targets']}."
            )
        return y.astype(np.float64), attributes

    def _n_outputs(self, attributes):
        return attributes["_n_targets"]

    def _head_loss(self, prediction, targets, lengths, weights, class_weights):
        return squared_error(prediction, targets, weights)

    def _validation_score(self, X, lengths, targets, weights):
        return r2_score(
            targets,
            self._predict_raw(X, lengths),
            sample_weight=weights if weights.any() else None,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to sequences ``X`` and targets ``y`` of shape (n,) or (n, k).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``X``.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets, shape (n,) or (n, k) like the ``y`` of ``fit``."""
        check_is_fitted(self)
        X, lengths, output_dtype = self._check_X(X, reset=False)
        prediction = self._predict_raw(X, lengths).astype(output_dtype)
        return prediction.ravel() if self._y_ndim == 1 else prediction
