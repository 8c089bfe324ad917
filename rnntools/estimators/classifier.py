""":class:`RNNClassifier`: one label per sequence."""

import warnings

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import accuracy_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ..losses import log_softmax, softmax_cross_entropy
from ._base import _LabelRNN


class RNNClassifier(ClassifierMixin, _LabelRNN):
    """Recurrent network classifier: one label per sequence.

    The head reads the last layer's final hidden state (both directions when
    bidirectional) and is trained with the cross-entropy loss.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}, default="lstm"
    hidden_size : int, default=64
    num_layers : int, default=1
    bidirectional : bool, default=False
    nonlinearity : {"tanh", "relu"}, default="tanh"
        Activation of the Elman cell; ``"relu"`` needs ``cell="rnn"``.
    dropout : float in [0, 1), default=0.0
        Inverted dropout during ``fit`` only: on the input of every recurrent
        layer above the first (PyTorch's ``nn.LSTM(dropout=...)``) and on the
        features entering the output layer (the last layer's final hidden
        state, both directions when bidirectional; for
        :class:`RNNTagger` its output at every step). Masks are drawn from
        ``random_state``; ``dropout=0`` draws none. Between layers it runs
        each layer separately, which with ``device="cuda"`` takes each
        layer's output through the host.
    solver : {"adam", "sgd"}, default="adam"
    momentum : float, default=0.9
        SGD momentum.
    nesterovs_momentum : bool, default=True
    learning_rate_init : float, default=1e-3
    alpha : float, default=0.0
        L2 penalty on the weights (not the biases), divided by the summed
        sample weight of each minibatch as in ``MLPClassifier``.
    batch_size : int, default=32
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
    tol : float, default=1e-4
    n_iter_no_change : int, default=10
    early_stopping : bool, default=False
        Hold out a stratified ``validation_fraction`` and stop when its
        accuracy stops improving; the best parameters are restored.
    validation_fraction : float, default=0.1
    clip_grad_norm : float or None, default=5.0
        Rescale the gradient of each minibatch to at most this global norm.
    class_weight : dict, "balanced" or None, default=None
        Multiplies the sample weight of each sequence by the weight of its
        class. ``"balanced"`` is not supported by ``partial_fit``.
    random_state : int, RandomState instance or None, default=None
    verbose : bool, default=False
    warm_start : bool, default=False
        Continue from the fitted parameters, optimizer state and random stream.
    device : {"cpu", "cuda"}, default="cpu"
        Where the network runs; ``"cuda"`` needs numba-cuda and an NVIDIA GPU
        (see :func:`rnntools.functional.rnn_forward`). During ``fit`` the
        network's parameters, gradients and optimizer state stay on the GPU
        (the small output layer on the host); ``params_`` is updated when
        ``fit`` ends, so the model pickles, saves and, after
        ``set_params(device="cpu")``, predicts on the CPU.
    dtype : {"float32", "float64"}, default="float32"
        Compute dtype and dtype of ``params_``, whatever the dtype of ``X``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    params_ : dict of str to ndarray
        PyTorch ``state_dict`` names plus ``head.weight`` (n_classes, D*H) and
        ``head.bias``.
    n_features_in_ : int
        Features per timestep (1 for a 2-D ``X``).
    loss_curve_ : list of float
    validation_scores_ : list of float or None
    best_loss_ : float or None
    best_validation_score_ : float or None
    n_iter_ : int
    t_ : int
        Number of training sequences seen.
    """

    def _encode_targets(self, y, lengths, first_call, classes=None):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. "
                "Please change the shape of y to (n_samples,), for example "
                "using ravel().",
                DataConversionWarning,
                stacklevel=5,
            )
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per sequence), got {y.shape}.")
        if len(y) != len(lengths):
            raise ValueError(f"X has {len(lengths)} sequences but y has {len(y)}.")
        check_classification_targets(y)
        encoder = self._label_encoder_for(y, first_call, classes)
        attributes = {"classes_": encoder.classes_, "_label_encoder": encoder}
        return encoder.transform(y), attributes

    @staticmethod
    def _flat_targets(targets):
        return targets

    def _stratify(self, targets):
        return targets

    def _head_loss(self, logits, targets, lengths, weights, class_weights):
        if class_weights is not None:
            weights = weights * class_weights[targets]
        return softmax_cross_entropy(logits, targets, weights)

    def _validation_score(self, X, lengths, targets, weights):
        raw = self._predict_raw(X, lengths)
        return accuracy_score(
            targets,
            raw.argmax(axis=1),
            sample_weight=weights if weights.any() else None,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to sequences ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
        y : array-like of shape (n,)
        sample_weight : array-like of shape (n,), default=None

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``X``; ``classes`` is required on the first call.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays
        y : array-like of shape (n,)
        classes : array-like of shape (n_classes,), default=None
        sample_weight : array-like of shape (n,), default=None

        Returns
        -------
        self
        """
        return self._partial_fit_labels(X, y, classes, sample_weight)

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n, T, F) or (n, T), or list of (T_i, F) arrays

        Returns
        -------
        proba : ndarray of shape (n, n_classes)
        """
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities, shape (n, n_classes)."""
        check_is_fitted(self)
        X, lengths, output_dtype = self._check_X(X, reset=False)
        raw = self._predict_raw(X, lengths).astype(np.float64)
        return log_softmax(raw).astype(output_dtype)

    def predict(self, X):
        """Predicted labels, shape (n,)."""
        check_is_fitted(self)
        X, lengths, _ = self._check_X(X, reset=False)
        return self.classes_[self._predict_raw(X, lengths).argmax(axis=1)]
