"""The generating estimators' fused decoding kernels against the reference
decoders of :mod:`rnntools.decoding`.

``generate`` runs greedy and beam search inside ``@njit`` kernels
(:mod:`rnntools.kernels.decoder`: a block of rows per thread, no Python
between steps). :mod:`rnntools.decoding` runs the same searches in NumPy over
any ``step(tokens, state)`` function, and its own tests check them against
exhaustive search. Here both run on the same fitted models, whose weights are
scaled up so that ``<eos>`` comes at varied steps, early stops happen and
ties are rare but possible: the tokens must be identical and the scores equal
to rounding (the length penalty's power may round differently in Python and
in LLVM: 1e-12 relative).
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from rnntools import RNNCaptioner, RNNLanguageModel, RNNSeq2Seq, decoding
from rnntools.estimators._generator import _reorder
from rnntools.vocabulary import Vocabulary

SCORE_RTOL = 1e-12

TEXTS = ["abc", "cab", "bca", "aabbc", "cc", "bacab", "a", "cbcb"]


def _fit(model, *data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(*data)


def _sharpened(model, scale, seed):
    """``model`` with its weights scaled by ``scale`` and jittered."""
    rng = np.random.default_rng(seed)
    model.params_ = {
        key: (value * scale + 0.3 * rng.standard_normal(value.shape)).astype(
            value.dtype
        )
        for key, value in model.params_.items()
    }
    return model


def _language_model():
    model = RNNLanguageModel(
        cell="lstm", hidden_size=12, num_layers=2, embedding_dim=5, max_iter=2,
        random_state=0,
    )  # fmt: skip
    return _fit(model, TEXTS), ["ab", "c", "", "bca"]


def _translator(cell, attention, bidirectional):
    model = RNNSeq2Seq(
        cell=cell, hidden_size=8, embedding_dim=4, attention=attention,
        bidirectional_encoder=bidirectional, max_iter=2, random_state=0,
    )  # fmt: skip
    return _fit(model, TEXTS, [text[::-1] for text in TEXTS]), TEXTS[:5]


def _captioner(cell, conditioning):
    rng = np.random.default_rng(0)
    features = rng.standard_normal((len(TEXTS), 3)).astype(np.float32)
    model = RNNCaptioner(
        cell=cell, hidden_size=8, embedding_dim=4, conditioning=conditioning,
        max_iter=2, random_state=0,
    )  # fmt: skip
    return _fit(model, features, TEXTS), features[:5]


MODELS = {
    "lm-lstm-2-layers": _language_model,
    "seq2seq-gru-general-bi": lambda: _translator("gru", "general", True),
    "seq2seq-rnn-dot": lambda: _translator("rnn", "dot", False),
    "seq2seq-lstm-none": lambda: _translator("lstm", None, True),
    "captioner-lstm-merge": lambda: _captioner("lstm", "merge"),
    "captioner-gru-init": lambda: _captioner("gru", "init"),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request):
    return MODELS[request.param]()


def _reference_step(model, X):
    """What ``generate`` decodes with, as a ``step`` for :mod:`rnntools.decoding`."""
    prepared = model._prepared()
    start, first, _ = model._start(X, prepared)
    forbidden = np.array([Vocabulary.PAD, Vocabulary.BOS])

    def step(tokens, state):
        return model._step_log_proba(
            tokens, state, prepared, start, forbidden=forbidden
        )

    return step, (start.initial_state, np.arange(len(first))), first


def _written(model, ids, as_text):
    """The outputs ``generate`` returns for the token ids ``ids``."""
    return model._detokenize(list(ids), as_text)


def _as_text(model, X):
    return model._start(X, model._prepared())[2]


@pytest.mark.parametrize(
    ("beam_width", "n_best", "alpha", "max_length", "min_length"),
    [(3, 1, 0.0, 6, 0), (4, 3, 0.7, 7, 2), (2, 2, -0.5, 5, 0), (5, 2, 1.5, 4, 4)],
)
@pytest.mark.parametrize(("scale", "seed"), [(1.0, 0), (4.0, 1), (8.0, 2)])
def test_fused_beam_search_is_decoding_beam_search(
    fitted, beam_width, n_best, alpha, max_length, min_length, scale, seed
):
    model, X = fitted
    model = _sharpened(model, scale, seed)
    step, state, first = _reference_step(model, X)
    expected = decoding.beam_search(
        step, _reorder, state, first, eos_id=Vocabulary.EOS,
        max_length=max_length, min_length=min_length, beam_width=beam_width,
        n_best=n_best, length_penalty=alpha,
    )  # fmt: skip
    options, scores = model.generate(
        X, beam_width=beam_width, n_best=n_best, length_penalty=alpha,
        max_length=max_length, min_length=min_length, return_scores=True,
    )  # fmt: skip
    if n_best == 1:
        options, scores = [[option] for option in options], scores[:, None]
    as_text = _as_text(model, X)
    for row, (reference, found, found_scores) in enumerate(
        zip(expected, options, scores, strict=True)
    ):
        assert len(found) == len(reference)
        written = _written(
            model, [tokens for tokens, _ in reference], [as_text[row]] * len(found)
        )
        assert found == written
        for (_, score), found_score in zip(reference, found_scores, strict=False):
            assert found_score == pytest.approx(score, rel=SCORE_RTOL)


@pytest.mark.parametrize(("max_length", "min_length"), [(6, 0), (5, 3), (3, 3)])
@pytest.mark.parametrize(("scale", "seed"), [(1.0, 3), (6.0, 4)])
def test_fused_greedy_search_is_decoding_greedy_search(
    fitted, max_length, min_length, scale, seed
):
    model, X = fitted
    model = _sharpened(model, scale, seed)
    step, state, first = _reference_step(model, X)
    expected, expected_scores = decoding.greedy_search(
        step, state, first, eos_id=Vocabulary.EOS, max_length=max_length,
        min_length=min_length,
    )  # fmt: skip
    outputs, scores = model.generate(
        X, beam_width=1, max_length=max_length, min_length=min_length,
        return_scores=True,
    )  # fmt: skip
    assert outputs == _written(model, expected, _as_text(model, X))
    # The same float64 sums of the same log-probabilities, in the same order.
    np.testing.assert_array_equal(scores, expected_scores)


@pytest.mark.parametrize("key", ["embedding.weight", "head.weight"])
def test_a_reshaped_parameter_is_refused_before_the_kernels(key):
    # The kernels have no bounds checks: a wrong shape must stop in Python.
    model, X = _language_model()
    rows, cols = model.params_[key].shape
    model.params_[key] = np.zeros((rows, cols + 3), model.params_[key].dtype)
    with pytest.raises(ValueError, match=rf"params_\['{key}'\] has shape"):
        model.generate(X)
    with pytest.raises(ValueError, match=rf"params_\['{key}'\] has shape"):
        model.predict_proba(X)
