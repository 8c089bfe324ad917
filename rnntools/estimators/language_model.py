""":class:`RNNLanguageModel`: a recurrent language model that writes text.

Embedding → recurrent layers → linear layer → softmax over the vocabulary,
trained on next-token prediction with the epoch loop of
:class:`~rnntools.estimators._base._BaseRNN`, and decoded one step at a time
with :func:`rnntools.functional.rnn_step` (no re-running of the prefix), by
greedy search, beam search or sampling (:mod:`rnntools.decoding`).
"""

import functools
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state, check_scalar, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .. import decoding
from ..cells import GATES, NONLINEARITIES, expected_shapes, init_params
from ..functional import prepare_step, rnn_step
from ..kernels.row_invariant import row_invariant_matmul
from ..layers import (
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
)
from ..losses import log_softmax, softmax_cross_entropy
from ..vocabulary import Vocabulary
from ._base import _PREDICT_BATCH, _BaseRNN, _NonFinite

EMBEDDING = "embedding.weight"
HEAD_WEIGHT = "head.weight"
HEAD_BIAS = "head.bias"

# Prefix of the vocabulary's arrays in a model file.
_VOCABULARY_PREFIX = "vocabulary/"
_SHARED_CONSTRAINTS = {
    key: value
    for key, value in _BaseRNN._parameter_constraints.items()
    if key != "bidirectional"
}


class RNNLanguageModel(_BaseRNN):
    """Recurrent language model: autocomplete, scoring and sampling of text.

    Learns ``P(token | previous tokens)`` from a list of token sequences and
    writes continuations of prompts one token at a time, carrying the
    recurrent state from step to step (cost linear in the output length).

    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}, default="lstm"
    hidden_size : int, default=64
    num_layers : int, default=1
    embedding_dim : int, default=32
        Size of the learned token embeddings (the recurrent input).
    dropout : float in [0, 1), default=0.0
        Inverted dropout during ``fit`` only, on the input of every recurrent
        layer above the first (PyTorch's ``nn.LSTM(dropout=...)``) and on the
        features entering the output layer; masks drawn from
        ``random_state``.
    max_length : int, default=50
        Most tokens :meth:`predict` and :meth:`generate` write per prompt.
    beam_width : int, default=1
        Beam width of :meth:`predict` (1 is greedy search).
    length_penalty : float, default=0.0
        ``alpha`` of the GNMT length penalty ``((5 + length) / 6) ** alpha``
        by which beam search divides a hypothesis' log-probability; 0 ranks
        by log-probability alone, larger values favour longer outputs.
    min_frequency : int, default=1
        Tokens seen fewer times in the first ``fit`` become ``<unk>``.
    max_vocabulary_size : int, default=None
        Keep only the most frequent tokens (specials not counted).
    nonlinearity, solver, momentum, nesterovs_momentum, learning_rate_init, \
alpha, batch_size, max_iter, shuffle, tol, n_iter_no_change, early_stopping, \
validation_fraction, clip_grad_norm, random_state, verbose, warm_start, \
device, dtype
        As in :class:`~rnntools.RNNClassifier`. ``early_stopping`` scores the
        held-out sequences by their mean log-likelihood per token.
        ``device="cuda"`` is not supported yet (``NotImplementedError``).

    Attributes
    ----------
    vocabulary_ : Vocabulary
        Tokens ↔ ids, with ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` first.
    classes_ : ndarray of shape (V,)
        The vocabulary's tokens, in the column order of :meth:`predict_proba`.
    params_ : dict of str to ndarray
        ``embedding.weight`` ``(V, E)``, the recurrent layers in PyTorch's
        ``state_dict`` layout, ``head.weight`` ``(V, H)``, ``head.bias``
        ``(V,)``: the weights of ``nn.Embedding``, ``nn.LSTM`` and
        ``nn.Linear``.
    loss_curve_, validation_scores_, best_loss_, best_validation_score_, \
n_iter_, t_
        As in :class:`~rnntools.RNNClassifier`; the loss is the mean negative
        log-likelihood per token (``<eos>`` included).

    Notes
    -----
    A sequence is a ``str`` (a sequence of characters) or a list of tokens,
    all ``str`` (words) or all ``int``. Every training sequence is read as
    ``<bos> t_1 ... t_n <eos>``; the model learns to predict each token from
    the ones before it. Tokens never seen in the first ``fit`` are ``<unk>``.

    Generation never emits ``<pad>`` or ``<bos>``: the decoder's distribution
    is the model's, renormalised over the other tokens. A prompt's outputs do
    not depend on which other prompts share the call: every step computes
    each row by the same operations whatever the batch (see
    :func:`rnntools.functional.rnn_step`).
    """

    _parameter_constraints: dict = {
        **_SHARED_CONSTRAINTS,
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "beam_width": [Interval(Integral, 1, None, closed="left")],
        "length_penalty": [Interval(Real, None, None, closed="neither")],
        "min_frequency": [Interval(Integral, 1, None, closed="left")],
        "max_vocabulary_size": [Interval(Integral, 1, None, closed="left"), None],
        "cell": [StrOptions(set(GATES))],
        "nonlinearity": [StrOptions(set(NONLINEARITIES))],
    }

    def __init__(
        self,
        cell="lstm",
        hidden_size=64,
        num_layers=1,
        *,
        embedding_dim=32,
        dropout=0.0,
        max_length=50,
        beam_width=1,
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

    bidirectional = False  # a language model reads left to right only

    # ----------------------------------------------------------------- data
    def _check_cuda(self):
        if self.device == "cuda":
            raise NotImplementedError(
                "RNNLanguageModel runs on the CPU only for now: use device='cpu'."
            )

    def _encode(self, X, vocabulary=None, *, allow_empty=True):
        """Token sequences → padded ids ``<bos> t_1 ... t_n`` and targets
        ``t_1 ... t_n <eos>``.

        Returns
        -------
        inputs, targets : int64 ndarray of shape (n, T_max)
            Padded with ``<pad>``.
        lengths : int64 ndarray of shape (n,)
            ``n_i + 1``.
        """
        vocabulary = self.vocabulary_ if vocabulary is None else vocabulary
        ids = vocabulary.encode(
            vocabulary.check_sequences(X, name="X"), add_bos=True, add_eos=True
        )
        if not allow_empty:
            for index, sequence in enumerate(ids):
                if len(sequence) == 2:
                    raise ValueError(
                        f"X[{index}] is an empty sequence: a language model "
                        "learns from sequences of at least one token."
                    )
        lengths = np.array([len(sequence) - 1 for sequence in ids], dtype=np.int64)
        inputs = np.full((len(ids), lengths.max()), Vocabulary.PAD, dtype=np.int64)
        targets = np.full_like(inputs, Vocabulary.PAD)
        for row, sequence in enumerate(ids):
            inputs[row, : lengths[row]] = sequence[:-1]
            targets[row, : lengths[row]] = sequence[1:]
        return inputs, targets, lengths

    # ----------------------------------------------------------------- model
    def _rnn_params(self, params=None):
        params = self.params_ if params is None else params
        return {k: v for k, v in params.items() if k not in _OWN_KEYS}

    def _init_params(self, vocabulary_size, rng):
        dtype = self._compute_dtype()
        params = {
            EMBEDDING: rng.standard_normal(
                (vocabulary_size, self.embedding_dim)
            ).astype(dtype)  # nn.Embedding's N(0, 1)
        }
        params.update(
            init_params(
                self.cell,
                self.embedding_dim,
                self.hidden_size,
                self.num_layers,
                random_state=rng,
                dtype=dtype,
            )
        )
        bound = 1.0 / np.sqrt(self.hidden_size)  # nn.Linear's U(-1/√H, 1/√H)
        params[HEAD_WEIGHT] = rng.uniform(
            -bound, bound, (vocabulary_size, self.hidden_size)
        ).astype(dtype)
        params[HEAD_BIAS] = rng.uniform(-bound, bound, vocabulary_size).astype(dtype)
        return params

    def _initialize(self, n_outputs, rng):
        self.params_ = self._init_params(n_outputs, rng)
        self._optimizer = self._make_optimizer(self.params_)
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._reset_stopping()

    def _forward(self, inputs, lengths, params, training):
        """Embedding → layers (dropout between them) → dropout → features.

        Returns
        -------
        features : ndarray of shape (B, T, H)
            Input of the output layer, 0 at padded steps.
        cache : _LayerCaches
            The recurrent layers' (:meth:`_BaseRNN._network_forward`).
        mask : ndarray or None
            The dropout mask of the features (None without dropout).
        """
        embedded = embedding_forward(inputs, params[EMBEDDING])
        output, _, cache = self._network_forward(
            embedded, lengths, params, training, layer_by_layer=True
        )
        features, mask = self._drop(output, training)
        return features, cache, mask

    def _data_loss_and_grads(
        self, X, lengths, targets, weights, class_weights, params
    ):  # fmt: skip
        """Mean negative log-likelihood per token of one minibatch, and its
        gradients (see :meth:`_BaseRNN._loss_and_grads`)."""
        steps = X.shape[1]
        targets = targets[:, :steps]
        step_weights = np.where(
            np.arange(steps) < lengths[:, None], weights[:, None], 0.0
        )
        features, cache, mask = self._forward(X, lengths, params, training=True)
        logits = linear_forward(features, params[HEAD_WEIGHT], params[HEAD_BIAS])
        loss, d_logits, total_weight = softmax_cross_entropy(
            logits, targets, step_weights
        )
        if total_weight == 0:
            return 0.0, None, 0.0
        if not np.isfinite(loss):
            raise _NonFinite
        d_features, d_head_weight, d_head_bias = linear_backward(
            features, params[HEAD_WEIGHT], d_logits
        )
        if mask is not None:
            d_features = d_features * mask
        grads, d_embedded, _ = self._network_backward(cache, d_features)
        grads[HEAD_WEIGHT] = d_head_weight
        grads[HEAD_BIAS] = d_head_bias
        grads[EMBEDDING] = embedding_backward(X, d_embedded, params[EMBEDDING].shape[0])
        return loss, grads, total_weight

    def _log_likelihood(self, inputs, targets, lengths, weights):
        """Weighted mean log-likelihood per token, without dropout."""
        total, total_weight = 0.0, 0.0
        for batch in gen_batches(len(lengths), _PREDICT_BATCH):
            steps = int(lengths[batch].max())
            step_weights = np.where(
                np.arange(steps) < lengths[batch, None], weights[batch, None], 0.0
            )
            features, _, _ = self._forward(
                inputs[batch, :steps], lengths[batch], self.params_, training=False
            )
            logits = linear_forward(
                features, self.params_[HEAD_WEIGHT], self.params_[HEAD_BIAS]
            )
            log_proba = log_softmax(logits)
            picked = np.take_along_axis(
                log_proba, targets[batch, :steps, None], axis=2
            )[:, :, 0]
            total += float(np.dot(step_weights.ravel(), picked.ravel()))
            total_weight += float(step_weights.sum())
        if total_weight == 0:
            raise ValueError("Every sequence has zero weight: nothing to score.")
        return total / total_weight

    def _validation_score(self, X, lengths, targets, weights):
        return self._log_likelihood(X, targets, lengths, weights)

    # -------------------------------------------------------------- fitting
    def _fit_tokens(self, X, sample_weight, incremental):
        self._check_cuda()
        self._check_nonlinearity()
        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: it trains one "
                "epoch per call, with no held-out validation set."
            )
        first_call = not hasattr(self, "params_") or not (
            self.warm_start or incremental
        )
        # Validate everything before changing any attribute.
        if first_call:
            vocabulary = Vocabulary(
                min_frequency=self.min_frequency, max_size=self.max_vocabulary_size
            ).fit(X)
        else:
            vocabulary = self.vocabulary_
        inputs, targets, lengths = self._encode(X, vocabulary, allow_empty=False)
        sample_weight = _check_sample_weight(
            sample_weight, inputs, dtype=np.float64, ensure_non_negative=True
        )
        if first_call:
            self.vocabulary_ = vocabulary
            self.classes_ = np.array(vocabulary.tokens_, dtype=object)
            self._rng = check_random_state(self.random_state)
            self._initialize(len(vocabulary), self._rng)
        elif not incremental or self.best_loss_ is None:
            self._reset_stopping()

        validation = None
        if self.early_stopping:
            train, valid = self._validation_split(lengths, self._rng)
            validation = (
                inputs[valid],
                lengths[valid],
                targets[valid],
                sample_weight[valid],
            )
            inputs, lengths, targets = inputs[train], lengths[train], targets[train]
            sample_weight = sample_weight[train]
        self._run_epochs(
            inputs, lengths, targets, sample_weight, None, validation, incremental
        )
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Learn the vocabulary and the next-token model from sequences.

        Parameters
        ----------
        X : list of str, or list of sequences of str or int tokens
            Training sequences, each with at least one token.
        y : None
            Ignored (scikit-learn's convention for unsupervised estimators).
        sample_weight : array-like of shape (n,), default=None
            Weight of every token of each sequence.

        Returns
        -------
        self
        """
        return self._fit_tokens(X, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """One epoch over ``X``. The first call also learns the vocabulary;
        tokens that later calls bring for the first time are ``<unk>``.

        Returns
        -------
        self
        """
        return self._fit_tokens(X, sample_weight, incremental=True)

    # ----------------------------------------------------------- prediction
    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood per token (``<eos>`` included); higher is better.

        Parameters
        ----------
        X : list of sequences
        y : None
            Ignored.
        sample_weight : array-like of shape (n,), default=None

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        inputs, targets, lengths = self._encode(X)
        sample_weight = _check_sample_weight(
            sample_weight, inputs, dtype=np.float64, ensure_non_negative=True
        )
        return self._log_likelihood(inputs, targets, lengths, sample_weight)

    def perplexity(self, X):
        """``exp(-score(X))``: the model's perplexity per token on ``X``."""
        return float(np.exp(-self.score(X)))

    def _prepared(self):
        """The network laid out for one-step decoding."""
        params = self.params_
        return (
            prepare_step(
                self._rnn_params(params), self.cell, nonlinearity=self.nonlinearity
            ),
            params[EMBEDDING],
            np.ascontiguousarray(params[HEAD_WEIGHT].T),
            params[HEAD_BIAS],
        )

    def _step_log_proba(self, tokens, state, prepared):
        """``(log P(next | tokens, state), new state)`` for every row."""
        step, embedding, head_weight_t, head_bias = prepared
        output, state = rnn_step(embedding_forward(tokens, embedding), state, step)
        logits = np.empty((len(tokens), head_weight_t.shape[1]), dtype=output.dtype)
        row_invariant_matmul(output, head_weight_t, logits)
        logits += head_bias
        return log_softmax(logits), state

    def _prompt_states(self, X, prepared):
        """Run every prompt ``<bos> t_1 ... t_n`` through the network.

        Returns
        -------
        state
            The recurrent state of every row before its last token.
        last : int64 ndarray of shape (n,)
            Each prompt's last token (``<bos>`` for an empty prompt): the
            first input of decoding, which starts from ``state``.
        log_proba : ndarray of shape (n, V)
            ``log P(next token | prompt)``.
        """
        inputs, _, lengths = self._encode(X)
        rows = np.arange(len(lengths))
        zeros = np.zeros(
            (self.num_layers, len(lengths), self.hidden_size), self._compute_dtype()
        )
        state = (zeros, zeros) if self.cell == "lstm" else zeros
        log_proba = np.empty((len(lengths), len(self.classes_)))
        for t in range(inputs.shape[1]):
            step_log_proba, new_state = self._step_log_proba(
                inputs[:, t], state, prepared
            )
            before_last = (t < lengths - 1)[None, :, None]
            state = _map_state(
                functools.partial(np.where, before_last), new_state, state
            )
            ending = rows[lengths == t + 1]
            log_proba[ending] = step_log_proba[ending]
        return state, inputs[rows, lengths - 1], log_proba

    def predict_proba(self, X):
        """Distribution of the next token after each prompt.

        Parameters
        ----------
        X : list of sequences
            Prompts; an empty prompt gives the distribution of first tokens.

        Returns
        -------
        proba : ndarray of shape (n, V)
            Columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        _, _, log_proba = self._prompt_states(X, self._prepared())
        return np.exp(log_proba)

    def predict(self, X):
        """Greedy (or, with ``beam_width > 1``, beam-search) completion of
        each prompt, up to ``<eos>`` or ``max_length`` tokens.

        Returns
        -------
        completions : list
            Per prompt, the tokens written after it: a ``str`` for a ``str``
            prompt, else a list of tokens.
        """
        return self.generate(X)

    def generate(
        self,
        X,
        *,
        beam_width=None,
        n_best=1,
        max_length=None,
        min_length=0,
        length_penalty=None,
        temperature=None,
        top_k=None,
        top_p=None,
        random_state=None,
        return_scores=False,
    ):
        """Continue each prompt by greedy search, beam search or sampling.

        Parameters
        ----------
        X : list of sequences
            Prompts (an empty one generates from scratch).
        beam_width : int, default=None
            The constructor's ``beam_width`` if None; 1 is greedy search.
        n_best : int, default=1
            Completions returned per prompt (at most ``beam_width``).
        max_length : int, default=None
            Most tokens written per prompt; the constructor's if None.
        min_length : int, default=0
            ``<eos>`` is forbidden before this many tokens.
        length_penalty : float, default=None
            Beam search's ``alpha``; the constructor's if None.
        temperature, top_k, top_p : default=None
            Any of them selects sampling: the distribution is divided by
            ``temperature`` (default 1), cut to the ``top_k`` most likely
            tokens and to the smallest set of probability ``>= top_p``, then
            sampled. Not with ``beam_width > 1``.
        random_state : int, Generator or None, default=None
            Seed of sampling: the same seed draws the same tokens.
        return_scores : bool, default=False
            Also return each completion's log-probability (length-penalised
            for beam search, ``<eos>`` included when written).

        Returns
        -------
        completions : list
            Per prompt, a completion (``str`` for a ``str`` prompt, else a
            list of tokens); with ``n_best > 1``, a list of ``n_best`` of
            them, best first.
        scores : ndarray of shape (n,) or (n, n_best)
            Only with ``return_scores=True``.
        """
        check_is_fitted(self)
        beam_width = self.beam_width if beam_width is None else beam_width
        max_length = self.max_length if max_length is None else max_length
        alpha = self.length_penalty if length_penalty is None else length_penalty
        sampling = not (temperature is None and top_k is None and top_p is None)
        if sampling and beam_width != 1:
            raise ValueError(
                "Sampling (temperature, top_k or top_p) draws one sequence per "
                f"prompt: use beam_width=1, not {beam_width!r}."
            )
        check_scalar(beam_width, "beam_width", Integral, min_val=1)
        check_scalar(n_best, "n_best", Integral, min_val=1)
        prepared = self._prepared()
        state, last, _ = self._prompt_states(X, prepared)
        forbidden = np.array([Vocabulary.PAD, Vocabulary.BOS])

        def step(tokens, state):
            log_proba, state = self._step_log_proba(tokens, state, prepared)
            log_proba[:, forbidden] = -np.inf
            return log_softmax(log_proba), state

        common = {"eos_id": Vocabulary.EOS, "max_length": max_length}
        if beam_width > 1 or n_best > 1:
            if sampling:
                raise ValueError("n_best > 1 needs beam search, not sampling.")
            results = decoding.beam_search(
                step,
                _reorder,
                state,
                last,
                beam_width=beam_width,
                n_best=n_best,
                min_length=min_length,
                length_penalty=alpha,
                **common,
            )
            sequences = [[tokens for tokens, _ in result] for result in results]
            scores = np.array([[score for _, score in result] for result in results])
        elif sampling:
            sequences, scores = decoding.sample(
                step,
                state,
                last,
                min_length=min_length,
                temperature=1.0 if temperature is None else temperature,
                top_k=top_k,
                top_p=top_p,
                random_state=random_state,
                **common,
            )
        else:
            sequences, scores = decoding.greedy_search(
                step, state, last, min_length=min_length, **common
            )
        as_text = [isinstance(prompt, str) for prompt in X]
        if n_best > 1:
            completions = [
                [self._detokenize(tokens, text) for tokens in options]
                for options, text in zip(sequences, as_text, strict=True)
            ]
        else:
            if beam_width > 1:
                sequences = [options[0] for options in sequences]
                scores = scores[:, 0]
            completions = [
                self._detokenize(tokens, text)
                for tokens, text in zip(sequences, as_text, strict=True)
            ]
        return (completions, scores) if return_scores else completions

    def _detokenize(self, ids, as_text):
        tokens = self.vocabulary_.decode_one(ids)
        return "".join(tokens) if as_text else tokens

    # ---------------------------------------------------------- model files
    _REQUIRED_FITTED = ("n_iter_", "t_", "loss_curve_")

    def _to_model_file(self):
        arrays, document = super()._to_model_file()
        vocabulary_arrays, document["vocabulary"] = self.vocabulary_.to_arrays()
        for key, value in vocabulary_arrays.items():
            arrays[_VOCABULARY_PREFIX + key] = value
        return arrays, document

    def _from_model_file(self, arrays, document):
        self.vocabulary_ = Vocabulary.from_arrays(
            {
                name[len(_VOCABULARY_PREFIX) :]: value
                for name, value in arrays.items()
                if name.startswith(_VOCABULARY_PREFIX)
            },
            document["vocabulary"],
        )
        super()._from_model_file(arrays, document)

    def _expected_param_shapes(self):
        size = len(self.vocabulary_)
        expected = {EMBEDDING: (size, self.embedding_dim)}
        expected.update(
            expected_shapes(
                self.cell, self.embedding_dim, self.hidden_size, self.num_layers, False
            )
        )
        expected[HEAD_WEIGHT] = (size, self.hidden_size)
        expected[HEAD_BIAS] = (size,)
        return expected

    def _check_loaded_params(self):
        super()._check_loaded_params()
        self.classes_ = np.array(self.vocabulary_.tokens_, dtype=object)

    def __sklearn_tags__(self):
        tags = BaseEstimator.__sklearn_tags__(self)
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.required = False
        return tags


_OWN_KEYS = (EMBEDDING, HEAD_WEIGHT, HEAD_BIAS)


def _map_state(function, *states):
    """``function`` applied to the arrays of states (``h``, or LSTM pairs)."""
    if isinstance(states[0], tuple):
        return tuple(function(*parts) for parts in zip(*states, strict=True))
    return function(*states)


def _reorder(state, index):
    """Rows ``index`` of a recurrent state ``(L, B, H)`` (or an LSTM pair)."""
    return _map_state(lambda part: part[:, index], state)
