""":class:`RNNCaptioner`: a decoder conditioned on a feature vector."""

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_array

from ._generator import (
    GENERATOR_CONSTRAINTS,
    _Condition,
    _ConditionedGenerator,
    bridge_backward,
    bridge_forward,
)


class RNNCaptioner(_ConditionedGenerator):
    """Recurrent decoder that describes a feature vector: image captioning.

    Writes a token sequence for every row of ``X`` (image pixels, or features
    from a pretrained CNN). The features condition the decoder in one of the
    two ways Tanti et al. (2017, "Where to put the image in an image caption
    generator") compare:

    - ``conditioning="init"`` (default, their best quality): a learned
      projection (linear + tanh) of the features is the decoder's initial
      state (every layer; the LSTM's cell state by a second projection);
    - ``conditioning="merge"``: the recurrent layers read the words only, and
      a projection of the features joins their output before the output
      layer (smaller and faster).

    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}, default="lstm"
    hidden_size : int, default=64
    num_layers : int, default=1
    embedding_dim : int, default=32
        Size of the word embeddings.
    conditioning : {"init", "merge"}, default="init"
    dropout : float in [0, 1), default=0.0
        Inverted dropout during ``fit`` between the recurrent layers and on
        the output layer's input.
    max_length, beam_width, length_penalty, min_frequency, max_vocabulary_size
        As in :class:`~rnntools.RNNSeq2Seq`.
    nonlinearity, solver, momentum, nesterovs_momentum, learning_rate_init, \
alpha, batch_size, max_iter, shuffle, tol, n_iter_no_change, early_stopping, \
validation_fraction, clip_grad_norm, random_state, verbose, warm_start, \
device, dtype
        As in :class:`~rnntools.RNNClassifier`; early stopping watches the
        held-out log-likelihood. ``device="cuda"`` raises
        ``NotImplementedError`` for now.

    Attributes
    ----------
    vocabulary_ : Vocabulary
        Caption tokens; ``classes_`` lists them.
    n_features_in_ : int
        Features per input row.
    params_ : dict of str to ndarray
        ``bridge.*`` (and ``bridge_c.*`` for the LSTM) with "init", or
        ``merge.*`` with "merge"; ``decoder.embedding.weight``,
        ``decoder.<PyTorch RNN names>``, ``head.weight``, ``head.bias``.
    loss_curve_, validation_scores_, best_loss_, best_validation_score_, \
n_iter_, t_
        As in :class:`~rnntools.RNNClassifier`.

    Notes
    -----
    ``X`` is a 2-D array ``(n, F)``; ``y`` a list of token sequences (a
    ``str`` is a sequence of characters; a list of words works too).
    Captions are ``str`` when the training captions were ``str``. A row's
    caption never depends on which other rows share the call.
    """

    _parameter_constraints = {
        **GENERATOR_CONSTRAINTS,
        "conditioning": [StrOptions({"init", "merge"})],
    }

    def __init__(
        self,
        cell="lstm",
        hidden_size=64,
        num_layers=1,
        *,
        embedding_dim=32,
        conditioning="init",
        dropout=0.0,
        max_length=50,
        beam_width=5,
        length_penalty=0.0,
        min_frequency=1,
        max_vocabulary_size=None,
        nonlinearity="tanh",
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
        self.embedding_dim = embedding_dim
        self.conditioning = conditioning
        self.dropout = dropout
        self.max_length = max_length
        self.beam_width = beam_width
        self.length_penalty = length_penalty
        self.min_frequency = min_frequency
        self.max_vocabulary_size = max_vocabulary_size
        self.nonlinearity = nonlinearity
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

    _REQUIRED_FITTED = ("n_features_in_", "n_iter_", "t_", "loss_curve_")

    # ----------------------------------------------------------------- data
    def _check_condition(self, X, first_call):
        if isinstance(X, list) and X and not np.ndim(X[0]):
            raise ValueError(
                "X must be 2-D (n, F): one feature vector per caption, got a "
                "list of numbers. Reshape a single vector with X.reshape(1, -1)."
            )
        X = check_array(
            X, dtype=[np.float64, np.float32], input_name="X", ensure_min_samples=1
        )
        if not first_call and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} was "
                f"fitted with {self.n_features_in_}."
            )
        features = np.ascontiguousarray(X, dtype=self._compute_dtype())
        return features, None, {"n_features_in_": X.shape[1]}

    # ----------------------------------------------------------------- model
    def _projections(self):
        if self.conditioning == "merge":
            return ("merge",)
        return ("bridge", "bridge_c") if self.cell == "lstm" else ("bridge",)

    def _head_inputs(self):
        return self.hidden_size * (2 if self.conditioning == "merge" else 1)

    def _condition_params(self):
        rows = self.hidden_size
        if self.conditioning == "init":
            rows *= self.num_layers
        shapes = {}
        for name in self._projections():
            shapes[f"{name}.weight"] = (rows, self.n_features_in_)
            shapes[f"{name}.bias"] = (rows,)
        return shapes

    def _condition_forward(self, pairs, params, training):
        features = pairs.condition
        layers = self.num_layers if self.conditioning == "init" else 1
        states = [
            bridge_forward(
                features, params[f"{name}.weight"], params[f"{name}.bias"], layers
            )
            for name in self._projections()
        ]
        if self.conditioning == "merge":
            return _Condition(merge=states[0][0], cache=(features, states))
        return _Condition(
            initial_state=tuple(states) if self.cell == "lstm" else states[0],
            cache=(features, states),
        )

    def _condition_backward(
        self, condition, params, d_initial_state, d_memory, d_merge
    ):  # fmt: skip
        features, states = condition.cache
        if self.conditioning == "merge":
            d_states = (d_merge[None],)
        elif self.cell == "lstm":
            d_states = d_initial_state
        else:
            d_states = (d_initial_state,)
        grads = {}
        for name, state, d_state in zip(
            self._projections(), states, d_states, strict=True
        ):
            _, grads[f"{name}.weight"], grads[f"{name}.bias"] = bridge_backward(
                features, params[f"{name}.weight"], state, d_state
            )
        return grads

    # -------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Learn to write caption ``y[i]`` for features ``X[i]``.

        Parameters
        ----------
        X : array-like of shape (n, F)
        y : list of token sequences
            Captions, each of at least one token.
        sample_weight : array-like of shape (n,), default=None
            Weight of every token of each caption.

        Returns
        -------
        self
        """
        return self._fit_conditioned(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over the pairs; the first call learns the vocabulary.

        Returns
        -------
        self
        """
        return self._fit_conditioned(X, y, sample_weight, incremental=True)
