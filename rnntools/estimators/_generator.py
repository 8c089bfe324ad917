"""What the three sequence writers share: one decoder, three conditionings.

:class:`_GeneratorRNN` is the decoder of :class:`~rnntools.RNNLanguageModel`,
:class:`~rnntools.RNNSeq2Seq` and :class:`~rnntools.RNNCaptioner`: target
embedding → recurrent layers (from an initial state) → optional Luong
attention over a memory → dropout → linear layer → softmax over the target
vocabulary. Each estimator says how its input conditions the decoder
(:meth:`_GeneratorRNN._condition_forward` / ``_condition_backward``: an
initial state, a memory to attend to, a vector merged before the output
layer) and how decoding starts (:meth:`_GeneratorRNN._start`); training,
scoring and decoding (greedy, beam search, sampling over
:func:`rnntools.functional.rnn_step`) are here.

Training data travel through the epoch loop of
:class:`~rnntools.estimators._base._BaseRNN` as a :class:`_Pairs`: the decoder
inputs ``<bos> y_1 ... y_n`` with whatever conditions them, indexable like
the arrays the loop slices.
"""

import functools
import os
import weakref
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state, check_scalar
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .. import decoding
from .._arrays import transposed
from .._threads import kernel_threads
from ..cells import GATES, NONLINEARITIES, expected_shapes, init_params
from ..kernels.row_invariant import row_invariant_matmul
from ..layers import (
    attention_backward,
    attention_forward,
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
)
from ..losses import log_softmax, softmax_cross_entropy
from ..vocabulary import Vocabulary
from ._base import _PREDICT_BATCH, _BaseRNN, _batches, _NonFinite
from ._decoder import DecoderArrays, wants_table

HEAD_WEIGHT = "head.weight"
HEAD_BIAS = "head.bias"
ATTENTION_A = "attention.weight_a"
ATTENTION_C = "attention.weight_c"

#: Hyperparameters of every generating estimator besides the shared ones.
GENERATOR_CONSTRAINTS = {
    **{
        key: value
        for key, value in _BaseRNN._parameter_constraints.items()
        if key != "bidirectional"
    },
    "embedding_dim": [Interval(Integral, 1, None, closed="left")],
    "max_length": [Interval(Integral, 1, None, closed="left")],
    "beam_width": [Interval(Integral, 1, None, closed="left")],
    "length_penalty": [Interval(Real, None, None, closed="neither")],
    "min_frequency": [Interval(Integral, 1, None, closed="left")],
    "max_vocabulary_size": [Interval(Integral, 1, None, closed="left"), None],
    "cell": [StrOptions(set(GATES))],
    "nonlinearity": [StrOptions(set(NONLINEARITIES))],
}


@dataclass
class _Pairs:
    """Decoder inputs and what conditions them, sliced like an array.

    Attributes
    ----------
    inputs : int64 ndarray of shape (n, T)
        ``<bos> y_1 ... y_n``, padded with ``<pad>``.
    condition : ndarray or None
        Per row: padded source ids ``(n, S)`` or features ``(n, S, F)``
        (translation), a feature vector ``(n, F)`` (captioning), None
        (language model).
    condition_lengths : int64 ndarray of shape (n,) or None
        Source lengths (translation).
    """

    inputs: np.ndarray
    condition: np.ndarray | None = None
    condition_lengths: np.ndarray | None = None

    @property
    def shape(self):
        return self.inputs.shape

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, key):
        rows, steps = key if isinstance(key, tuple) else (key, slice(None))
        condition, lengths = self.condition, self.condition_lengths
        if condition is not None:
            condition = condition[rows]
        if lengths is not None:
            lengths = lengths[rows]
            condition = condition[:, : int(lengths.max())]
        return _Pairs(self.inputs[rows, steps], condition, lengths)


@dataclass
class _Condition:
    """How a batch conditions the decoder (:meth:`_condition_forward`)."""

    initial_state: object = None  # (L, B, H), an LSTM pair, or None (zeros)
    memory: np.ndarray | None = None  # (B, S, H_mem) to attend to
    memory_lengths: np.ndarray | None = None  # (B,)
    keys_t: np.ndarray | None = None  # (B, H, S_pad): set for decoding
    merge: np.ndarray | None = None  # (B, H) joined to the output layer's input
    cache: object = None  # what _condition_backward needs


def _map_state(function, *states):
    """``function`` applied to the arrays of states (``h``, or LSTM pairs)."""
    if isinstance(states[0], tuple):
        return tuple(function(*parts) for parts in zip(*states, strict=True))
    return function(*states)


def _take_columns(part, index):
    return part[:, index]


def _reorder(state, index):
    """Rows ``index`` of a decoding state: ``(recurrent state, rows)``."""
    recurrent, rows = state
    return (
        _map_state(functools.partial(_take_columns, index=index), recurrent),
        rows[index],
    )


def bridge_forward(inputs, weight, bias, num_layers):
    """``tanh(inputs @ weight.T + bias)`` as a state ``(L, B, H)``.

    Parameters
    ----------
    inputs : ndarray of shape (B, K)
    weight : ndarray of shape (L*H, K)
    bias : ndarray of shape (L*H,)
    num_layers : int

    Returns
    -------
    state : ndarray of shape (L, B, H)
        ``state[l, b]`` is the ``l``-th block of ``H`` outputs of row ``b``.
    """
    out = np.empty((len(inputs), len(bias)), dtype=inputs.dtype)
    # Row-invariant: a sequence's decoding starts from the same bits alone
    # and in any batch.
    row_invariant_matmul(
        np.ascontiguousarray(inputs),
        transposed(weight),
        out,
        np.ascontiguousarray(bias, inputs.dtype),
    )
    np.tanh(out, out=out)
    return np.ascontiguousarray(
        out.reshape(len(inputs), num_layers, -1).transpose(1, 0, 2)
    )


def bridge_backward(inputs, weight, state, d_state):
    """Gradients of :func:`bridge_forward`.

    Returns
    -------
    d_inputs : ndarray of shape (B, K)
    d_weight : ndarray of shape (L*H, K)
    d_bias : ndarray of shape (L*H,)
    """
    batch = len(inputs)
    out = state.transpose(1, 0, 2).reshape(batch, -1)
    d_out = d_state.transpose(1, 0, 2).reshape(batch, -1) * (1 - out * out)
    return linear_backward(inputs, weight, d_out)


@dataclass
class _DecoderCache:
    """A generating estimator's decoder laid out for decoding, kept between
    calls: laying it out (validation, transposes, the token table) took
    0.21 ms of a 1.8 ms greedy captioning of 500 images.

    ``params`` is a copy of the decoder's parameters it was laid out from;
    ``layouts`` maps :func:`._decoder.wants_table` to the
    :class:`._decoder.DecoderArrays`. It serves while ``params_`` holds the
    same values (compared in full: ``fit``, ``partial_fit`` and users may
    change them in place). Kept in :data:`_DECODER_CACHES`, not in the
    estimator's attributes: decoding leaves those as they are (scikit-learn's
    ``check_dict_unchanged``), and pickles and clones do not carry it.
    """

    params: dict
    layouts: dict

    #: Decoders with more bytes of parameters are not kept (a copy of them
    #: is): their layout costs little next to their decoding.
    MAX_BYTES = 2**24

    @classmethod
    def of(cls, params, expected):
        """A cache for the keys ``expected`` of ``params``; None if too large."""
        copies = {key: np.array(params[key]) for key in expected}
        if sum(value.nbytes for value in copies.values()) > cls.MAX_BYTES:
            return None
        return cls(params=copies, layouts={})

    def holds(self, params):
        """Whether ``params`` holds the copied values, dtypes and shapes."""
        for key, saved in self.params.items():
            value = params.get(key)
            if not (
                isinstance(value, np.ndarray)
                and value.dtype == saved.dtype
                and value.shape == saved.shape
                and np.array_equal(value, saved)
            ):
                return False
        return True


#: Each generating estimator's :class:`_DecoderCache`, dropped with it.
_DECODER_CACHES = weakref.WeakKeyDictionary()


class _GeneratorRNN(_BaseRNN):
    """Base of the estimators that write token sequences.

    Subclasses define ``__init__`` (every hyperparameter explicit, as
    scikit-learn requires), ``_condition_forward``/``_condition_backward``,
    ``_condition_params``, ``_start``, ``_memory_size`` and ``fit``.
    """

    _parameter_constraints = GENERATOR_CONSTRAINTS
    bidirectional = False  # the decoder reads left to right
    #: Prefix of the decoder's parameter keys.
    _DECODER = "decoder."
    #: Vocabularies the model file keeps: attribute -> array prefix.
    _VOCABULARIES = {"vocabulary_": "vocabulary/"}
    #: Score of the attention (None: no attention).
    _attention_score = None

    # ------------------------------------------------------------- checks
    def _check_cuda(self):
        if self.device == "cuda":
            raise NotImplementedError(
                f"{type(self).__name__} runs on the CPU only for now: use device='cpu'."
            )

    def _check_fit_call(self, incremental):
        self._check_cuda()
        self._check_nonlinearity()
        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: it trains one "
                "epoch per call, with no held-out validation set."
            )
        return not hasattr(self, "params_") or not (self.warm_start or incremental)

    def _new_vocabulary(self, sequences, name):
        """A vocabulary fitted on ``sequences``; bad tokens are reported
        under ``name`` ("X" or "y")."""
        vocabulary = Vocabulary(
            min_frequency=self.min_frequency, max_size=self.max_vocabulary_size
        )
        vocabulary.check_sequences(sequences, name=name)
        return vocabulary.fit(sequences)

    # ----------------------------------------------------------------- data
    @staticmethod
    def _encode_targets(sequences, vocabulary, *, allow_empty=True, name="y"):
        """Token sequences → decoder inputs ``<bos> t_1 ... t_n`` and targets
        ``t_1 ... t_n <eos>``.

        Returns
        -------
        inputs, targets : int64 ndarray of shape (n, T_max)
            Padded with ``<pad>``.
        lengths : int64 ndarray of shape (n,)
            ``n_i + 1``.
        """
        full, lengths = vocabulary._encode_padded(
            sequences, add_bos=True, add_eos=True, name=name
        )
        if not allow_empty and np.any(lengths == 2):
            index = int(np.argmax(lengths == 2))
            raise ValueError(
                f"{name}[{index}] is an empty sequence: a model that writes "
                "sequences learns from sequences of at least one token."
            )
        lengths = lengths - 1  # <bos> t_1 ... t_n, and t_1 ... t_n <eos>
        inputs = full[:, :-1].copy()
        shorter = np.flatnonzero(lengths < inputs.shape[1])
        inputs[shorter, lengths[shorter]] = Vocabulary.PAD  # their <eos>
        targets = full[:, 1:].copy()
        return inputs, targets, lengths

    # ----------------------------------------------------------------- model
    def _key(self, name):
        return self._DECODER + name

    def _decoder_rnn_params(self, params):
        """The decoder's recurrent parameters under PyTorch's names."""
        names = expected_shapes(
            self.cell, self.embedding_dim, self.hidden_size, self.num_layers, False
        )
        return {name: params[self._key(name)] for name in names}

    def _rnn_params(self, params=None):
        return self._decoder_rnn_params(self.params_ if params is None else params)

    def _head_inputs(self):
        """Width of the output layer's input."""
        return self.hidden_size

    def _memory_size(self):
        """Width of the memory attended to (when there is attention)."""
        raise NotImplementedError

    def _expected_param_shapes(self):
        size = len(self.vocabulary_)
        hidden = self.hidden_size
        expected = {self._key("embedding.weight"): (size, self.embedding_dim)}
        for name, shape in expected_shapes(
            self.cell, self.embedding_dim, hidden, self.num_layers, False
        ).items():
            expected[self._key(name)] = shape
        if self._attention_score is not None:
            memory = self._memory_size()
            if self._attention_score == "general":
                expected[ATTENTION_A] = (hidden, memory)
            expected[ATTENTION_C] = (hidden, memory + hidden)
        expected[HEAD_WEIGHT] = (size, self._head_inputs())
        expected[HEAD_BIAS] = (size,)
        expected.update(self._condition_params())
        return expected

    def _condition_params(self):
        """Key → shape of the conditioning's own parameters."""
        return {}

    def _init_params(self, n_outputs, rng):
        """Parameters drawn as PyTorch draws them: ``N(0, 1)`` embeddings,
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for the rest."""
        dtype = self._compute_dtype()
        shapes = self._expected_param_shapes()
        names = expected_shapes(
            self.cell, self.embedding_dim, self.hidden_size, self.num_layers, False
        )
        params = self._init_condition_params(rng, dtype)
        recurrent = None
        for key, shape in shapes.items():
            name = key.removeprefix(self._DECODER)
            if key in params:
                continue
            if key.endswith("embedding.weight"):
                params[key] = rng.standard_normal(shape).astype(dtype)
            elif key.startswith(self._DECODER) and name in names:
                if recurrent is None:  # the whole decoder stack, in one draw
                    recurrent = init_params(
                        self.cell,
                        self.embedding_dim,
                        self.hidden_size,
                        self.num_layers,
                        random_state=rng,
                        dtype=dtype,
                    )
                params[key] = recurrent[name]
            else:
                fan_in = shapes[key.replace("bias", "weight")][-1]
                bound = 1.0 / np.sqrt(fan_in)
                params[key] = rng.uniform(-bound, bound, shape).astype(dtype)
        return {key: params[key] for key in shapes}

    def _init_condition_params(self, rng, dtype):
        """Parameters of the conditioning drawn before the decoder's (the
        encoder of a translation model); the others are drawn generically."""
        return {}

    def _initialize(self, n_outputs, rng):
        self.params_ = self._init_params(n_outputs, rng)
        self._optimizer = self._make_optimizer(self.params_)
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._reset_stopping()

    # ----------------------------------------------- conditioning (subclasses)
    def _condition_forward(self, pairs, params, training):
        """How ``pairs`` condition the decoder: a :class:`_Condition`."""
        return _Condition()

    def _condition_backward(
        self, condition, params, d_initial_state, d_memory, d_merge
    ):
        """Gradients of the conditioning's parameters (a dict)."""
        return {}

    # ------------------------------------------------------ training pieces
    def _decoder_forward(self, inputs, lengths, params, condition, training):
        """Decoder inputs → the output layer's input.

        Returns
        -------
        features : ndarray of shape (B, T, K)
        cache : tuple
        attention_weights : ndarray of shape (B, T, S) or None
        """
        embedded = embedding_forward(inputs, params[self._key("embedding.weight")])
        output, _, network_cache = self._network_forward(
            embedded,
            lengths,
            params,
            training,
            layer_by_layer=True,
            rnn_params=self._decoder_rnn_params(params),
            bidirectional=False,
            initial_state=condition.initial_state,
        )
        attention_cache = weights = None
        if self._attention_score is not None:
            attention_params = {
                key: params[key] for key in (ATTENTION_A, ATTENTION_C) if key in params
            }
            output, weights, attention_cache = attention_forward(
                output,
                condition.memory,
                condition.memory_lengths,
                attention_params,
                score=self._attention_score,
            )
        if condition.merge is not None:
            merged = np.broadcast_to(
                condition.merge[:, None, :],
                (*output.shape[:2], condition.merge.shape[1]),
            )
            output = np.concatenate([output, merged], axis=2)
        features, mask = self._drop(output, training)
        merged = condition.merge is not None
        return features, (network_cache, attention_cache, mask, merged), weights

    def _decoder_backward(self, inputs, params, cache, d_features):
        """Backward of :meth:`_decoder_forward`.

        Returns
        -------
        grads : dict of str to ndarray
        d_initial_state, d_memory, d_merge
            Gradients of the conditioning (None where it has none).
        """
        network_cache, attention_cache, mask, merged = cache
        if mask is not None:
            d_features = d_features * mask
        d_merge = d_memory = None
        if merged:  # the merge vector joined every step's features
            hidden = self.hidden_size
            d_merge = d_features[:, :, hidden:].sum(axis=1)
            d_features = d_features[:, :, :hidden]
        grads = {}
        if attention_cache is not None:
            d_features, d_memory, attention_grads = attention_backward(
                attention_cache, np.ascontiguousarray(d_features)
            )
            grads.update(attention_grads)
        recurrent_grads, d_embedded, d_initial = self._network_backward(
            network_cache, np.ascontiguousarray(d_features)
        )
        for name, value in recurrent_grads.items():
            grads[self._key(name)] = value
        key = self._key("embedding.weight")
        grads[key] = embedding_backward(inputs, d_embedded, params[key].shape[0])
        return grads, d_initial, d_memory, d_merge

    def _data_loss_and_grads(
        self, X, lengths, targets, weights, class_weights, params
    ):  # fmt: skip
        """Mean negative log-likelihood per target token of one minibatch,
        and its gradients (see :meth:`_BaseRNN._loss_and_grads`)."""
        steps = X.shape[1]
        targets = targets[:, :steps]
        step_weights = np.where(
            np.arange(steps) < lengths[:, None], weights[:, None], 0.0
        )
        condition = self._condition_forward(X, params, training=True)
        features, cache, _ = self._decoder_forward(
            X.inputs, lengths, params, condition, training=True
        )
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
        grads, d_initial, d_memory, d_merge = self._decoder_backward(
            X.inputs, params, cache, d_features
        )
        grads[HEAD_WEIGHT] = d_head_weight
        grads[HEAD_BIAS] = d_head_bias
        grads.update(
            self._condition_backward(condition, params, d_initial, d_memory, d_merge)
        )
        return loss, grads, total_weight

    def _log_likelihood(self, pairs, targets, lengths, weights):
        """Weighted mean log-likelihood per target token, without dropout."""
        total, total_weight = 0.0, 0.0
        params = self.params_
        with kernel_threads():  # BLAS at one thread throughout, as in fit
            for batch in _batches(len(lengths), _PREDICT_BATCH):
                steps = int(lengths[batch].max())
                step_weights = np.where(
                    np.arange(steps) < lengths[batch, None], weights[batch, None], 0.0
                )
                batch_pairs = pairs[batch, :steps]
                condition = self._condition_forward(batch_pairs, params, training=False)
                features, _, _ = self._decoder_forward(
                    batch_pairs.inputs,
                    lengths[batch],
                    params,
                    condition,
                    training=False,
                )
                logits = linear_forward(
                    features, params[HEAD_WEIGHT], params[HEAD_BIAS]
                )
                picked = np.take_along_axis(
                    log_softmax(logits), targets[batch, :steps, None], axis=2
                )[:, :, 0]
                total += float(np.dot(step_weights.ravel(), picked.ravel()))
                total_weight += float(step_weights.sum())
        if total_weight == 0:
            raise ValueError("Every sequence has zero weight: nothing to score.")
        return total / total_weight

    def _validation_score(self, X, lengths, targets, weights):
        return self._log_likelihood(X, targets, lengths, weights)

    def _fit_pairs(self, pairs, targets, lengths, sample_weight, incremental):
        """The epoch loop over validated pairs (attributes already set)."""
        sample_weight = _check_sample_weight(
            sample_weight, pairs.inputs, dtype=np.float64, ensure_non_negative=True
        )
        validation = None
        if self.early_stopping:
            train, valid = self._validation_split(lengths, self._rng)
            validation = (
                pairs[valid],
                lengths[valid],
                targets[valid],
                sample_weight[valid],
            )
            pairs, lengths, targets = pairs[train], lengths[train], targets[train]
            sample_weight = sample_weight[train]
        self._run_epochs(
            pairs, lengths, targets, sample_weight, None, validation, incremental
        )
        return self

    def _start_fit(self, first_call, incremental, vocabulary):
        """Set the target vocabulary and the parameters of a first call."""
        if first_call:
            self.vocabulary_ = vocabulary
            self.classes_ = np.array(vocabulary.tokens_, dtype=object)
            self._rng = check_random_state(self.random_state)
            self._initialize(len(vocabulary), self._rng)
        elif not incremental or self.best_loss_ is None:
            self._reset_stopping()

    # ------------------------------------------------------------- decoding
    def _prepared(self, rows=0):
        """The decoder laid out for decoding (:class:`._decoder.DecoderArrays`),
        for about ``rows`` row-steps.

        Kept between calls (:class:`_DecoderCache`) while the decoder's
        parameters hold the same values.
        """
        params = self.params_
        expected = self._expected_param_shapes()
        # The decoding kernels trust every shape (no bounds checks): an array
        # of params_ replaced by hand must not reach them.
        for key, shape in expected.items():
            found = np.shape(params[key]) if key in params else None
            if found != shape:
                raise ValueError(
                    f"params_[{key!r}] has shape {found}, expected {shape} for "
                    "this model's hyperparameters and vocabularies."
                )
        table = wants_table(expected[self._key("embedding.weight")][0], rows)
        try:
            cache = _DECODER_CACHES.get(self)
        except TypeError:  # a subclass made unhashable (__eq__ alone): no cache
            return self._lay_out(params, rows)
        if cache is None or not cache.holds(params):
            cache = _DecoderCache.of(params, expected)
            if cache is None:  # too large to keep
                _DECODER_CACHES.pop(self, None)
                return self._lay_out(params, rows)
            _DECODER_CACHES[self] = cache
        prepared = cache.layouts.get(table)
        if prepared is None:
            # From the cache's own copy: the layout is of the values compared.
            prepared = self._lay_out(cache.params, rows)
            cache.layouts[table] = prepared
        return prepared

    def _lay_out(self, params, rows):
        return DecoderArrays.from_params(
            params,
            cell=self.cell,
            nonlinearity=self.nonlinearity,
            rnn_params=self._decoder_rnn_params(params),
            keys={
                "embedding": self._key("embedding.weight"),
                "head_weight": HEAD_WEIGHT,
                "head_bias": HEAD_BIAS,
                "attention_a": ATTENTION_A,
                "attention_c": ATTENTION_C,
            },
            attention=self._attention_score,
            rows=rows,
        )

    def _step_log_proba(
        self, tokens, state, prepared, start, weights_out=None, forbidden=None
    ):  # fmt: skip
        """``(log P(next | tokens, state), new state)`` for every row.

        With ``forbidden`` (token ids), the distribution is the model's
        renormalised over the other tokens (what decoding samples from).

        ``state`` is ``(recurrent state, rows)``: ``rows`` index the
        per-sequence conditioning in ``start`` (memory, merge vector), so
        beams reorder by indexing both. Every product is row-invariant: a
        row's result never depends on the other rows. The log-probabilities
        are float64.
        """
        recurrent, rows = state
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        weights = None
        if weights_out is not None:
            weights = np.empty(
                (len(tokens), start.memory.shape[1]), prepared.step.dtype
            )
            weights_out.append(weights)
        log_probs, recurrent = prepared.step_rows(
            tokens, rows, recurrent, prepared.kernel_model(start, forbidden), weights
        )
        return log_probs, (recurrent, rows)

    def _start(self, X, prepared):
        """How decoding starts for every input of ``X``.

        Returns
        -------
        condition : _Condition
            ``initial_state`` (decoder state before the first input), and the
            per-sequence ``memory``/``memory_lengths``/``merge``.
        first : int64 ndarray of shape (n,)
            The first decoder input of every row.
        as_text : list of bool
            Whether each output is joined into a ``str``.
        """
        raise NotImplementedError

    def _zero_state(self, batch):
        zeros = np.zeros(
            (self.num_layers, batch, self.hidden_size), self._compute_dtype()
        )
        return (zeros, zeros) if self.cell == "lstm" else zeros

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
        return_attention=False,
    ):
        """Write an output for every input by greedy search, beam search or
        sampling.

        Parameters
        ----------
        X : list
            Inputs (see ``fit``).
        beam_width : int, default=None
            The constructor's ``beam_width`` if None (1 when sampling); 1 is
            greedy search.
        n_best : int, default=1
            Outputs returned per input (at most ``beam_width``).
        max_length : int, default=None
            Most tokens written per input; the constructor's if None.
        min_length : int, default=0
            ``<eos>`` is forbidden before this many tokens.
        length_penalty : float, default=None
            Beam search's ``alpha`` (GNMT's ``((5 + len) / 6) ** alpha``);
            the constructor's if None.
        temperature, top_k, top_p : default=None
            Any of them selects sampling: the distribution is divided by
            ``temperature`` (default 1), cut to the ``top_k`` most likely
            tokens and to the smallest set of probability ``>= top_p``, then
            sampled. Not with ``beam_width > 1``.
        random_state : int, Generator or None, default=None
            Seed of sampling: the same seed draws the same tokens.
        return_scores : bool, default=False
            Also return each output's log-probability (length-penalised for
            beam search, ``<eos>`` included when written).
        return_attention : bool, default=False
            Also return, per output, its attention weights: an array
            ``(len(output), S)`` over the source positions (translation with
            attention only; with ``n_best > 1``, for the best output).

        Returns
        -------
        outputs : list
            Per input, the tokens written (a ``str`` where the input or the
            training targets are text), or with ``n_best > 1`` a list of
            ``n_best`` of them, best first.
        scores : ndarray of shape (n,) or (n, n_best)
            Only with ``return_scores=True``. Where the model gives fewer than
            ``n_best`` distinct outputs a non-zero probability, an input has
            fewer outputs: its missing scores are ``-inf``, and columns that
            no input fills are left out.
        attention : list of ndarray
            Only with ``return_attention=True``.
        """
        check_is_fitted(self)
        sampling = not (temperature is None and top_k is None and top_p is None)
        if beam_width is None:
            beam_width = 1 if sampling else self.beam_width
        max_length = self.max_length if max_length is None else max_length
        alpha = self.length_penalty if length_penalty is None else length_penalty
        check_scalar(beam_width, "beam_width", Integral, min_val=1)
        check_scalar(n_best, "n_best", Integral, min_val=1)
        # Checked even where the search does not use them (greedy search, no
        # sampling): a bad value is a mistake whichever search runs.
        alpha = decoding._check_real(alpha, "length_penalty")
        if random_state is not None:
            decoding._check_random_state(random_state)
        if sampling and (beam_width != 1 or n_best != 1):
            raise ValueError(
                "Sampling (temperature, top_k or top_p) draws one sequence per "
                f"input: use beam_width=1 and n_best=1, not {beam_width!r} and "
                f"{n_best!r}."
            )
        if return_attention and self._attention_score is None:
            raise ValueError(
                f"return_attention=True needs attention; this {type(self).__name__} "
                "has none."
            )
        decoding._check_lengths(Vocabulary.EOS, max_length, min_length)
        inputs = len(X) if hasattr(X, "__len__") else 0
        _check_fits_in_memory(inputs, beam_width, max_length)
        prepared = self._prepared(rows=inputs * beam_width * max_length)
        start, first, as_text = self._start(X, prepared)
        state = (start.initial_state, np.arange(len(first)))
        forbidden = np.array([Vocabulary.PAD, Vocabulary.BOS])

        def step(tokens, state):
            return self._step_log_proba(
                tokens, state, prepared, start, forbidden=forbidden
            )

        common = {"eos_id": Vocabulary.EOS, "max_length": max_length}
        if beam_width > 1 or n_best > 1:
            beam_width, n_best, alpha = decoding._check_beam(beam_width, n_best, alpha)
            # As decoding.beam_search(step, _reorder, state, first, ...) does
            # it, inside the kernels (tests/test_generation_kernels.py).
            tokens, lengths, scores, counts = prepared.beam(
                first,
                state[1],
                start.initial_state,
                prepared.kernel_model(start, forbidden),
                eos=Vocabulary.EOS,
                max_length=max_length,
                min_length=min_length,
                beam_width=beam_width,
                n_best=n_best,
                alpha=alpha,
            )
            found = int(counts.max())  # < n_best where fewer are possible
            options = self._detokenize_rows(
                tokens[:, :found].reshape(-1, max_length),
                lengths[:, :found].reshape(-1),
                np.repeat(as_text, found),
            )
            if n_best == 1:
                outputs, scores = options, scores[:, 0]
            else:
                outputs = [
                    options[n * found : n * found + count]
                    for n, count in enumerate(counts.tolist())
                ]
                scores = scores[:, :found]
            best, sequences = (tokens[:, 0], lengths[:, 0]), None
        elif sampling:
            sequences, scores = decoding.sample(
                step,
                state,
                first,
                min_length=min_length,
                temperature=1.0 if temperature is None else temperature,
                top_k=top_k,
                top_p=top_p,
                random_state=random_state,
                **common,
            )
            outputs = self._detokenize(sequences, as_text)
        else:
            emitted, lengths, scores = prepared.greedy(
                first,
                state[1],
                start.initial_state,
                prepared.kernel_model(start, forbidden),
                eos=Vocabulary.EOS,
                max_length=max_length,
                min_length=min_length,
            )
            outputs = self._detokenize_rows(emitted, lengths, as_text)
            best, sequences = (emitted, lengths), None
        result = [outputs]
        if return_scores:
            result.append(scores)
        if return_attention:
            if sequences is None:  # 500 arrays cost 0.1 ms: made only if needed
                sequences = [row[:length] for row, length in zip(*best, strict=True)]
            result.append(self._attention_of(start, first, sequences, prepared))
        return result[0] if len(result) == 1 else tuple(result)

    def _attention_of(self, start, first, sequences, prepared):
        """Attention weights of the decoder over each row's written tokens
        (teacher-forced through the same steps, <eos> excluded)."""
        attention = []
        for row, tokens in enumerate(sequences):
            inputs = np.concatenate([[first[row]], tokens[:-1]]).astype(np.int64)
            state = (
                _map_state(
                    functools.partial(_take_columns, index=[row]), start.initial_state
                ),
                np.array([row]),
            )
            weights = []
            for token in inputs[: len(tokens)]:
                _, state = self._step_log_proba(
                    np.array([token]), state, prepared, start, weights
                )
            length = int(start.memory_lengths[row])
            attention.append(
                np.concatenate(weights)[:, :length]
                if weights
                else np.zeros((0, length), dtype=self._compute_dtype())
            )
        return attention

    def _detokenize(self, sequences, as_text):
        """Token lists of the id arrays ``sequences`` (of any lengths), as
        :meth:`_detokenize_rows`."""
        lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
        ids = np.zeros((len(sequences), lengths.max(initial=0)), dtype=np.int64)
        for row, sequence in zip(ids, sequences, strict=True):
            row[: len(sequence)] = sequence
        return self._detokenize_rows(ids, lengths, as_text)

    def _detokenize_rows(self, ids, lengths, as_text):
        """Token lists of the rows of ``ids`` (``(N, T)`` ids, of which row
        ``n`` holds ``lengths[n]``), joined into a ``str`` where ``as_text``.

        The ids come from the decoder: in range, and never ``<pad>``,
        ``<bos>`` or ``<eos>`` (forbidden, or cut off), so they are looked up
        all at once, unchecked (checking each row cost more than decoding
        500 captions); the ids past each row's length must be valid ids too
        (they are looked up, then dropped): the whole block at once and one
        ``del`` per row cost half of cutting the rows out first (500 captions
        of 10 words: 36 against 76 µs).
        """
        rows = self.vocabulary_._token_array()[ids].tolist()
        for row, length in zip(rows, lengths.tolist(), strict=True):
            del row[length:]
        return [
            "".join(row) if text else row
            for row, text in zip(rows, as_text, strict=True)
        ]

    def predict(self, X):
        """Greedy (or, with ``beam_width > 1``, beam-search) output for every
        input, up to ``<eos>`` or ``max_length`` tokens (see :meth:`generate`).
        """
        return self.generate(X)

    # ---------------------------------------------------------- model files
    _REQUIRED_FITTED = ("n_iter_", "t_", "loss_curve_")

    def _to_model_file(self):
        arrays, document = super()._to_model_file()
        for attribute, prefix in self._VOCABULARIES.items():
            if not hasattr(self, attribute):  # a source of features: none
                continue
            vocabulary_arrays, meta = getattr(self, attribute).to_arrays()
            document[prefix.rstrip("/")] = meta
            for key, value in vocabulary_arrays.items():
                arrays[prefix + key] = value
        return arrays, document

    def _from_model_file(self, arrays, document):
        for attribute, prefix in self._VOCABULARIES.items():
            if attribute != "vocabulary_" and prefix.rstrip("/") not in document:
                continue
            vocabulary = Vocabulary.from_arrays(
                {
                    name[len(prefix) :]: value
                    for name, value in arrays.items()
                    if name.startswith(prefix)
                },
                document[prefix.rstrip("/")],
            )
            setattr(self, attribute, vocabulary)
        super()._from_model_file(arrays, document)

    def _check_loaded_params(self):
        super()._check_loaded_params()
        self.classes_ = np.array(self.vocabulary_.tokens_, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = False
        tags.input_tags.string = True
        return tags


def state_where(mask, new, old):
    """Rows of ``new`` where ``mask`` (shape ``(1, B, 1)``), else ``old``."""
    return _map_state(functools.partial(np.where, mask), new, old)


class _ConditionedGenerator(_GeneratorRNN):
    """Base of the estimators that write ``y`` given ``X`` (translation,
    captioning): fitting on pairs, BLEU scoring, decoding from ``<bos>``."""

    _FITTED_SCALARS = {
        **_BaseRNN._FITTED_SCALARS,
        "_text_output": lambda v: isinstance(v, bool),
    }

    def _check_condition(self, X, first_call):
        """Validate the inputs ``X``.

        Returns
        -------
        condition : ndarray
            Per row (see :class:`_Pairs`), in the compute dtype if float.
        condition_lengths : int64 ndarray of shape (n,) or None
        attributes : dict
            Fitted attributes to set on a first call.
        """
        raise NotImplementedError

    def _fit_conditioned(self, X, y, sample_weight, incremental):
        first_call = self._check_fit_call(incremental)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y "
                "is None."
            )
        # Validate everything before changing any attribute.
        condition, condition_lengths, attributes = self._check_condition(X, first_call)
        vocabulary = self._new_vocabulary(y, "y") if first_call else self.vocabulary_
        inputs, targets, lengths = self._encode_targets(
            y, vocabulary, allow_empty=False
        )
        if len(inputs) != len(condition):
            raise ValueError(
                f"X has {len(condition)} inputs but y has {len(inputs)} sequences."
            )
        if first_call:
            attributes["_text_output"] = all(isinstance(item, str) for item in y)
            for key, value in attributes.items():
                if value is None:  # absent for this input (a refit may drop it)
                    self.__dict__.pop(key, None)
                else:
                    setattr(self, key, value)
        self._start_fit(first_call, incremental, vocabulary)
        pairs = _Pairs(inputs, condition, condition_lengths)
        return self._fit_pairs(pairs, targets, lengths, sample_weight, incremental)

    def score(self, X, y, sample_weight=None):
        """Corpus BLEU (0-100) of ``predict(X)`` against the references ``y``.

        sacrebleu's corpus BLEU (:func:`rnntools.metrics.corpus_bleu`) over
        the tokens: characters for ``str`` targets, the tokens themselves
        otherwise. ``y[i]`` may be one reference or a list of references.

        Parameters
        ----------
        X : inputs (see ``fit``)
        y : list of token sequences
        sample_weight : None
            BLEU is a corpus statistic: weights are not supported.

        Returns
        -------
        score : float
        """
        from ..metrics import corpus_bleu

        if sample_weight is not None:
            raise ValueError(
                "score is corpus BLEU, which does not weigh sentences: pass "
                "sample_weight=None."
            )
        predictions = self.predict(X)

        def tokens(sequence):
            return list(sequence) if isinstance(sequence, str) else sequence

        def several(reference):
            """Whether ``reference`` lists several references."""
            if not isinstance(reference, (list, tuple)) or not reference:
                return False
            if self._text_output:  # a str is one reference
                return True
            return isinstance(reference[0], (list, tuple, np.ndarray))

        references = [
            [tokens(option) for option in reference]
            if several(reference)
            else tokens(reference)
            for reference in y
        ]
        return corpus_bleu(references, [tokens(p) for p in predictions])

    def _start(self, X, prepared):
        check_is_fitted(self)
        condition, condition_lengths, _ = self._check_condition(X, first_call=False)
        rows = len(condition)
        pairs = _Pairs(np.zeros((rows, 1), np.int64), condition, condition_lengths)
        start = self._condition_forward(pairs, self.params_, training=False)
        if start.memory is not None:
            start.memory = np.ascontiguousarray(start.memory)
            start.keys_t = prepared.attention_keys(start.memory)
        if start.initial_state is None:
            start.initial_state = self._zero_state(rows)
        first = np.full(rows, Vocabulary.BOS, dtype=np.int64)
        return start, first, [self._text_output] * rows


def _check_fits_in_memory(inputs, beam_width, max_length):
    """A ``ValueError`` naming ``max_length`` when the search's token buffers
    alone (``inputs * beam_width * max_length`` int64 tokens, a lower bound of
    what it allocates) exceed the machine's physical memory, rather than
    NumPy's ``MemoryError`` from deep inside the search."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return
    needed = max(inputs, 1) * beam_width * max_length * np.dtype(np.int64).itemsize
    if needed > physical:
        raise ValueError(
            f"max_length={max_length} is too large: decoding {max(inputs, 1)} "
            f"input(s) with beam_width={beam_width} keeps at least "
            f"{needed / 2**30:.3g} GiB of tokens, more than this machine's "
            f"{physical / 2**30:.3g} GiB of memory."
        )
