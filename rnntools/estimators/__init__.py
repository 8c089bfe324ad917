"""scikit-learn estimators: one recurrent network each, trained by the epoch
loop of :mod:`rnntools.estimators._base`.

Sequence readers: :class:`RNNClassifier`, :class:`RNNRegressor`,
:class:`RNNTagger`. Sequence writer: :class:`RNNLanguageModel`.
"""

from ._base import RNNClassifier, RNNRegressor, RNNTagger
from .language_model import RNNLanguageModel

__all__ = ["RNNClassifier", "RNNLanguageModel", "RNNRegressor", "RNNTagger"]
