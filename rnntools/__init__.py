"""rnntools: recurrent neural networks (RNN, LSTM, GRU) on Numba kernels."""

from .cells import init_params
from .functional import rnn_backward, rnn_forward

__all__ = ["init_params", "rnn_backward", "rnn_forward"]
__version__ = "0.1.0"
