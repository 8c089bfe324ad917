"""rnntools: recurrent neural networks (RNN, LSTM, GRU) on Numba kernels."""

from .cells import init_params
from .estimators import RNNClassifier, RNNRegressor, RNNTagger
from .functional import rnn_backward, rnn_forward

__all__ = [
    "RNNClassifier",
    "RNNRegressor",
    "RNNTagger",
    "init_params",
    "rnn_backward",
    "rnn_forward",
]
__version__ = "0.1.0"
