"""scikit-learn estimators, one file each, all trained by the epoch loop of
:mod:`rnntools.estimators._base`.

Sequence readers: :class:`RNNClassifier`, :class:`RNNRegressor`,
:class:`RNNTagger`. Sequence writers: :class:`RNNLanguageModel`, :class:`RNNSeq2Seq`,
:class:`RNNCaptioner`.
"""

from .captioner import RNNCaptioner
from .classifier import RNNClassifier
from .language_model import RNNLanguageModel
from .regressor import RNNRegressor
from .seq2seq import RNNSeq2Seq
from .tagger import RNNTagger

__all__ = [
    "RNNCaptioner",
    "RNNClassifier",
    "RNNLanguageModel",
    "RNNRegressor",
    "RNNSeq2Seq",
    "RNNTagger",
]
