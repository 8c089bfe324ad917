"""rnntools: recurrent neural networks (RNN, LSTM, GRU) on Numba kernels.

The functional API (:mod:`rnntools.functional`) needs NumPy and Numba only;
the scikit-learn estimators, the preprocessing and the model files are
imported on first use (``rnntools.RNNClassifier`` imports scikit-learn then),
so ``import rnntools.functional`` stays quick.
"""

import importlib

from .cells import init_params
from .functional import rnn_backward, rnn_forward

# Public name -> the module that defines it, imported on first access.
_LAZY = {
    "RNNCaptioner": ".estimators",
    "RNNClassifier": ".estimators",
    "RNNLanguageModel": ".estimators",
    "RNNRegressor": ".estimators",
    "RNNSeq2Seq": ".estimators",
    "RNNTagger": ".estimators",
    "SequenceScaler": ".preprocessing",
    "load_model": ".io",
    "save_model": ".io",
}

__all__ = [
    "RNNCaptioner",
    "RNNClassifier",
    "RNNLanguageModel",
    "RNNRegressor",
    "RNNSeq2Seq",
    "RNNTagger",
    "SequenceScaler",
    "init_params",
    "load_model",
    "rnn_backward",
    "rnn_forward",
    "save_model",
]
__version__ = "0.1.0"


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
