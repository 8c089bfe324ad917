"""scikit-learn estimators, one file each, all trained by the epoch loop of
:mod:`rnntools.estimators._base`.

Sequence readers: :class:`RNNClassifier`, :class:`RNNRegressor`,
:class:`RNNTagger`. Sequence writer: :class:`RNNLanguageModel`.
"""

from .classifier import RNNClassifier
from .language_model import RNNLanguageModel
from .regressor import RNNRegressor
from .tagger import RNNTagger

__all__ = ["RNNClassifier", "RNNLanguageModel", "RNNRegressor", "RNNTagger"]
