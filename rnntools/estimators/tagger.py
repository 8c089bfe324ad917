""":class:`RNNTagger`: one label per timestep."""

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.metrics import accuracy_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._sequences import is_sequence_list
from ..losses import log_softmax, softmax_cross_entropy
from ._base import _LabelRNN


class RNNTagger(ClassifierMixin, _LabelRNN):
    """Recurrent network sequence tagger: one label per timestep.

    The head reads the last layer's output at every step (both directions
    when bidirectional), e.g. for next-character prediction or
    fill-in-the-blank. ``y`` holds, for each sequence, an array of as many
    labels as the sequence has steps. Parameters and attributes are those of
    :class:`RNNClassifier`; ``class_weight`` weighs each timestep by its
    label's class, and ``alpha`` is divided by the summed weight of the steps.
    """

    _per_step = True

    def _step_labels(self, y, lengths):
        """``y`` as a list of 1-D label arrays matching ``lengths``."""
        if isinstance(y, np.ndarray) and y.ndim == 2 and y.dtype != object:
            y = list(y)
        if not hasattr(y, "__len__") or isinstance(y, (str, bytes)):
            raise ValueError("y must be a list of per-step label arrays.")
        if len(y) != len(lengths):
            raise ValueError(f"X has {len(lengths)} sequences but y has {len(y)}.")
        labels = []
        for index, (sequence_labels, length) in enumerate(zip(y, lengths, strict=True)):
            sequence_labels = np.asarray(sequence_labels)
            if sequence_labels.ndim != 1 or len(sequence_labels) != length:
                raise ValueError(
                    f"y[{index}] must hold one label per step of X[{index}] "
                    f"({length} labels), got shape {sequence_labels.shape}."
                )
            labels.append(sequence_labels)
        return labels

    def _encode_targets(self, y, lengths, first_call, classes=None):
        labels = self._step_labels(y, lengths)
        flat = np.concatenate(labels)
        check_classification_targets(flat)
        encoder = self._label_encoder_for(flat, first_call, classes)
        attributes = {"classes_": encoder.classes_, "_label_encoder": encoder}
        return [encoder.transform(s) for s in labels], attributes

    @staticmethod
    def _flat_targets(targets):
        return np.concatenate(targets)

    def _head_loss(self, logits, targets, lengths, weights, class_weights):
        batch, steps, _ = logits.shape
        valid = np.arange(steps) < lengths[:, None]
        label = np.zeros((batch, steps), dtype=np.int64)
        for row, sequence in enumerate(targets):
            label[row, : len(sequence)] = sequence
        step_weight = np.where(valid, weights[:, None], 0.0)
        if class_weights is not None:
            step_weight = step_weight * class_weights[label]
        return softmax_cross_entropy(logits, label, step_weight)

    def _validation_score(self, X, lengths, targets, weights):
        raw = self._predict_raw(X, lengths)
        predicted = self._split_steps(raw, lengths, lambda z: z.argmax(axis=-1))
        return accuracy_score(
            np.concatenate(targets),
            np.concatenate(predicted),
            sample_weight=np.repeat(weights, lengths) if weights.any() else None,
        )

    @staticmethod
    def _split_steps(raw_batches, lengths, transform):
        out = []
        start = 0
        for raw in raw_batches:
            for row in range(raw.shape[0]):
                out.append(transform(raw[row, : lengths[start + row]]))
            start += raw.shape[0]
        return out

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit to sequences ``X`` and per-step labels ``y`` (a list of arrays).

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
        y : list of (T_i,) label arrays, or an array of shape (n, T)
        sample_weight : array-like of shape (n,), default=None
            One weight per sequence, applied to each of its steps.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``X``; ``classes`` is required on the first call.

        Returns
        -------
        self
        """
        return self._partial_fit_labels(X, y, classes, sample_weight)

    def _per_sequence(self, X, transform):
        """``transform(head_output, output_dtype)`` of every sequence's steps."""
        check_is_fitted(self)
        X_checked, lengths, output_dtype = self._check_X(X, reset=False)
        raw = self._predict_raw(X_checked, lengths)
        result = self._split_steps(raw, lengths, lambda z: transform(z, output_dtype))
        if is_sequence_list(X):
            return result
        return np.stack(result)

    @staticmethod
    def _log_proba(raw, output_dtype):
        return log_softmax(raw.astype(np.float64)).astype(output_dtype)

    def predict_proba(self, X):
        """Per-step class probabilities: a list of (T_i, n_classes) arrays for a
        list ``X``, an array (n, T, n_classes) for array input."""
        return self._per_sequence(X, lambda z, dtype: np.exp(self._log_proba(z, dtype)))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        return self._per_sequence(X, self._log_proba)

    def predict(self, X):
        """Per-step labels: a list of (T_i,) arrays for a list ``X``, an array
        (n, T) for array input."""
        return self._per_sequence(X, lambda z, dtype: self.classes_[z.argmax(axis=-1)])

    def score(self, X, y, sample_weight=None):
        """Accuracy over all timesteps of all sequences.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
        y : list of (T_i,) label arrays, or an array of shape (n, T)
        sample_weight : array-like of shape (n,), default=None
            One weight per sequence, applied to each of its steps.

        Returns
        -------
        score : float
        """
        predicted = self.predict(X)
        lengths = np.array([len(p) for p in predicted])
        labels = self._step_labels(y, lengths)
        if sample_weight is not None:
            sample_weight = np.repeat(
                _check_sample_weight(sample_weight, lengths), lengths
            )
        return accuracy_score(
            np.concatenate(labels),
            np.concatenate(list(predicted)),
            sample_weight=sample_weight,
        )
