""":class:`RNNSeq2Seq`: an encoder-decoder with attention (translation)."""

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import StrOptions

from .._sequences import check_sequences
from ..cells import expected_shapes, init_params
from ..layers import embedding_backward, embedding_forward
from ._generator import (
    GENERATOR_CONSTRAINTS,
    _Condition,
    _ConditionedGenerator,
    bridge_backward,
    bridge_forward,
)

ENCODER = "encoder."
SOURCE_EMBEDDING = "encoder.embedding.weight"


class RNNSeq2Seq(_ConditionedGenerator):
    """Encoder-decoder recurrent network: machine translation, and any
    sequence-to-sequence task (signals to text too).

    A (by default bidirectional) encoder reads the source; a learned bridge
    (linear + tanh) maps its final states to the decoder's initial state; the
    decoder writes the target one token at a time, attending to the encoder's
    outputs (Luong et al. 2015, global attention applied to the decoder's
    outputs, no input feeding). Trained with teacher forcing; decoded by beam
    search (:meth:`predict`), greedy search or sampling (:meth:`generate`).

    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        Cell of the encoder and the decoder.
    hidden_size : int, default=64
        ``H`` of both.
    num_layers : int, default=1
        Layers of both.
    embedding_dim : int, default=32
        Size of the source and target token embeddings.
    bidirectional_encoder : bool, default=True
        Whether the encoder reads the source both ways (its outputs are then
        ``2H`` wide).
    attention : {"general", "dot"} or None, default="general"
        Luong's score: ``h_t . W_a h_s`` or ``h_t . h_s`` (needs a
        unidirectional encoder, whose outputs are ``H`` wide); None: no
        attention, the decoder sees the source through its initial state only.
    dropout : float in [0, 1), default=0.0
        Inverted dropout during ``fit`` between the recurrent layers of the
        encoder and of the decoder, and on the output layer's input.
    max_length : int, default=50
        Most tokens written per input.
    beam_width : int, default=5
        Beam width of :meth:`predict`.
    length_penalty : float, default=0.0
        GNMT's ``alpha``: beam search ranks by log-probability divided by
        ``((5 + length) / 6) ** alpha``.
    min_frequency, max_vocabulary_size
        Of the source and target vocabularies (see
        :class:`~rnntools.RNNLanguageModel`).
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
        Target tokens; ``classes_`` lists them.
    source_vocabulary_ : Vocabulary
        Source tokens (absent when the sources are float arrays).
    n_features_in_ : int
        Features per source step (float sources), or the source embedding
        size (token sources).
    params_ : dict of str to ndarray
        ``encoder.embedding.weight``, ``encoder.<PyTorch RNN names>``,
        ``bridge.weight``/``bridge.bias`` (and ``bridge_c.*`` for the LSTM's
        cell state), ``decoder.embedding.weight``, ``decoder.<PyTorch RNN
        names>``, ``attention.weight_a`` (general), ``attention.weight_c``,
        ``head.weight``, ``head.bias``.
    loss_curve_, validation_scores_, best_loss_, best_validation_score_, \
n_iter_, t_
        As in :class:`~rnntools.RNNClassifier`.

    Notes
    -----
    ``X`` is a list of sources, each a sequence of tokens (a ``str`` is a
    sequence of characters; a list of words or of ints) or a float array
    ``(T_i, F)`` (speech or sensor signals to text); ``y`` a list of target
    token sequences. Outputs are ``str`` when the training targets were
    ``str``. Decoding never depends on which other inputs share the call.
    """

    _parameter_constraints = {
        **GENERATOR_CONSTRAINTS,
        "bidirectional_encoder": ["boolean"],
        "attention": [StrOptions({"general", "dot"}), None],
    }
    _VOCABULARIES = {
        "vocabulary_": "vocabulary/",
        "source_vocabulary_": "source_vocabulary/",
    }
    _FITTED_SCALARS = {
        **_ConditionedGenerator._FITTED_SCALARS,
        "_source_features": lambda v: isinstance(v, bool),
    }
    _REQUIRED_FITTED = ("n_features_in_", "n_iter_", "t_", "loss_curve_")

    def __init__(
        self,
        cell="lstm",
        hidden_size=64,
        num_layers=1,
        *,
        embedding_dim=32,
        bidirectional_encoder=True,
        attention="general",
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
        self.bidirectional_encoder = bidirectional_encoder
        self.attention = attention
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

    @property
    def _attention_score(self):
        return self.attention

    def _directions(self):
        return 2 if self.bidirectional_encoder else 1

    def _memory_size(self):
        return self._directions() * self.hidden_size

    def _check_fit_call(self, incremental):
        if self.attention == "dot" and self.bidirectional_encoder:
            raise ValueError(
                "attention='dot' scores h_t . h_s, which needs encoder outputs as "
                "wide as the decoder's (hidden_size); a bidirectional encoder's "
                "are twice as wide: use attention='general' or "
                "bidirectional_encoder=False."
            )
        return super()._check_fit_call(incremental)

    # ----------------------------------------------------------------- data
    def _check_condition(self, X, first_call):
        if isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
            raise TypeError(
                f"X must be a list of source sequences, got {type(X).__name__}."
            )
        if len(X) == 0:
            raise ValueError("X is empty: pass at least one source sequence.")
        features = isinstance(X[0], np.ndarray) and X[0].dtype.kind == "f"
        if not first_call and features != self._source_features:
            raise TypeError(
                "This model was fitted on "
                + ("float arrays" if self._source_features else "token sequences")
                + " as sources; X holds "
                + ("float arrays." if features else "token sequences.")
            )
        dtype = self._compute_dtype()
        if features:
            padded, lengths = check_sequences(
                X, n_features=None if first_call else self.n_features_in_,
                estimator=self,
            )  # fmt: skip
            attributes = {
                "_source_features": True,
                "n_features_in_": padded.shape[2],
                "source_vocabulary_": None,  # none: dropped by a refit
            }
            return padded.astype(dtype, copy=False), lengths, attributes
        vocabulary = (
            self._new_vocabulary(X, "X") if first_call else self.source_vocabulary_
        )
        padded, lengths = vocabulary._encode_padded(X, name="X")
        if np.any(lengths == 0):
            raise ValueError(
                f"X[{int(np.argmax(lengths == 0))}] is an empty source sequence."
            )
        attributes = {
            "_source_features": False,
            "n_features_in_": self.embedding_dim,
            "source_vocabulary_": vocabulary,
        }
        return padded, lengths, attributes

    # ----------------------------------------------------------------- model
    def _encoder_params(self, params):
        names = expected_shapes(
            self.cell,
            self.n_features_in_,
            self.hidden_size,
            self.num_layers,
            self.bidirectional_encoder,
        )
        return {name: params[ENCODER + name] for name in names}

    def _bridges(self):
        return ("bridge", "bridge_c") if self.cell == "lstm" else ("bridge",)

    def _condition_params(self):
        shapes = {}
        if not self._source_features:
            shapes[SOURCE_EMBEDDING] = (
                len(self.source_vocabulary_),
                self.embedding_dim,
            )
        for name, shape in expected_shapes(
            self.cell,
            self.n_features_in_,
            self.hidden_size,
            self.num_layers,
            self.bidirectional_encoder,
        ).items():
            shapes[ENCODER + name] = shape
        width = self.num_layers * self.hidden_size
        for bridge in self._bridges():
            shapes[f"{bridge}.weight"] = (width, self._memory_size())
            shapes[f"{bridge}.bias"] = (width,)
        return shapes

    def _init_condition_params(self, rng, dtype):
        params = {}
        if not self._source_features:
            params[SOURCE_EMBEDDING] = rng.standard_normal(
                (len(self.source_vocabulary_), self.embedding_dim)
            ).astype(dtype)
        encoder = init_params(
            self.cell,
            self.n_features_in_,
            self.hidden_size,
            self.num_layers,
            self.bidirectional_encoder,
            random_state=rng,
            dtype=dtype,
        )
        params.update({ENCODER + name: value for name, value in encoder.items()})
        return params

    def _condition_forward(self, pairs, params, training):
        if self._source_features:
            source = pairs.condition
        else:
            source = embedding_forward(pairs.condition, params[SOURCE_EMBEDDING])
        memory, final_state, encoder_cache = self._network_forward(
            source,
            pairs.condition_lengths,
            params,
            training,
            rnn_params=self._encoder_params(params),
            bidirectional=self.bidirectional_encoder,
        )
        parts = final_state if self.cell == "lstm" else (final_state,)
        directions = self._directions()
        # The last layer's final states, directions side by side: (B, D*H).
        lasts = [np.concatenate(list(part[-directions:]), axis=1) for part in parts]
        states = [
            bridge_forward(
                last, params[f"{bridge}.weight"], params[f"{bridge}.bias"],
                self.num_layers,
            )
            for last, bridge in zip(lasts, self._bridges(), strict=True)
        ]  # fmt: skip
        return _Condition(
            initial_state=tuple(states) if self.cell == "lstm" else states[0],
            memory=memory if self.attention is not None else None,
            memory_lengths=pairs.condition_lengths,
            cache=(pairs.condition, memory.shape, encoder_cache, lasts, states),
        )

    def _condition_backward(
        self, condition, params, d_initial_state, d_memory, d_merge
    ):
        ids, memory_shape, encoder_cache, lasts, states = condition.cache
        d_states = d_initial_state if self.cell == "lstm" else (d_initial_state,)
        grads = {}
        directions = self._directions()
        hidden = self.hidden_size
        d_final = []
        for bridge, last, state, d_state in zip(
            self._bridges(), lasts, states, d_states, strict=True
        ):
            d_last, grads[f"{bridge}.weight"], grads[f"{bridge}.bias"] = (
                bridge_backward(last, params[f"{bridge}.weight"], state, d_state)
            )
            d_part = np.zeros(
                (self.num_layers * directions, len(last), hidden), dtype=last.dtype
            )
            for direction in range(directions):
                d_part[-directions + direction] = d_last[
                    :, direction * hidden : (direction + 1) * hidden
                ]
            d_final.append(d_part)
        if d_memory is None:
            d_memory = np.zeros(memory_shape, dtype=lasts[0].dtype)
        encoder_grads, d_source, _ = self._network_backward(
            encoder_cache,
            np.ascontiguousarray(d_memory),
            tuple(d_final) if self.cell == "lstm" else d_final[0],
        )
        grads.update({ENCODER + name: value for name, value in encoder_grads.items()})
        if not self._source_features:
            grads[SOURCE_EMBEDDING] = embedding_backward(
                ids, d_source, params[SOURCE_EMBEDDING].shape[0]
            )
        return grads

    # -------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Learn to write ``y[i]`` from ``X[i]``.

        Parameters
        ----------
        X : list of token sequences or of float arrays (T_i, F)
            Sources.
        y : list of token sequences
            Targets, each of at least one token.
        sample_weight : array-like of shape (n,), default=None
            Weight of every target token of each pair.

        Returns
        -------
        self
        """
        return self._fit_conditioned(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over the pairs; the first call learns the vocabularies.

        Returns
        -------
        self
        """
        return self._fit_conditioned(X, y, sample_weight, incremental=True)
