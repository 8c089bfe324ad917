"""scikit-learn estimators: :class:`RNNClassifier`, :class:`RNNRegressor`,
:class:`RNNTagger`.

Each is a recurrent network (:mod:`rnntools.functional`) with a linear output
head, trained by minibatch Adam or SGD with an epoch loop in Python, so that
progress reporting and stopping stay in Python. Where the design says nothing,
they do what :class:`sklearn.neural_network.MLPClassifier` does.
"""

import itertools
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ._sequences import check_sequences
from .cells import GATES, expected_shapes, init_params
from .functional import rnn_backward, rnn_forward
from .optim import AdamOptimizer, SGDOptimizer

_HEAD_WEIGHT = "head.weight"
_HEAD_BIAS = "head.bias"
# Sequences predicted per call of the kernels.
_PREDICT_BATCH = 1024


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class _BaseRNN(BaseEstimator):
    """Shared parameters, training loop and prediction of the RNN estimators."""

    _parameter_constraints: dict = {
        "cell": [StrOptions(set(GATES))],
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "bidirectional": ["boolean"],
        "solver": [StrOptions({"adam", "sgd"})],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "clip_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "device": [StrOptions({"cpu", "cuda"})],
        "dtype": [StrOptions({"float32", "float64"})],
    }

    def __init__(
        self,
        cell="lstm",
        hidden_size=64,
        num_layers=1,
        bidirectional=False,
        *,
        solver="adam",
        momentum=0.9,
        nesterovs_momentum=True,
        learning_rate_init=1e-3,
        alpha=0.0,
        batch_size=32,
        max_iter=200,
        shuffle=True,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        clip_grad_norm=5.0,
        random_state=None,
        verbose=False,
        warm_start=False,
        device="cpu",
        dtype="float32",
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.solver = solver
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.clip_grad_norm = clip_grad_norm
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------ subclasses
    # _encode_targets(y, first) -> (targets, n_outputs); _head_loss(features,
    # targets, lengths, weights) -> (loss, d_features); _decision(features,
    # lengths) -> raw head output; _validation_score(X, lengths, targets).

    _per_step = False  # the head reads every step (tagger), not the last state

    # ----------------------------------------------------------------- data
    def _check_X(self, X, reset):
        padded, lengths = check_sequences(
            X,
            dtype=(np.float64, np.float32),
            n_features=None if reset else self.n_features_in_,
            estimator=self,
        )
        if reset:
            self.n_features_in_ = padded.shape[2]
        return padded.astype(self._compute_dtype(), copy=False), lengths

    def _compute_dtype(self):
        return np.dtype(self.dtype)

    # ----------------------------------------------------------------- model
    def _rnn_params(self, params=None):
        params = self.params_ if params is None else params
        return {k: v for k, v in params.items() if not k.startswith("head.")}

    def _init_params(self, n_features, n_outputs, rng):
        dtype = self._compute_dtype()
        params = init_params(
            self.cell,
            n_features,
            self.hidden_size,
            self.num_layers,
            self.bidirectional,
            random_state=rng,
            dtype=dtype,
        )
        fan_in = self.hidden_size * (2 if self.bidirectional else 1)
        bound = 1.0 / np.sqrt(fan_in)
        params[_HEAD_WEIGHT] = rng.uniform(-bound, bound, (n_outputs, fan_in)).astype(
            dtype
        )
        params[_HEAD_BIAS] = np.zeros(n_outputs, dtype=dtype)
        return params

    def _features(self, X, lengths, params):
        """Run the network; return the head's input and the forward cache."""
        output, final_state, cache = rnn_forward(
            X,
            self._rnn_params(params),
            self.cell,
            bidirectional=self.bidirectional,
            lengths=lengths,
            device=self.device,
        )
        if self._per_step:
            return output, cache
        h_n = final_state[0] if self.cell == "lstm" else final_state
        num_dirs = 2 if self.bidirectional else 1
        last = h_n[(self.num_layers - 1) * num_dirs :]  # (D, B, H)
        return np.concatenate(list(last), axis=1), cache

    def _backward_features(self, cache, d_features):
        """Gradients of the RNN parameters from the gradient of the features."""
        if self._per_step:
            grads, _, _ = rnn_backward(cache, d_features)
            return grads
        num_dirs = 2 if self.bidirectional else 1
        hidden = self.hidden_size
        d_h = np.zeros(
            (self.num_layers * num_dirs, d_features.shape[0], hidden),
            dtype=d_features.dtype,
        )
        for direction in range(num_dirs):
            d_h[(self.num_layers - 1) * num_dirs + direction] = d_features[
                :, direction * hidden : (direction + 1) * hidden
            ]
        d_final = (d_h, np.zeros_like(d_h)) if self.cell == "lstm" else d_h
        d_output = np.zeros(
            (cache.batch, cache.steps, num_dirs * hidden), dtype=d_features.dtype
        )
        grads, _, _ = rnn_backward(cache, d_output, d_final)
        return grads

    def _head(self, features, params):
        return features @ params[_HEAD_WEIGHT].T + params[_HEAD_BIAS]

    def _loss_and_grads(self, X, lengths, targets, weights, params):
        features, cache = self._features(X, lengths, params)
        logits = self._head(features, params)
        loss, d_logits = self._head_loss(logits, targets, lengths, weights)
        flat_features = features.reshape(-1, features.shape[-1])
        flat_d_logits = d_logits.reshape(-1, d_logits.shape[-1])
        grads = self._backward_features(
            cache, (d_logits @ params[_HEAD_WEIGHT]).astype(features.dtype)
        )
        grads[_HEAD_WEIGHT] = flat_d_logits.T @ flat_features
        grads[_HEAD_BIAS] = flat_d_logits.sum(axis=0)
        if self.alpha > 0:
            n = X.shape[0]
            for key, value in params.items():
                if "weight" in key:
                    loss += 0.5 * self.alpha * float(np.sum(value * value)) / n
                    grads[key] = grads[key] + (self.alpha / n) * value
        return loss, grads

    def _predict_raw(self, X, lengths):
        """Head output for every sequence, in batches."""
        outputs = []
        for batch in gen_batches(X.shape[0], _PREDICT_BATCH):
            steps = int(lengths[batch].max())
            features, _ = self._features(X[batch, :steps], lengths[batch], self.params_)
            outputs.append(self._head(features, self.params_))
        if not self._per_step:
            return np.concatenate(outputs)
        return outputs

    def _check_loaded_params(self):
        """Validate ``params_`` set from outside ``fit`` (:func:`load_model`)."""
        fan_in = self.hidden_size * (2 if self.bidirectional else 1)
        expected = expected_shapes(
            self.cell,
            self.n_features_in_,
            self.hidden_size,
            self.num_layers,
            self.bidirectional,
        )
        expected[_HEAD_WEIGHT] = (self._n_outputs(), fan_in)
        expected[_HEAD_BIAS] = (self._n_outputs(),)
        if set(self.params_) != set(expected):
            raise ValueError(
                f"params_ has keys {sorted(self.params_)}, expected {sorted(expected)}."
            )
        dtype = self._compute_dtype()
        for key, shape in expected.items():
            value = self.params_[key]
            if value.shape != shape or value.dtype != dtype:
                raise ValueError(
                    f"params_[{key!r}] has shape {value.shape} and dtype "
                    f"{value.dtype}, expected {shape} and {dtype}."
                )
            if not np.isfinite(value).all():
                raise ValueError(f"params_[{key!r}] contains NaN or infinity.")
        self._optimizer = self._make_optimizer(self.params_)
        self._rng = check_random_state(self.random_state)
        self._no_improvement_count = 0

    # -------------------------------------------------------------- training
    def _make_optimizer(self, params):
        values = [params[k] for k in sorted(params)]
        if self.solver == "adam":
            return AdamOptimizer(values, self.learning_rate_init)
        return SGDOptimizer(
            values, self.learning_rate_init, self.momentum, self.nesterovs_momentum
        )

    def _initialize(self, n_outputs, rng):
        self.params_ = self._init_params(self.n_features_in_, n_outputs, rng)
        self._optimizer = self._make_optimizer(self.params_)
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.best_loss_ = np.inf
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        first_call = not hasattr(self, "params_") or not (
            self.warm_start or incremental
        )
        X, lengths = self._check_X(X, reset=first_call)
        targets = self._encode_targets(y, lengths, first_call, classes)
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        weights = weights * self._class_sample_weights(targets, lengths)
        rng = check_random_state(self.random_state)
        if first_call:
            self._rng = rng
            self._initialize(self._n_outputs(), rng)
        rng = self._rng

        validation = None
        if self.early_stopping and not incremental:
            stratify = self._stratify(targets)
            try:
                split = train_test_split(
                    np.arange(X.shape[0]),
                    random_state=rng.randint(np.iinfo(np.int32).max),
                    test_size=self.validation_fraction,
                    stratify=stratify,
                )
            except ValueError:  # a class too small to stratify
                split = train_test_split(
                    np.arange(X.shape[0]),
                    random_state=rng.randint(np.iinfo(np.int32).max),
                    test_size=self.validation_fraction,
                )
            train, valid = split
            if len(train) == 0 or len(valid) == 0:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves an empty "
                    f"training or validation set for {X.shape[0]} sequences."
                )
            validation = (
                X[valid],
                lengths[valid],
                self._take(targets, valid),
            )
            X, lengths, weights = X[train], lengths[train], weights[train]
            targets = self._take(targets, train)

        epochs = 1 if incremental else self.max_iter
        params = self.params_
        keys = sorted(params)
        for _ in range(epochs):
            start = time.perf_counter()
            order = (
                rng.permutation(X.shape[0]) if self.shuffle else np.arange(X.shape[0])
            )
            total = 0.0
            for batch in gen_batches(X.shape[0], min(self.batch_size, X.shape[0])):
                index = order[batch]
                steps = int(lengths[index].max())
                loss, grads = self._loss_and_grads(
                    X[index, :steps],
                    lengths[index],
                    self._take(targets, index),
                    weights[index],
                    params,
                )
                grad_list = [grads[k] for k in keys]
                if not np.isfinite(loss) or not all(
                    np.isfinite(g).all() for g in grad_list
                ):
                    raise ValueError(
                        "Training diverged: the loss or its gradient became "
                        f"non-finite at epoch {self.n_iter_ + 1}. The parameters "
                        "were left at their last finite values; try a smaller "
                        "learning_rate_init or a smaller clip_grad_norm."
                    )
                self._clip(grad_list)
                self._optimizer.update_params([params[k] for k in keys], grad_list)
                total += loss * len(index)
            self.n_iter_ += 1
            self.t_ += X.shape[0]
            epoch_loss = total / X.shape[0]
            self.loss_curve_.append(epoch_loss)
            stop = self._update_no_improvement(epoch_loss, validation)
            if self.verbose:
                line = f"Iteration {self.n_iter_}, loss = {epoch_loss:.8f}"
                if validation is not None:
                    line += f", validation score = {self.validation_scores_[-1]:.6f}"
                print(f"{line}, time = {time.perf_counter() - start:.2f}s")
            if stop:
                break
        else:
            if not incremental and self.max_iter > 0:
                warnings.warn(
                    f"Stochastic optimizer: maximum iterations ({self.max_iter}) "
                    "reached and the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
        best_params = self.__dict__.pop("_best_params", None)
        if self.early_stopping and not incremental and best_params is not None:
            self.params_ = best_params
            self._optimizer = self._make_optimizer(self.params_)
        return self

    def _clip(self, grads):
        if self.clip_grad_norm is None:
            return
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
        if norm > self.clip_grad_norm:
            scale = self.clip_grad_norm / norm
            for g in grads:
                g *= scale

    def _update_no_improvement(self, epoch_loss, validation):
        """Track the best loss or validation score; True means stop."""
        if validation is not None:
            score = self._validation_score(*validation)
            self.validation_scores_.append(score)
            if score > self.best_validation_score_:
                self._best_params = {k: v.copy() for k, v in self.params_.items()}
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_validation_score_ = max(self.best_validation_score_, score)
        else:
            self._best_params = None
            if epoch_loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, epoch_loss)
        if self._no_improvement_count >= self.n_iter_no_change:
            if self.verbose:
                what = "Validation score" if validation is not None else "Training loss"
                print(
                    f"{what} did not improve more than tol={self.tol} for "
                    f"{self.n_iter_no_change} consecutive epochs. Stopping."
                )
            return True
        return False

    @staticmethod
    def _take(targets, index):
        if isinstance(targets, list):
            return [targets[i] for i in index]
        return targets[index]

    def _class_sample_weights(self, targets, lengths):
        return np.ones(len(lengths))

    def _stratify(self, targets):
        return None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


class _LabelRNN(_BaseRNN):
    """Base of the estimators that predict labels: adds ``class_weight``."""

    _parameter_constraints: dict = {
        **_BaseRNN._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        cell="lstm",
        hidden_size=64,
        num_layers=1,
        bidirectional=False,
        *,
        solver="adam",
        momentum=0.9,
        nesterovs_momentum=True,
        learning_rate_init=1e-3,
        alpha=0.0,
        batch_size=32,
        max_iter=200,
        shuffle=True,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        clip_grad_norm=5.0,
        class_weight=None,
        random_state=None,
        verbose=False,
        warm_start=False,
        device="cpu",
        dtype="float32",
    ):
        super().__init__(
            cell=cell,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            solver=solver,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            learning_rate_init=learning_rate_init,
            alpha=alpha,
            batch_size=batch_size,
            max_iter=max_iter,
            shuffle=shuffle,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            clip_grad_norm=clip_grad_norm,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
            device=device,
            dtype=dtype,
        )
        self.class_weight = class_weight


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
    solver : {"adam", "sgd"}, default="adam"
    momentum : float, default=0.9
        SGD momentum.
    nesterovs_momentum : bool, default=True
    learning_rate_init : float, default=1e-3
    alpha : float, default=0.0
        L2 penalty on the weights (not the biases).
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
    random_state : int, RandomState instance or None, default=None
    verbose : bool, default=False
    warm_start : bool, default=False
    device : {"cpu", "cuda"}, default="cpu"
    dtype : {"float32", "float64"}, default="float32"

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    params_ : dict of str to ndarray
        PyTorch ``state_dict`` names plus ``head.weight`` (n_classes, D*H) and
        ``head.bias``.
    n_features_in_ : int
        Features per timestep.
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
                "A column-vector y was passed when a 1d array was expected.",
                UserWarning,
                stacklevel=4,
            )
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per sequence), got {y.shape}.")
        if len(y) != len(lengths):
            raise ValueError(f"X has {len(lengths)} sequences but y has {len(y)}.")
        check_classification_targets(y)
        if first_call:
            self._label_encoder = LabelEncoder().fit(
                y if classes is None else np.asarray(classes)
            )
            self.classes_ = self._label_encoder.classes_
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if len(unseen):
            raise ValueError(
                f"y contains labels {unseen.tolist()} not in classes_ "
                f"{self.classes_.tolist()}."
            )
        return self._label_encoder.transform(y)

    def _n_outputs(self):
        return len(self.classes_)

    def _class_sample_weights(self, targets, lengths):
        if self.class_weight is None:
            return np.ones(len(targets))
        if isinstance(self.class_weight, dict):
            unknown = set(self.class_weight) - set(self.classes_.tolist())
            if unknown:
                raise ValueError(
                    f"class_weight has labels {sorted(unknown, key=str)} that are "
                    "not in y."
                )
        return compute_sample_weight(self.class_weight, self.classes_[targets])

    def _stratify(self, targets):
        return targets

    def _head_loss(self, logits, targets, lengths, weights):
        log_proba = _log_softmax(logits.astype(np.float64))
        total_weight = weights.sum()
        per_sample = -log_proba[np.arange(len(targets)), targets]
        loss = float(np.dot(weights, per_sample) / total_weight)
        d_logits = np.exp(log_proba)
        d_logits[np.arange(len(targets)), targets] -= 1.0
        d_logits *= (weights / total_weight)[:, None]
        return loss, d_logits.astype(logits.dtype)

    def _validation_score(self, X, lengths, targets):
        raw = self._predict_raw(X, lengths)
        return accuracy_score(targets, raw.argmax(axis=1))

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
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first partial_fit.")
            return self._fit(X, y, sample_weight, incremental=True, classes=classes)
        if classes is not None and not np.array_equal(
            np.sort(np.asarray(classes)), self.classes_
        ):
            raise ValueError(
                f"classes={list(classes)} differs from the classes of the first "
                f"partial_fit, {self.classes_.tolist()}."
            )
        return self._fit(X, y, sample_weight, incremental=True)

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
        X, lengths = self._check_X(X, reset=False)
        return _log_softmax(self._predict_raw(X, lengths).astype(np.float64))

    def predict(self, X):
        """Predicted labels, shape (n,)."""
        check_is_fitted(self)
        X, lengths = self._check_X(X, reset=False)
        return self.classes_[self._predict_raw(X, lengths).argmax(axis=1)]


class RNNRegressor(RegressorMixin, _BaseRNN):
    """Recurrent network regressor: one real vector per sequence.

    The head reads the last layer's final hidden state; the loss is half the
    mean squared error. Parameters and attributes are those of
    :class:`RNNClassifier` without ``class_weight`` and ``classes_``.
    """

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
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity.")
        if first_call:
            self._y_ndim = y.ndim
            self._n_targets = 1 if y.ndim == 1 else y.shape[1]
        y = y.reshape(len(y), -1)
        if y.shape[1] != self._n_targets:
            raise ValueError(
                f"y has {y.shape[1]} targets, the model was fitted with "
                f"{self._n_targets}."
            )
        return y.astype(np.float64)

    def _n_outputs(self):
        return self._n_targets

    def _head_loss(self, prediction, targets, lengths, weights):
        error = prediction.astype(np.float64) - targets
        total_weight = weights.sum()
        loss = 0.5 * float(np.dot(weights, (error * error).mean(axis=1)) / total_weight)
        d_prediction = error * (weights / total_weight)[:, None] / error.shape[1]
        return loss, d_prediction.astype(prediction.dtype)

    def _validation_score(self, X, lengths, targets):
        return r2_score(targets, self._predict_raw(X, lengths))

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
        X, lengths = self._check_X(X, reset=False)
        prediction = self._predict_raw(X, lengths)
        return prediction.ravel() if self._y_ndim == 1 else prediction


class RNNTagger(ClassifierMixin, _LabelRNN):
    """Recurrent network sequence tagger: one label per timestep.

    The head reads the last layer's output at every step (both directions
    when bidirectional), e.g. for next-character prediction or
    fill-in-the-blank. ``y`` holds, for each sequence, an array of as many
    labels as the sequence has steps. Parameters and attributes are those of
    :class:`RNNClassifier`.
    """

    _per_step = True

    def _encode_targets(self, y, lengths, first_call, classes=None):
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
        flat = np.concatenate(labels)
        if type_of_target(flat) not in ("binary", "multiclass"):
            check_classification_targets(flat)
        if first_call:
            self._label_encoder = LabelEncoder().fit(
                flat if classes is None else np.asarray(classes)
            )
            self.classes_ = self._label_encoder.classes_
        unseen = np.setdiff1d(np.unique(flat), self.classes_)
        if len(unseen):
            raise ValueError(
                f"y contains labels {unseen.tolist()} not in classes_ "
                f"{self.classes_.tolist()}."
            )
        return [self._label_encoder.transform(s) for s in labels]

    def _n_outputs(self):
        return len(self.classes_)

    def _class_sample_weights(self, targets, lengths):
        if self.class_weight is None:
            return np.ones(len(targets))
        # A per-sequence weight: the mean class weight of its steps.
        flat = np.concatenate(targets)
        step_weights = compute_sample_weight(self.class_weight, self.classes_[flat])
        bounds = np.cumsum([0, *map(len, targets)])
        return np.array(
            [step_weights[a:b].mean() for a, b in itertools.pairwise(bounds)]
        )

    def _head_loss(self, logits, targets, lengths, weights):
        batch, steps, _ = logits.shape
        log_proba = _log_softmax(logits.astype(np.float64))
        valid = np.arange(steps) < lengths[:, None]
        label = np.zeros((batch, steps), dtype=np.int64)
        for row, sequence in enumerate(targets):
            label[row, : len(sequence)] = sequence
        step_weight = np.where(valid, weights[:, None], 0.0)
        total_weight = step_weight.sum()
        picked = np.take_along_axis(log_proba, label[:, :, None], axis=2)[:, :, 0]
        loss = float(-(step_weight * picked).sum() / total_weight)
        d_logits = np.exp(log_proba)
        np.put_along_axis(
            d_logits,
            label[:, :, None],
            np.take_along_axis(d_logits, label[:, :, None], axis=2) - 1.0,
            axis=2,
        )
        d_logits *= (step_weight / total_weight)[:, :, None]
        return loss, d_logits.astype(logits.dtype)

    def _validation_score(self, X, lengths, targets):
        raw = self._predict_raw(X, lengths)
        predicted = self._split_steps(raw, lengths, lambda z: z.argmax(axis=-1))
        return accuracy_score(np.concatenate(targets), np.concatenate(predicted))

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
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first partial_fit.")
            return self._fit(X, y, sample_weight, incremental=True, classes=classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def _per_sequence(self, X, transform):
        check_is_fitted(self)
        X_checked, lengths = self._check_X(X, reset=False)
        raw = self._predict_raw(X_checked, lengths)
        result = self._split_steps(raw, lengths, transform)
        if not isinstance(X, (list, tuple)):
            return np.stack(result)
        return result

    def predict_proba(self, X):
        """Per-step class probabilities: a list of (T_i, n_classes) arrays (an
        array (n, T, n_classes) for array input)."""
        return self._per_sequence(
            X, lambda z: np.exp(_log_softmax(z.astype(np.float64)))
        )

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        return self._per_sequence(X, lambda z: _log_softmax(z.astype(np.float64)))

    def predict(self, X):
        """Per-step labels: a list of (T_i,) arrays (an array (n, T) for array
        input)."""
        return self._per_sequence(X, lambda z: self.classes_[z.argmax(axis=-1)])

    def score(self, X, y, sample_weight=None):
        """Accuracy over all timesteps of all sequences."""
        predicted = self.predict(X)
        return accuracy_score(
            np.concatenate([np.asarray(s) for s in y]),
            np.concatenate(list(predicted)),
        )
