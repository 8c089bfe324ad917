"""Hypothesis strategies shared by the test suite.

Hypothesis draws the *structure* of a problem (cell, sizes, lengths, which
optional inputs are given) and a seed; the arrays themselves come from
``numpy.random.default_rng(seed)``, so a failing example prints as a short,
readable :class:`RNNProblem` and shrinks towards small shapes.
"""

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from naive import make_params

CELLS = ("rnn", "lstm", "gru")
NONLINEARITIES = ("tanh", "relu")


@dataclass(frozen=True)
class RNNArrays:
    """Concrete inputs of one problem.

    Attributes
    ----------
    x : ndarray, shape (B, T, I)
    params : dict of str to ndarray
        PyTorch ``state_dict`` layout, ``U(-1/sqrt(H), 1/sqrt(H))`` entries.
    lengths : ndarray of int64, shape (B,), or None
    initial_state : ndarray or tuple of ndarray, or None
        ``(L*D, B, H)``, a pair of them for lstm.
    d_output : ndarray, shape (B, T, D*H)
        A random upstream gradient of the output. It is non-zero at padded
        steps too, where it must be ignored.
    d_final_state : ndarray or tuple of ndarray
        A random upstream gradient of the final state, same form as it.
    """

    x: np.ndarray
    params: dict
    lengths: np.ndarray | None
    initial_state: np.ndarray | tuple | None
    d_output: np.ndarray
    d_final_state: np.ndarray | tuple


@dataclass(frozen=True)
class RNNProblem:
    """The structure of one forward/backward problem.

    Attributes
    ----------
    cell : {"rnn", "lstm", "gru"}
    nonlinearity : {"tanh", "relu"}
        Always "tanh" for lstm and gru.
    num_layers : int
        ``L``.
    bidirectional : bool
    batch_size, seq_len, input_size, hidden_size : int
        ``B``, ``T``, ``I``, ``H``.
    lengths : tuple of int or None
        ``B`` lengths in ``[1, T]``, or None for full-length sequences.
    has_initial_state : bool
        Whether :meth:`make_arrays` draws an initial state (else it is None).
    seed : int
        Seed of the arrays.
    """

    cell: str
    nonlinearity: str
    num_layers: int
    bidirectional: bool
    batch_size: int
    seq_len: int
    input_size: int
    hidden_size: int
    lengths: tuple[int, ...] | None
    has_initial_state: bool
    seed: int

    @property
    def num_directions(self):
        """``D``: 2 if bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def state_shape(self):
        """``(L*D, B, H)``, the shape of ``h_0``, ``h_n`` (and ``c_0``, ``c_n``)."""
        return (
            self.num_layers * self.num_directions,
            self.batch_size,
            self.hidden_size,
        )

    def make_arrays(self, dtype=np.float64):
        """Draw the problem's arrays from ``default_rng(seed)``.

        Parameters
        ----------
        dtype : dtype, default float64

        Returns
        -------
        RNNArrays
            ``x``, the upstream gradients and the initial state are standard
            normal, the parameters come from :func:`naive.make_params`.
        """
        rng = np.random.default_rng(self.seed)
        params = make_params(
            self.cell,
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bidirectional,
            rng,
            dtype=dtype,
        )

        def normal(*shape):
            return rng.standard_normal(shape).astype(dtype)

        def state():
            if self.cell == "lstm":
                return normal(*self.state_shape), normal(*self.state_shape)
            return normal(*self.state_shape)

        x = normal(self.batch_size, self.seq_len, self.input_size)
        initial_state = state() if self.has_initial_state else None
        d_output = normal(
            self.batch_size, self.seq_len, self.num_directions * self.hidden_size
        )
        d_final_state = state()
        lengths = None if self.lengths is None else np.array(self.lengths, np.int64)
        return RNNArrays(x, params, lengths, initial_state, d_output, d_final_state)

    def forward_kwargs(self, arrays):
        """Keyword arguments of ``naive_forward`` / ``rnn_forward`` besides x, params.

        Parameters
        ----------
        arrays : RNNArrays
            From :meth:`make_arrays`.

        Returns
        -------
        dict
            ``cell``, ``nonlinearity``, ``bidirectional``, ``lengths`` and
            ``initial_state``.
        """
        return {
            "cell": self.cell,
            "nonlinearity": self.nonlinearity,
            "bidirectional": self.bidirectional,
            "lengths": arrays.lengths,
            "initial_state": arrays.initial_state,
        }


@st.composite
def rnn_problems(
    draw,
    *,
    cells=CELLS,
    nonlinearities=NONLINEARITIES,
    min_layers=1,
    max_layers=3,
    bidirectional=None,
    max_batch=4,
    max_seq_len=6,
    max_input=5,
    max_hidden=5,
    ragged=None,
    with_initial_state=None,
):
    """Small RNN problems for property and finite-difference tests.

    Parameters
    ----------
    cells : sequence of {"rnn", "lstm", "gru"}
        Cells to draw from.
    nonlinearities : sequence of {"tanh", "relu"}
        Activations drawn for the rnn.
    min_layers, max_layers : int
        Range of ``L``.
    bidirectional, ragged, with_initial_state : bool or None
        Fix whether the problem is bidirectional, has ``lengths`` (each drawn
        in ``[1, T]``), and has an initial state; None draws it.
    max_batch, max_seq_len, max_input, max_hidden : int
        Upper bounds of ``B``, ``T``, ``I``, ``H`` (the lower bound is 1).

    Returns
    -------
    SearchStrategy of RNNProblem
    """
    cell = draw(st.sampled_from(cells))
    nonlinearity = draw(st.sampled_from(nonlinearities)) if cell == "rnn" else "tanh"

    def flag(fixed):
        return draw(st.booleans()) if fixed is None else fixed

    batch_size = draw(st.integers(1, max_batch))
    seq_len = draw(st.integers(1, max_seq_len))
    lengths = None
    if flag(ragged):
        lengths = tuple(
            draw(
                st.lists(
                    st.integers(1, seq_len), min_size=batch_size, max_size=batch_size
                )
            )
        )
    return RNNProblem(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=draw(st.integers(min_layers, max_layers)),
        bidirectional=flag(bidirectional),
        batch_size=batch_size,
        seq_len=seq_len,
        input_size=draw(st.integers(1, max_input)),
        hidden_size=draw(st.integers(1, max_hidden)),
        lengths=lengths,
        has_initial_state=flag(with_initial_state),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@dataclass(frozen=True)
class DecodingProblem:
    """A decoding problem on a random Markov model (``tests/test_decoding.py``).

    The model's next-token distribution depends on the step, the token fed and
    the token before it: its table of log-probabilities has shape
    ``(max_length, V + 1, V + 1, V)``, token ``V`` standing for ``<bos>``.

    Attributes
    ----------
    vocab_size : int
        ``V``, eos included.
    batch_size : int
        ``N``.
    eos_id : int
        In ``[0, V)``.
    max_length, min_length : int
        ``0 <= min_length <= max_length``, ``max_length >= 1``.
    beam_width, n_best : int
        ``1 <= n_best <= beam_width``.
    alpha : float
        Length penalty of beam search.
    dtype : {"float32", "float64"}
        Dtype of the model's log-probabilities.
    seed : int
        Seed of the table and the first tokens.
    """

    vocab_size: int
    batch_size: int
    eos_id: int
    max_length: int
    min_length: int
    beam_width: int
    n_best: int
    alpha: float
    dtype: str
    seed: int

    def make_table(self):
        """Normalised log-probabilities ``(max_length, V + 1, V + 1, V)``.

        Log-softmax of standard normal logits times 2, drawn from
        ``default_rng(seed)``, computed in float64 and then cast to ``dtype``.
        """
        rng = np.random.default_rng(self.seed)
        shape = (
            self.max_length,
            self.vocab_size + 1,
            self.vocab_size + 1,
            self.vocab_size,
        )
        logits = 2.0 * rng.standard_normal(shape)
        logits -= logits.max(axis=-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        return log_probs.astype(self.dtype)

    def make_first_tokens(self):
        """First tokens ``(N,)`` in ``[0, V]`` (``V`` is ``<bos>``)."""
        rng = np.random.default_rng([self.seed, 1])
        return rng.integers(0, self.vocab_size + 1, self.batch_size)


@st.composite
def decoding_problems(
    draw,
    *,
    min_vocab=3,
    max_vocab=6,
    max_batch=4,
    max_length=6,
    max_beam=4,
    min_alpha=0.0,
    max_alpha=1.0,
    max_live_prefixes=None,
):
    """Small decoding problems for the property tests of ``rnntools.decoding``.

    Parameters
    ----------
    min_vocab, max_vocab : int
        Range of ``V``.
    max_batch, max_length, max_beam : int
        Upper bounds of ``N``, ``max_length`` and ``beam_width`` (the lower
        bound is 1).
    min_alpha, max_alpha : float
        Range of the length penalty ``alpha``.
    max_live_prefixes : int or None
        When given, ``max_length`` is drawn such that ``(V - 1) ** max_length``,
        the number of eos-free sequences of that length, is at most this: small
        enough to enumerate, or to keep every prefix in the beam.

    Returns
    -------
    SearchStrategy of DecodingProblem
    """
    vocab_size = draw(st.integers(min_vocab, max_vocab))
    longest = max_length
    if max_live_prefixes is not None:
        while longest > 1 and (vocab_size - 1) ** longest > max_live_prefixes:
            longest -= 1
    length = draw(st.integers(1, longest))
    beam_width = draw(st.integers(1, max_beam))
    return DecodingProblem(
        vocab_size=vocab_size,
        batch_size=draw(st.integers(1, max_batch)),
        eos_id=draw(st.integers(0, vocab_size - 1)),
        max_length=length,
        min_length=draw(st.integers(0, length)),
        beam_width=beam_width,
        n_best=draw(st.integers(1, beam_width)),
        alpha=draw(st.floats(min_alpha, max_alpha)),
        dtype=draw(st.sampled_from(["float64", "float32"])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@dataclass(frozen=True)
class EstimatorProblem:
    """A small training problem of an estimator (``test_estimators_gradients.py``).

    Hypothesis draws the structure; the data (sequences, targets, sample
    weights, class weights) come from ``default_rng(seed)`` in the test module,
    which knows what each estimator's ``y`` looks like.

    Attributes
    ----------
    cell : {"rnn", "lstm", "gru"}
    num_layers : int
    bidirectional : bool
        Always False for the language model.
    hidden_size : int
    n_features : int
        ``F`` of the sequences; the ``embedding_dim`` of a language model.
    lengths : tuple of int
        Length of every sequence (characters of a language model's ``str``);
        ragged: the first is the longest, the second shorter.
    n_outputs : int
        Classes (classifier, tagger), targets ``k`` (regressor; 1 means a 1-D
        ``y``) or letters of the alphabet (language model).
    alpha : float
        L2 penalty, 0 or positive.
    class_weight : {None, "balanced", "dict"}
        ``"dict"`` asks the test for a random dict of class weights.
    zero_weight_index : int
        The sequence whose sample weight is 0 (the others are random, > 0).
    seed : int
    """

    cell: str
    num_layers: int
    bidirectional: bool
    hidden_size: int
    n_features: int
    lengths: tuple[int, ...]
    n_outputs: int
    alpha: float
    class_weight: str | None
    zero_weight_index: int
    seed: int


@st.composite
def estimator_problems(
    draw,
    *,
    bidirectional=None,
    class_weights=(None,),
    min_outputs=1,
    max_outputs=3,
    max_layers=2,
    max_hidden=4,
    max_features=3,
    max_batch=4,
    max_seq_len=5,
):
    """Small, ragged, weighted estimator problems for gradient checks.

    Parameters
    ----------
    bidirectional : bool or None
        Fixed, or drawn when None.
    class_weights : sequence of {None, "balanced", "dict"}
        Class-weight kinds to draw from.
    min_outputs, max_outputs : int
        Range of ``n_outputs``.
    max_layers, max_hidden, max_features : int
        Upper bounds of ``num_layers``, ``hidden_size``, ``n_features``.
    max_batch, max_seq_len : int
        Upper bounds of the number of sequences (at least 2) and of their
        length (the longest is at least 2, so that the batch is ragged).

    Returns
    -------
    SearchStrategy of EstimatorProblem
    """
    longest = draw(st.integers(2, max_seq_len))
    others = draw(st.lists(st.integers(1, longest), max_size=max_batch - 2))
    lengths = (longest, draw(st.integers(1, longest - 1)), *others)
    return EstimatorProblem(
        cell=draw(st.sampled_from(CELLS)),
        num_layers=draw(st.integers(1, max_layers)),
        bidirectional=draw(st.booleans()) if bidirectional is None else bidirectional,
        hidden_size=draw(st.integers(1, max_hidden)),
        n_features=draw(st.integers(1, max_features)),
        lengths=lengths,
        n_outputs=draw(st.integers(min_outputs, max_outputs)),
        alpha=draw(st.one_of(st.just(0.0), st.floats(0.01, 10.0))),
        class_weight=draw(st.sampled_from(class_weights)),
        zero_weight_index=draw(st.integers(0, len(lengths) - 1)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@dataclass(frozen=True)
class Seq2SeqProblem:
    """A small training problem of :class:`~rnntools.RNNSeq2Seq`
    (``tests/test_seq2seq.py``).

    Attributes
    ----------
    cell : {"rnn", "lstm", "gru"}
    num_layers : int
        Of the encoder and of the decoder.
    hidden_size, embedding_dim : int
    bidirectional_encoder : bool
    attention : {"general", "dot"} or None
        ``"dot"`` only with a unidirectional encoder.
    n_features : int
        ``F`` of float-array sources; 0 for token sources (``str``).
    source_lengths, target_lengths : tuple of int
        One per pair; ragged: the first source is the longest, the second
        shorter.
    n_letters : int
        Size of the alphabet the sources and targets are drawn from.
    alpha : float
        L2 penalty, 0 or positive.
    zero_weight_index : int
        The pair whose sample weight is 0 (the others are random, > 0).
    seed : int
    """

    cell: str
    num_layers: int
    hidden_size: int
    embedding_dim: int
    bidirectional_encoder: bool
    attention: str | None
    n_features: int
    source_lengths: tuple[int, ...]
    target_lengths: tuple[int, ...]
    n_letters: int
    alpha: float
    zero_weight_index: int
    seed: int


def _ragged_lengths(draw, count, longest):
    """``count`` lengths in ``[1, longest]``: the first is ``longest``, the
    second shorter."""
    others = draw(
        st.lists(st.integers(1, longest), min_size=count - 2, max_size=count - 2)
    )
    return (longest, draw(st.integers(1, longest - 1)), *others)


def _penalty(draw):
    return draw(st.one_of(st.just(0.0), st.floats(0.01, 10.0)))


@st.composite
def seq2seq_problems(
    draw, *, max_layers=2, max_hidden=3, max_features=3, max_batch=4, max_seq_len=4
):
    """Small, ragged, weighted translation problems for gradient checks.

    Parameters
    ----------
    max_layers, max_hidden, max_features : int
        Upper bounds of ``num_layers``, ``hidden_size`` (and
        ``embedding_dim``), ``n_features``.
    max_batch, max_seq_len : int
        Upper bounds of the number of pairs (at least 2) and of the source and
        target lengths (the longest source is at least 2).

    Returns
    -------
    SearchStrategy of Seq2SeqProblem
    """
    batch = draw(st.integers(2, max_batch))
    bidirectional = draw(st.booleans())
    attentions = ["general", None] if bidirectional else ["general", "dot", None]
    return Seq2SeqProblem(
        cell=draw(st.sampled_from(CELLS)),
        num_layers=draw(st.integers(1, max_layers)),
        hidden_size=draw(st.integers(1, max_hidden)),
        embedding_dim=draw(st.integers(1, max_hidden)),
        bidirectional_encoder=bidirectional,
        attention=draw(st.sampled_from(attentions)),
        n_features=draw(st.sampled_from([0, *range(1, max_features + 1)])),
        source_lengths=_ragged_lengths(draw, batch, draw(st.integers(2, max_seq_len))),
        target_lengths=tuple(
            draw(st.lists(st.integers(1, max_seq_len), min_size=batch, max_size=batch))
        ),
        n_letters=draw(st.integers(2, 3)),
        alpha=_penalty(draw),
        zero_weight_index=draw(st.integers(0, batch - 1)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@dataclass(frozen=True)
class CaptionerProblem:
    """A small training problem of :class:`~rnntools.RNNCaptioner`
    (``tests/test_captioner.py``).

    Attributes
    ----------
    cell : {"rnn", "lstm", "gru"}
    num_layers, hidden_size, embedding_dim : int
    conditioning : {"init", "merge"}
    n_features : int
        ``F`` of the feature vectors.
    target_lengths : tuple of int
        One caption per row; ragged: the first is the longest, the second
        shorter.
    n_letters : int
        Size of the captions' alphabet.
    alpha : float
    zero_weight_index : int
    seed : int
    """

    cell: str
    num_layers: int
    hidden_size: int
    embedding_dim: int
    conditioning: str
    n_features: int
    target_lengths: tuple[int, ...]
    n_letters: int
    alpha: float
    zero_weight_index: int
    seed: int


@st.composite
def captioner_problems(
    draw, *, max_layers=2, max_hidden=3, max_features=4, max_batch=4, max_seq_len=4
):
    """Small, ragged, weighted captioning problems for gradient checks.

    Returns
    -------
    SearchStrategy of CaptionerProblem
    """
    batch = draw(st.integers(2, max_batch))
    return CaptionerProblem(
        cell=draw(st.sampled_from(CELLS)),
        num_layers=draw(st.integers(1, max_layers)),
        hidden_size=draw(st.integers(1, max_hidden)),
        embedding_dim=draw(st.integers(1, max_hidden)),
        conditioning=draw(st.sampled_from(["init", "merge"])),
        n_features=draw(st.integers(1, max_features)),
        target_lengths=_ragged_lengths(draw, batch, draw(st.integers(2, max_seq_len))),
        n_letters=draw(st.integers(2, 3)),
        alpha=_penalty(draw),
        zero_weight_index=draw(st.integers(0, batch - 1)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )
