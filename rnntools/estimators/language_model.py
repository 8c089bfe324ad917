""":class:`RNNLanguageModel`: a recurrent language model that writes text.

Embedding → recurrent layers → linear layer → softmax over the vocabulary,
trained on next-token prediction with the epoch loop of
:class:`~rnntools.estimators._base._BaseRNN`. Prompts run through the
recurrent layers in one forward pass; their continuations are decoded one step
at a time (no re-running of the prefix), by greedy search, beam search or
sampling (:mod:`rnntools.decoding`).
"""

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ..layers import embedding_forward
from ._generator import _Condition, _GeneratorRNN, _map_state, _Pairs, state_where

#: Prompts are stepped through the decoder, a call per token, when the
#: longest holds at most this many tokens before its last; otherwise they run
#: through one forward pass per layer. Running the prompts of a 128-unit LSTM
#: on the Xeon VM: stepped, 86 us for one prompt of 2 tokens and 30 us per
#: token more; in one pass, 180-260 us whatever the length (one prompt of 2
#: to 16 tokens); the same break-even (6-8 tokens) for 4 and 16 prompts.
_STEPPED_PROMPT_TOKENS = 6


class RNNLanguageModel(_GeneratorRNN):
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

    _DECODER = ""  # PyTorch's names: embedding.weight, weight_ih_l0, ...

    # -------------------------------------------------------------- fitting
    def _fit_tokens(self, X, sample_weight, incremental):
        first_call = self._check_fit_call(incremental)
        # Validate everything before changing any attribute.
        vocabulary = self._new_vocabulary(X, "X") if first_call else self.vocabulary_
        inputs, targets, lengths = self._encode_targets(
            X, vocabulary, allow_empty=False, name="X"
        )
        self._start_fit(first_call, incremental, vocabulary)
        return self._fit_pairs(
            _Pairs(inputs), targets, lengths, sample_weight, incremental
        )

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
        inputs, targets, lengths = self._encode_targets(X, self.vocabulary_, name="X")
        sample_weight = _check_sample_weight(
            sample_weight, inputs, dtype=np.float64, ensure_non_negative=True
        )
        return self._log_likelihood(_Pairs(inputs), targets, lengths, sample_weight)

    def perplexity(self, X):
        """``exp(-score(X))``: the model's perplexity per token on ``X``."""
        return float(np.exp(-self.score(X)))

    def _prompt_states(self, X, prepared):
        """Run every prompt ``<bos> t_1 ... t_n`` but its last token through
        the recurrent layers.

        A few prompt tokens are stepped through the decoder (``prepared``),
        a call per token; more go through one :meth:`_network_forward` (a
        compiled pass per layer over every prompt, each stopping at its own
        length), whose fixed cost is larger but which runs no Python per
        token (see :data:`_STEPPED_PROMPT_TOKENS`). Both give the same
        bits: every product is row-invariant, and the decoder's step does the
        forward's arithmetic.

        Returns
        -------
        state
            The recurrent state of every row before its last token.
        last : int64 ndarray of shape (n,)
            Each prompt's last token (``<bos>`` for an empty prompt): the
            first input of decoding, which starts from ``state``.
        """
        inputs, _, lengths = self._encode_targets(X, self.vocabulary_, name="X")
        state = self._zero_state(len(lengths))
        before = lengths - 1  # tokens before the last
        read = np.flatnonzero(before)  # prompts with any (others: zero state)
        steps = int(before.max())
        if steps <= _STEPPED_PROMPT_TOKENS:
            rows, no_condition = np.arange(len(lengths)), _Condition()
            for t in range(steps):
                _, (new_state, _) = self._step_log_proba(
                    inputs[:, t], (state, rows), prepared, no_condition
                )
                state = state_where((t < before)[None, :, None], new_state, state)
        else:
            params = self.params_
            embedded = embedding_forward(
                inputs[read, :steps], params[self._key("embedding.weight")]
            )
            _, final, _ = self._network_forward(
                embedded,
                before[read],
                params,
                False,
                layer_by_layer=True,
                rnn_params=self._decoder_rnn_params(params),
                bidirectional=False,
            )

            def put(zeros, part):
                zeros = zeros.copy()  # LSTM states share one array of zeros
                zeros[:, read] = part
                return zeros

            state = _map_state(put, state, final)
        return state, inputs[np.arange(len(lengths)), lengths - 1]

    def _start(self, X, prepared):
        state, last = self._prompt_states(X, prepared)
        return (
            _Condition(initial_state=state),
            last,
            [isinstance(prompt, str) for prompt in X],
        )

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
        prepared = self._prepared()  # checks the parameters' shapes first
        state, last = self._prompt_states(X, prepared)
        log_proba, _ = self._step_log_proba(
            last, (state, np.arange(len(last))), prepared, _Condition()
        )
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

        As :meth:`_GeneratorRNN.generate` (a language model has no attention):
        ``X`` is a list of prompts (an empty one generates from scratch); a
        ``str`` prompt gives a ``str`` completion.
        """
        return super().generate(
            X,
            beam_width=beam_width,
            n_best=n_best,
            max_length=max_length,
            min_length=min_length,
            length_penalty=length_penalty,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            random_state=random_state,
            return_scores=return_scores,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags
