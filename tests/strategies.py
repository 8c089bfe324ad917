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
