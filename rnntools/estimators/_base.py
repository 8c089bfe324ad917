"""What every estimator shares: hyperparameters, the epoch loop, early
stopping, divergence handling and device residency (:class:`_BaseRNN`), and
class weights for the label predictors (:class:`_LabelRNN`).

The epoch loop talks to a model through one seam, :meth:`_BaseRNN._loss_and_grads`
("loss and gradients of a batch given the parameters"), which adds the L2
penalty to the model's :meth:`~_BaseRNN._data_loss_and_grads`. The default
model is a recurrent network (:mod:`rnntools.functional`) with a linear output
head, trained by minibatch Adam or SGD with the epoch loop in Python, so that
progress reporting and stopping stay in Python. Where the design says nothing,
the estimators do what :class:`sklearn.neural_network.MLPClassifier` does.

Input ``X`` is read by :func:`rnntools._sequences.check_sequences`: a 3-D
array ``(n, T, F)``, a list of ``(T_i, F)`` arrays, or a 2-D array ``(n, T)`` of
univariate sequences. ``n_features_in_`` is ``F`` (1 for 2-D input), not
``X.shape[1]``. When every training sequence has the same length ``T``, a 2-D
``X`` given later must have ``T`` columns: a 2-D table of another width is far
more often a transposed or wrong table than a set of longer sequences. Longer
or shorter sequences are predicted from a 3-D array or a list.
"""

import inspect
import time
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn import config_context
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight

from .. import _devices
from .._arrays import column_sums, transposed
from .._json import is_int, is_number, to_json_value
from .._sequences import check_sequences
from .._threads import kernel_threads, parallel_matmul
from ..cells import (
    GATES,
    NONLINEARITIES,
    direction_suffixes,
    expected_shapes,
    init_params,
    param_names,
)
from ..functional import ForwardCache, rnn_backward, rnn_forward
from ..kernels.row_invariant import row_invariant_matmul
from ..optim import AdamOptimizer, SGDOptimizer

#: Prefix of the parameter arrays in a model file.
PARAM_PREFIX = "param/"
_HEAD_WEIGHT = "head.weight"
_HEAD_BIAS = "head.bias"
# Sequences predicted per call of the kernels.
_PREDICT_BATCH = 1024


_all_finite = _devices.all_finite


def _batches(n, size):
    """``list(gen_batches(n, size))`` without scikit-learn's parameter
    validation, which cost 16 us a call here (about 3 % of a predict on 32
    sequences); ``n`` and ``size`` come from the estimator's own checked
    values."""
    with config_context(skip_parameter_validation=True):
        return list(gen_batches(n, size))


class _NonFinite(ArithmeticError):
    """The loss or a gradient of a minibatch is NaN or infinite."""


def _state_rows(state, layer, num_dirs):
    """One layer's rows of a state ``(L*D, B, H)`` (or LSTM pair), or None."""
    if state is None:
        return None
    rows = slice(layer * num_dirs, (layer + 1) * num_dirs)
    if isinstance(state, tuple):
        return tuple(part[rows] for part in state)
    return state[rows]


def _layer_names(layer, bidirectional):
    """``(layer-0 name, layer name)`` of every parameter of one layer."""
    return [
        pair
        for suffix in direction_suffixes(bidirectional)
        for pair in zip(param_names(0, suffix), param_names(layer, suffix), strict=True)
    ]


@dataclass
class _LayerCaches:
    """What :meth:`_BaseRNN._network_backward` needs from a network run one
    layer at a time by :meth:`_BaseRNN._network_forward`."""

    caches: list  # one ForwardCache per layer, parameters under layer-0 names
    masks: list  # per layer above the first: the dropout mask of its input, or None
    bidirectional: bool

    @property
    def batch(self):
        return self.caches[-1].batch

    @property
    def steps(self):
        return self.caches[-1].steps


class _BaseRNN(BaseEstimator):
    """Shared parameters, training loop and prediction of the RNN estimators."""

    _parameter_constraints: dict = {
        "cell": [StrOptions(set(GATES))],
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "bidirectional": ["boolean"],
        "nonlinearity": [StrOptions(set(NONLINEARITIES))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
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
        nonlinearity="tanh",
        dropout=0.0,
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
        self.nonlinearity = nonlinearity
        self.dropout = dropout
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
    # _encode_targets(y, lengths, first_call, classes) -> (targets, attributes)
    # _head_loss(logits, targets, lengths, weights, class_weights)
    #     -> (loss, d_logits, total_weight)
    # _validation_score(X, lengths, targets, weights) -> float
    # _n_outputs(attributes) -> int

    _per_step = False  # the head reads every step (tagger), not the last state

    # ----------------------------------------------------------------- data
    def _check_X(self, X, reset):
        """Validate ``X``; set nothing.

        Returns
        -------
        padded : ndarray of shape (n, T_max, F)
            In the compute dtype (the ``dtype`` hyperparameter).
        lengths : int64 ndarray of shape (n,)
        output_dtype : dtype
            The dtype of the predictions: float32 for float32 input, else
            float64, whatever the compute dtype (float32 stays float32).
        """
        padded, lengths = check_sequences(
            X,
            n_features=None if reset else self.n_features_in_,
            n_steps=None if reset else getattr(self, "_train_steps", None),
            estimator=self,
        )
        return padded.astype(self._compute_dtype(), copy=False), lengths, padded.dtype

    def _compute_dtype(self):
        return np.dtype(self.dtype)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "params_")

    def __setstate__(self, state):
        """Unpickle; a hyperparameter added after the pickle was written
        (``dropout``, for instance) takes its default value."""
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(
                type(self).__init__
            ).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        super().__setstate__({**defaults, **state})

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

    def _dropout_mask(self, shape, dtype):
        """An inverted-dropout mask: 0 with probability ``dropout``, else
        ``1 / (1 - dropout)``, one draw from the estimator's random stream
        per element."""
        keep = 1.0 - self.dropout
        return ((self._rng.random_sample(shape) < keep) / keep).astype(dtype)

    def _drop(self, values, training):
        """Inverted dropout of ``values`` while training with ``dropout > 0``.

        Returns
        -------
        dropped : ndarray
            ``values * mask``, or ``values`` itself when no dropout applies
            (then nothing is drawn from the random stream, so a model with
            ``dropout=0`` trains exactly as it did before dropout existed).
        mask : ndarray or None
            The mask (:meth:`_dropout_mask`), for the backward pass.
        """
        if not (training and self.dropout > 0):
            return values, None
        mask = self._dropout_mask(values.shape, values.dtype)
        return values * mask, mask

    def _network_forward(
        self, x, lengths, params, training, layer_by_layer=False, *,
        rnn_params=None, bidirectional=None, initial_state=None,
    ):  # fmt: skip
        """Run the recurrent layers, with dropout between them while training.

        Parameters
        ----------
        x : ndarray of shape (B, T, I)
        lengths : int ndarray of shape (B,)
        params : dict of str to ndarray
            The model's parameters; the recurrent ones (:meth:`_rnn_params`)
            are used unless ``rnn_params`` is given.
        training : bool
            Whether dropout applies and a backward pass follows (otherwise
            :func:`rnn_forward` keeps no activations and ``cache`` is of no
            use).
        layer_by_layer : bool, default=False
            Run the layers one at a time even without dropout (the language
            model does, which keeps its results bit for bit what they were).
        rnn_params : dict of str to ndarray, default=None
            A network of the model other than :meth:`_rnn_params` (the encoder
            or the decoder of a translation model), in PyTorch's layout.
        bidirectional : bool, default=None
            Whether that network is bidirectional (default: the estimator's).
        initial_state : ndarray of shape (L*D, B, H), or tuple for lstm
            Zeros if None.

        Returns
        -------
        output : ndarray of shape (B, T, D*H)
        final_state : ndarray of shape (L*D, B, H), or tuple (h_n, c_n) for lstm
        cache : ForwardCache or _LayerCaches
            Input of :meth:`_network_backward`.

        Notes
        -----
        Without dropout the stack is one :func:`rnn_forward` call. With it, as
        in ``torch.nn.LSTM(dropout=p)``, the input of every layer above the
        first (the previous layer's output, both directions) is multiplied by
        its own mask (:meth:`_drop`, one draw per element and step), so each
        layer is its own :func:`rnn_forward` call; with ``device="cuda"`` the
        parameters stay on the device and each layer's output and gradient
        pass through the host, where the mask is applied.
        """
        if rnn_params is None:
            rnn_params = self._rnn_params(params)
        if bidirectional is None:
            bidirectional = self.bidirectional
        options = {
            "nonlinearity": self.nonlinearity,
            "bidirectional": bidirectional,
            "lengths": lengths,
            "device": self.device,
            "return_cache": training,  # prediction keeps no activations
        }
        if not (layer_by_layer or (training and self.dropout > 0)):
            return rnn_forward(
                x, rnn_params, self.cell, initial_state=initial_state, **options
            )
        num_dirs = 2 if bidirectional else 1
        num_layers = len(rnn_params) // (4 * num_dirs)
        caches, masks, finals = [], [], []
        layer_input = x
        for layer in range(num_layers):
            if layer > 0:
                layer_input, mask = self._drop(layer_input, training)
                masks.append(mask)
            layer_params = {
                zero: rnn_params[name]
                for zero, name in _layer_names(layer, bidirectional)
            }
            layer_input, final_state, cache = rnn_forward(
                layer_input,
                layer_params,
                self.cell,
                initial_state=_state_rows(initial_state, layer, num_dirs),
                **options,
            )
            caches.append(cache)
            finals.append(final_state)
        if self.cell == "lstm":
            final_state = tuple(
                np.concatenate(parts) for parts in zip(*finals, strict=True)
            )
        else:
            final_state = np.concatenate(finals)
        return layer_input, final_state, _LayerCaches(caches, masks, bidirectional)

    def _network_backward(self, cache, d_output, d_final_state=None):
        """Backpropagation through :meth:`_network_forward`.

        Parameters
        ----------
        cache : ForwardCache or _LayerCaches
        d_output : ndarray of shape (B, T, D*H)
        d_final_state : ndarray of shape (L*D, B, H), or tuple for lstm, optional

        Returns
        -------
        grads : dict of str to ndarray
            Gradients of the recurrent parameters (device arrays where the
            parameters were device arrays).
        d_x : ndarray of shape (B, T, I)
        d_initial_state : ndarray of shape (L*D, B, H), or tuple for lstm
        """
        if isinstance(cache, ForwardCache):
            return rnn_backward(cache, d_output, d_final_state)
        num_dirs = 2 if cache.bidirectional else 1
        grads = {}
        d_initial = []
        for layer in reversed(range(len(cache.caches))):
            layer_grads, d_output, d_layer_initial = rnn_backward(
                cache.caches[layer],
                d_output,
                _state_rows(d_final_state, layer, num_dirs),
            )
            d_initial.append(d_layer_initial)
            for zero, name in _layer_names(layer, cache.bidirectional):
                grads[name] = layer_grads[zero]
            if layer > 0 and cache.masks[layer - 1] is not None:
                d_output = d_output * cache.masks[layer - 1]
        d_initial.reverse()
        if isinstance(d_initial[0], tuple):
            d_initial_state = tuple(
                np.concatenate(parts) for parts in zip(*d_initial, strict=True)
            )
        else:
            d_initial_state = np.concatenate(d_initial)
        return grads, d_output, d_initial_state

    def _features(self, X, lengths, params, training=False):
        """Run the network; return the head's input and what
        :meth:`_backward_features` needs.

        The head reads the last layer's output at every step (``_per_step``)
        or its final hidden state, both directions concatenated. While
        ``training`` with ``dropout > 0``, dropout applies between the layers
        and to these features.

        Returns
        -------
        features : ndarray of shape (B, D*H), or (B, T, D*H) per step
        cache : tuple
            The network's cache and the features' dropout mask (or None).
        """
        output, final_state, cache = self._network_forward(X, lengths, params, training)
        if self._per_step:
            features = output
        else:
            h_n = final_state[0] if self.cell == "lstm" else final_state
            num_dirs = 2 if self.bidirectional else 1
            last = h_n[(self.num_layers - 1) * num_dirs :]  # (D, B, H)
            features = np.concatenate(list(last), axis=1)
        features, mask = self._drop(features, training)
        return features, (cache, mask)

    def _backward_features(self, cache, d_features):
        """Gradients of the RNN parameters from the gradient of the features."""
        cache, mask = cache
        if mask is not None:
            d_features = d_features * mask
        if self._per_step:
            grads, _, _ = self._network_backward(cache, d_features)
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
        grads, _, _ = self._network_backward(cache, d_output, d_final)
        return grads

    def _head(self, features, params):
        """The output layer, ``features @ head.weight.T + head.bias``.

        Row-invariant (every row by the same operations, whatever the batch),
        so that ``predict(X)[i]`` is the same bits as ``predict(X[i:i+1])``.
        """
        weight = params[_HEAD_WEIGHT]
        flat = np.ascontiguousarray(features.reshape(-1, features.shape[-1]))
        out = np.empty((len(flat), weight.shape[0]), dtype=flat.dtype)
        row_invariant_matmul(
            flat,
            transposed(weight, flat.dtype),
            out,
            np.ascontiguousarray(params[_HEAD_BIAS], flat.dtype),
        )
        return out.reshape(*features.shape[:-1], weight.shape[0])

    def _loss_and_grads(self, X, lengths, targets, weights, class_weights, params):
        """Loss, gradients and summed weight of one minibatch: the seam
        between the epoch loop and the model.

        The loss is the weighted mean of the model's data loss
        (:meth:`_data_loss_and_grads`) plus
        ``alpha / 2 * ||W||^2 / total_weight`` over every weight matrix, as
        in :class:`~sklearn.neural_network.MLPClassifier`, so that an integer
        sample weight is the same as repeating the sample. A batch whose
        weights are all zero returns ``grads=None``.

        Raises
        ------
        _NonFinite
            If the loss or a gradient is NaN or infinite (divergence).
        """
        loss, grads, total_weight = self._data_loss_and_grads(
            X, lengths, targets, weights, class_weights, params
        )
        if total_weight == 0:
            return 0.0, None, 0.0
        if self.alpha > 0:
            scale = self.alpha / total_weight
            for key, value in params.items():
                if "weight" not in key:
                    continue
                loss += 0.5 * scale * _devices.sum_squares(value)
                if _devices.on_device(value):  # grads[key] is this batch's own
                    _devices.cuda_kernels().add_scaled(grads[key], value, scale)
                else:
                    grads[key] = grads[key] + (scale * value).astype(value.dtype)
        if not (np.isfinite(loss) and _all_finite(grads.values())):
            raise _NonFinite
        return loss, grads, total_weight

    def _data_loss_and_grads(
        self, X, lengths, targets, weights, class_weights, params
    ):  # fmt: skip
        """The data loss of one minibatch (no regularisation) and its
        gradients with respect to every entry of ``params``.

        One recurrent network and a linear head (:meth:`_head_loss` says
        which loss); the language model overrides this whole method.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray, or None when ``total_weight`` is 0
        total_weight : float
        """
        features, cache = self._features(X, lengths, params, training=True)
        logits = self._head(features, params)
        loss, d_logits, total_weight = self._head_loss(
            logits, targets, lengths, weights, class_weights
        )
        if total_weight == 0:
            return 0.0, None, 0.0
        flat_features = features.reshape(-1, features.shape[-1])
        flat_d_logits = d_logits.reshape(-1, d_logits.shape[-1])
        d_features = (
            parallel_matmul(flat_d_logits, params[_HEAD_WEIGHT])
            .reshape(features.shape)
            .astype(features.dtype, copy=False)
        )
        if not (np.isfinite(loss) and np.isfinite(d_features).all()):
            raise _NonFinite
        grads = self._backward_features(cache, d_features)
        grads[_HEAD_WEIGHT] = parallel_matmul(flat_d_logits.T, flat_features)
        grads[_HEAD_BIAS] = column_sums(flat_d_logits)
        return loss, grads, total_weight

    def _predict_raw(self, X, lengths):
        """Head output for every sequence, in batches."""
        outputs = []
        params = self._working_params()
        with kernel_threads():  # BLAS at one thread throughout, see _run_epochs
            for batch in _batches(X.shape[0], _PREDICT_BATCH):
                steps = int(lengths[batch].max())
                features, _ = self._features(X[batch, :steps], lengths[batch], params)
                outputs.append(self._head(features, params))
        if not self._per_step:
            return np.concatenate(outputs)
        return outputs

    # ---------------------------------------------------------- model files
    #: Fitted scalars a model file keeps in its JSON, each with its check.
    _FITTED_SCALARS = {
        "n_features_in_": lambda v: is_int(v) and v >= 1,
        "n_iter_": lambda v: is_int(v) and v >= 0,
        "t_": lambda v: is_int(v) and v >= 0,
        "best_loss_": lambda v: v is None or is_number(v),
        "best_validation_score_": lambda v: v is None or is_number(v),
        "_train_steps": lambda v: v is None or (is_int(v) and v >= 1),
    }
    #: Fitted lists of numbers (or None) a model file keeps in its JSON.
    _FITTED_LISTS = ("loss_curve_", "validation_scores_")
    #: Fitted attributes every model file must have.
    _REQUIRED_FITTED = ("n_features_in_", "n_iter_", "t_", "loss_curve_")

    def _to_model_file(self):
        """The fitted state as arrays and JSON, for :func:`rnntools.save_model`.

        Returns
        -------
        arrays : dict of str to ndarray
            ``param/<key>`` for every entry of ``params_``, and whatever else
            the estimator needs.
        document : dict
            JSON-able; ``document["fitted"]`` holds the fitted scalars.
        """
        arrays = {PARAM_PREFIX + key: value for key, value in self.params_.items()}
        fitted = {
            key: to_json_value(getattr(self, key))
            for key in self._FITTED_SCALARS
            if hasattr(self, key)
        }
        for key in self._FITTED_LISTS:
            value = getattr(self, key, None)
            fitted[key] = None if value is None else [float(v) for v in value]
        return arrays, {"fitted": fitted}

    def _from_model_file(self, arrays, document):
        """Set the fitted state from a verified model file.

        Raises
        ------
        ValueError, KeyError, TypeError
            On anything missing or inconsistent.
        """
        self.params_ = {
            name[len(PARAM_PREFIX) :]: value
            for name, value in arrays.items()
            if name.startswith(PARAM_PREFIX)
        }
        fitted = document["fitted"]
        missing = [key for key in self._REQUIRED_FITTED if key not in fitted]
        if missing:
            raise ValueError(f"fitted attributes {missing} are missing")
        for key, value in fitted.items():
            if key in self._FITTED_SCALARS:
                if not self._FITTED_SCALARS[key](value):
                    raise ValueError(f"{key}={value!r} is not valid")
            elif key in self._FITTED_LISTS:
                if value is not None and not (
                    isinstance(value, list) and all(is_number(v) for v in value)
                ):
                    raise ValueError(f"{key} must be a list of numbers")
            else:
                raise ValueError(f"unknown fitted attribute {key!r}")
            setattr(self, key, value)
        self._check_loaded_params()

    def _expected_param_shapes(self):
        """Key → shape of every entry ``params_`` must have."""
        fan_in = self.hidden_size * (2 if self.bidirectional else 1)
        expected = expected_shapes(
            self.cell,
            self.n_features_in_,
            self.hidden_size,
            self.num_layers,
            self.bidirectional,
        )
        n_outputs = self._n_outputs(self.__dict__)
        expected[_HEAD_WEIGHT] = (n_outputs, fan_in)
        expected[_HEAD_BIAS] = (n_outputs,)
        return expected

    def _check_loaded_params(self):
        """Validate ``params_`` set from outside ``fit`` (:func:`load_model`)."""
        self._check_nonlinearity()
        expected = self._expected_param_shapes()
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

    def _check_nonlinearity(self):
        if self.nonlinearity != "tanh" and self.cell != "rnn":
            raise ValueError(
                f"nonlinearity={self.nonlinearity!r} applies to cell='rnn' only, "
                f"not cell={self.cell!r}."
            )

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
        self._reset_stopping()

    def _reset_stopping(self):
        """Start the bookkeeping of ``tol`` / ``n_iter_no_change`` afresh."""
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _class_weights(self, targets, attributes, incremental):
        """Weight of each encoded class, shape (n_classes,), or None."""
        return None

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        name = type(self).__name__
        if y is None:
            raise ValueError(
                f"{name} requires y to be passed, but the target y is None."
            )
        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: it trains one "
                "epoch per call, with no held-out validation set."
            )
        self._check_nonlinearity()
        first_call = not hasattr(self, "params_") or not (
            self.warm_start or incremental
        )
        # Validate everything before changing any attribute, so that a call
        # that fails leaves the estimator as it was.
        X, lengths, _ = self._check_X(X, reset=first_call)
        targets, attributes = self._encode_targets(y, lengths, first_call, classes)
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        class_weights = self._class_weights(targets, attributes, incremental)

        if first_call:
            self.n_features_in_ = X.shape[2]
            self._train_steps = (
                int(lengths[0]) if np.all(lengths == lengths[0]) else None
            )
            for key, value in attributes.items():
                setattr(self, key, value)
            self._rng = check_random_state(self.random_state)
            self._initialize(self._n_outputs(attributes), self._rng)
        elif not incremental or self.best_loss_ is None:
            self._reset_stopping()
        rng = self._rng

        validation = None
        if self.early_stopping:
            train, valid = self._validation_split(targets, rng)
            validation = (
                X[valid],
                lengths[valid],
                self._take(targets, valid),
                sample_weight[valid],
            )
            X, lengths, sample_weight = X[train], lengths[train], sample_weight[train]
            targets = self._take(targets, train)

        self._run_epochs(
            X, lengths, targets, sample_weight, class_weights, validation, incremental
        )
        return self

    def _validation_split(self, targets, rng):
        """Indices of the training and the validation sequences."""
        n = len(targets)
        seed = rng.randint(np.iinfo(np.int32).max)
        # Stratified if every class can be split, else a plain random split.
        for stratify in (self._stratify(targets), None):
            try:
                return train_test_split(
                    np.arange(n),
                    random_state=seed,
                    test_size=self.validation_fraction,
                    stratify=stratify,
                )
            except ValueError:
                continue
        raise ValueError(
            f"validation_fraction={self.validation_fraction} leaves an empty "
            f"training or validation set for {n} sequences."
        )

    def _run_epochs(
        self, X, lengths, targets, weights, class_weights, validation, incremental
    ):
        """The epoch loop: minibatch updates, stopping, best-weight restore.

        With ``device="cuda"`` the network's parameters and their optimizer
        state move to the GPU for the whole loop (the output layer, tiny,
        stays on the host) and come back when it ends, however it ends.
        """
        params = self._working_params()
        keys = sorted(params)
        values = [params[k] for k in keys]
        on_device = [_devices.on_device(v) for v in values]
        self._optimizer.map_state(
            lambda i, a: _devices.to_device(a) if on_device[i] else a
        )
        try:
            # BLAS at one thread for the whole loop, not only inside each
            # kernel call: BLAS threads left spinning after a NumPy product
            # took the cores from the next kernel (a language model's epoch
            # 410 -> 260 ms); large products run on rnntools' threads.
            with kernel_threads():
                self._epochs(
                    params, keys, values, X, lengths, targets, weights,
                    class_weights, validation, incremental,
                )  # fmt: skip
        finally:
            self._store_working_params(params)
            self._optimizer.map_state(lambda i, a: _devices.to_host(a))
        best_params = self.__dict__.pop("_best_params", None)
        if best_params is not None:
            self.params_ = best_params
            self._optimizer = self._make_optimizer(self.params_)

    def _working_params(self):
        """``params_`` where the network runs: on ``device="cuda"`` a dict
        whose network entries are device copies (the head stays on the host)."""
        if self.device != "cuda":
            return self.params_
        _devices.cuda_kernels()  # a clear RuntimeError without a GPU
        rnn_keys = self._rnn_params().keys()
        return {
            key: _devices.to_device(value) if key in rnn_keys else value
            for key, value in self.params_.items()
        }

    def _store_working_params(self, params):
        """Copy working parameters back into ``params_`` (no-op on the CPU)."""
        for key, value in params.items():
            if value is not self.params_[key]:
                self.params_[key][...] = _devices.to_host(value)

    def _epochs(
        self, params, keys, values, X, lengths, targets, weights, class_weights,
        validation, incremental,
    ):  # fmt: skip
        """The epochs of :meth:`_run_epochs`, on the working ``params``
        (``values``: its arrays in the sorted order ``keys``)."""
        n = X.shape[0]
        for _ in range(1 if incremental else self.max_iter):
            start = time.perf_counter()
            epoch_start = [_devices.copy(v) for v in values]
            order = self._rng.permutation(n) if self.shuffle else np.arange(n)
            total_loss = 0.0
            total_weight = 0.0
            for batch in _batches(n, min(self.batch_size, n)):
                index = order[batch]
                steps = int(lengths[index].max())
                try:  # overflow is reported by _NonFinite, not as warnings
                    with np.errstate(over="ignore", invalid="ignore"):
                        loss, grads, batch_weight = self._loss_and_grads(
                            X[index, :steps],
                            lengths[index],
                            self._take(targets, index),
                            weights[index],
                            class_weights,
                            params,
                        )
                except _NonFinite:
                    self._diverged(values, epoch_start)
                if grads is None:  # all weights zero: as if the batch were absent
                    continue
                grad_list = [grads[k] for k in keys]
                self._clip(grad_list)
                self._optimizer.update_params(values, grad_list)
                if not _all_finite(values):
                    self._diverged(values, epoch_start)
                total_loss += loss * batch_weight
                total_weight += batch_weight
            if total_weight == 0:
                raise ValueError(
                    "Every training sequence has zero weight (sample_weight times "
                    "class_weight): there is nothing to fit."
                )
            self.n_iter_ += 1
            self.t_ += n
            epoch_loss = total_loss / total_weight
            self.loss_curve_.append(epoch_loss)
            if validation is not None:  # scored with, and maybe saved from, params_
                self._store_working_params(params)
            stop = self._update_no_improvement(epoch_loss, validation)
            if self.verbose:
                line = f"Iteration {self.n_iter_}, loss = {epoch_loss:.8f}"
                if validation is not None:
                    line += f", validation score = {self.validation_scores_[-1]:.6f}"
                print(f"{line}, time = {time.perf_counter() - start:.2f}s")
            if stop:
                break
        else:
            if not incremental:
                warnings.warn(
                    f"Stochastic optimizer: maximum iterations ({self.max_iter}) "
                    "reached and the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=6,
                )

    def _diverged(self, values, epoch_start):
        """Restore the epoch's starting parameters and raise."""
        for value, saved in zip(values, epoch_start, strict=True):
            _devices.assign(value, saved)
        self._optimizer = self._make_optimizer(self.params_)
        self.__dict__.pop("_best_params", None)
        raise ValueError(
            "Training diverged: the loss, its gradient or the updated parameters "
            f"became non-finite in epoch {self.n_iter_ + 1}. params_ was restored "
            "to its (finite) values at the start of that epoch. Try a smaller "
            "learning_rate_init, a clip_grad_norm, or scaling the inputs."
        ) from None

    def _clip(self, grads):
        if self.clip_grad_norm is None:
            return
        norm = np.sqrt(sum(_devices.sum_squares(g) for g in grads))
        if norm > self.clip_grad_norm:
            scale = self.clip_grad_norm / norm
            for g in grads:
                _devices.scale(g, scale)

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
        nonlinearity="tanh",
        dropout=0.0,
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
            nonlinearity=nonlinearity,
            dropout=dropout,
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

    def _n_outputs(self, attributes):
        return len(attributes["classes_"])

    def _to_model_file(self):
        arrays, document = super()._to_model_file()
        classes = np.asarray(self.classes_)
        document["object_classes"] = classes.dtype.kind == "O"
        if document["object_classes"]:
            if not all(isinstance(c, str) for c in classes):
                raise TypeError(
                    "classes_ of mixed types cannot be saved without pickle."
                )
            classes = classes.astype(str)
        arrays["classes_"] = classes
        return arrays, document

    def _from_model_file(self, arrays, document):
        if "classes_" not in arrays:
            raise ValueError("classes_ is missing")
        classes = arrays["classes_"]
        if (
            classes.ndim != 1
            or classes.dtype.kind not in "biufU"
            or not np.array_equal(np.unique(classes), classes)
        ):
            raise ValueError("classes_ must be a sorted 1-D array of unique labels")
        self.classes_ = (
            classes.astype(object) if document.get("object_classes") else classes
        )
        self._label_encoder = LabelEncoder()
        self._label_encoder.classes_ = self.classes_
        super()._from_model_file(arrays, document)

    def _label_encoder_for(self, labels, first_call, classes):
        """The fitted encoder: new on the first call, else the model's own."""
        if not first_call:
            encoder = self._label_encoder
        else:
            encoder = LabelEncoder().fit(
                labels if classes is None else np.asarray(classes)
            )
        known = set(encoder.classes_.tolist())
        unseen = [label for label in np.unique(labels).tolist() if label not in known]
        if unseen:
            raise ValueError(
                f"y contains labels {unseen} that are not in classes_ "
                f"{encoder.classes_.tolist()}."
            )
        return encoder

    def _class_weights(self, targets, attributes, incremental):
        """Weight of each encoded class, shape (n_classes,), or None.

        ``"balanced"`` gives class ``c`` the weight ``n / (k * n_c)`` over the
        ``k`` classes present in ``y`` (timesteps for the tagger), as
        :func:`sklearn.utils.class_weight.compute_sample_weight` does.
        """
        if self.class_weight is None:
            return None
        classes = attributes["classes_"]
        if isinstance(self.class_weight, str):
            if incremental:
                raise ValueError(
                    "class_weight='balanced' is not supported by partial_fit, which "
                    "sees one batch of the data at a time; pass a dict, e.g. from "
                    "sklearn.utils.class_weight.compute_class_weight on a large "
                    "enough sample of y."
                )
            counts = np.bincount(self._flat_targets(targets), minlength=len(classes))
            present = counts > 0
            weights = np.ones(len(classes))
            weights[present] = counts.sum() / (present.sum() * counts[present])
            return weights
        known = set(classes.tolist())
        unknown = [label for label in self.class_weight if label not in known]
        if unknown:
            raise ValueError(
                f"class_weight has labels {unknown} that are not in classes_ "
                f"{classes.tolist()}."
            )
        weights = np.array(
            [float(self.class_weight.get(label, 1.0)) for label in classes.tolist()]
        )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(
                "class_weight values must be finite and non-negative, got "
                f"{self.class_weight}."
            )
        return weights

    def _partial_fit_labels(self, X, y, classes, sample_weight):
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first partial_fit.")
        elif classes is not None and not np.array_equal(
            np.unique(np.asarray(classes)), self.classes_
        ):
            raise ValueError(
                f"classes={list(classes)} differs from the classes_ of the model, "
                f"{self.classes_.tolist()}."
            )
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)
