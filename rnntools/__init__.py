"""rnntools: recurrent neural networks (RNN, LSTM, GRU) on Numba kernels."""

from .cells import init_params
from .estimators import RNNClassifier, RNNLanguageModel, RNNRegressor, RNNTagger
from .functional import rnn_backward, rnn_forward
from .io import load_model, save_model

__all__ = [
    "RNNClassifier",
    "RNNLanguageModel",
    "RNNRegressor",
    "RNNTagger",
    "init_params",
    "load_model",
    "rnn_backward",
    "rnn_forward",
    "save_model",
]
__version__ = "0.1.0"
