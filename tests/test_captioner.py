"""RNNCaptioner: gradients, PyTorch parity, learning, decoding, persistence, bad input.

* The training loss (the seam ``_loss_and_grads``, its arguments captured
  from a real one-epoch ``fit`` as in ``test_estimators_gradients.py``) is
  checked in float64 against central differences for every parameter array:
  the conditioning projections (``bridge``/``bridge_c`` or ``merge``), the
  word embedding, the decoder and the output layer, on problems drawn by
  hypothesis (cell, layers, sizes, conditioning, ragged captions,
  ``alpha``, a zero sample weight).
* The same loss and gradients equal those of the equivalent PyTorch model:
  ``init``, ``h_0 = tanh(W x + b)`` for every layer (``c_0`` by a second
  projection); ``merge``, the output layer reads ``[h_t; tanh(W_m x + b_m)]``.
* Both conditionings learn to caption feature vectors; decoding keeps the
  invariants of part 1; persistence, scikit-learn and bad input.
"""

import pickle
import warnings

import numpy as np
import pytest
from helpers import (
    assert_matches_torch,
    teacher_forced,
    torch_bridge,
    torch_decoder_loss,
    torch_leaves,
)
from hypothesis import example, given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from strategies import CaptionerProblem, captioner_problems
from test_estimators_gradients import (
    TORCH_FLOOR,
    TORCH_RTOL,
    captured_arguments,
    check_loss_and_gradients,
    network_kwargs,
)

from rnntools import RNNCaptioner, load_model, save_model
from rnntools.decoding import length_penalty as wu_penalty
from rnntools.estimators import _decoder
from rnntools.estimators._generator import _DECODER_CACHES, _DecoderCache
from rnntools.metrics import corpus_bleu

pytestmark = pytest.mark.filterwarnings(
    f"ignore::{ConvergenceWarning.__module__}.{ConvergenceWarning.__name__}"
)

ALPHABET = "abc"
RECURRENT = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def quiet_fit(model, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y, **kwargs)


# ------------------------------------------------- finite-difference checks
def problem_data(problem):
    """Standard normal features, ``str`` captions and sample weights with a
    zero, drawn from ``default_rng(problem.seed)``."""
    rng = np.random.default_rng(problem.seed)
    letters = list(ALPHABET[: problem.n_letters])
    X = rng.standard_normal((len(problem.target_lengths), problem.n_features))
    y = ["".join(rng.choice(letters, length)) for length in problem.target_lengths]
    weights = rng.uniform(0.5, 2.0, len(y))
    weights[problem.zero_weight_index] = 0.0
    return X, y, weights


def make_estimator(problem):
    return RNNCaptioner(
        embedding_dim=problem.embedding_dim,
        conditioning=problem.conditioning,
        **network_kwargs(problem),
    )


def expected_keys(problem):
    """Every parameter group the model must have, named independently."""
    keys = {"decoder.embedding.weight", "head.weight", "head.bias"}
    keys |= {
        f"decoder.{kind}_l{layer}"
        for kind in RECURRENT
        for layer in range(problem.num_layers)
    }
    if problem.conditioning == "merge":
        projections = ("merge",)
    else:
        projections = ("bridge", "bridge_c") if problem.cell == "lstm" else ("bridge",)
    keys |= {f"{name}.{part}" for name in projections for part in ("weight", "bias")}
    return keys


INIT_EXAMPLE = CaptionerProblem(
    cell="lstm",
    num_layers=2,
    hidden_size=3,
    embedding_dim=2,
    conditioning="init",
    n_features=3,
    target_lengths=(4, 2, 3),
    n_letters=3,
    alpha=0.5,
    zero_weight_index=1,
    seed=0,
)
MERGE_EXAMPLE = CaptionerProblem(
    cell="gru",
    num_layers=2,
    hidden_size=2,
    embedding_dim=3,
    conditioning="merge",
    n_features=4,
    target_lengths=(3, 1, 2, 3),
    n_letters=2,
    alpha=0.0,
    zero_weight_index=0,
    seed=1,
)


# Tolerances: FD_STEP, FD_RTOL and FD_ROUNDING of test_estimators_gradients.py,
# explained there: the loss is of the same kind (a weighted mean cross-entropy
# over a few tokens, |L| ~ 1). Measured over 150 problems: at most 0.018 of
# the tolerance, while a wrong term (a projection's bias gradient 1% off, half
# the gradient of the merged vector) fails it.
@given(problem=captioner_problems())
@example(problem=INIT_EXAMPLE)
@example(problem=MERGE_EXAMPLE)
def test_gradients_match_finite_differences(problem):
    """Every caption token, ``<eos>`` included, weighs its row's weight."""
    X, y, weights = problem_data(problem)
    estimator = make_estimator(problem)
    arguments, params = captured_arguments(estimator, X, y, weights)
    _, lengths, _, batch_weights, class_weights = arguments
    assert class_weights is None
    assert set(params) == expected_keys(problem)
    np.testing.assert_array_equal(np.sort(lengths), np.sort(problem.target_lengths) + 1)
    total_weight = np.dot(batch_weights, lengths)
    check_loss_and_gradients(estimator, arguments, params, total_weight, problem.seed)


# ----------------------------------------------------------- PyTorch parity
# Tolerances of test_estimators_gradients.py (TORCH_RTOL, TORCH_FLOOR): both
# sides compute in float64 and differ by rounding only.
TORCH_CAPTIONS = ["bac", "a", "cbaab", "ab", "c"]
TORCH_WEIGHTS = [1.0, 0.0, 2.5, 0.5, 1.5]


def torch_captioner_loss(torch, estimator, arguments, leaves):
    """The same model's loss in PyTorch."""
    pairs = arguments[0]
    features = torch.from_numpy(pairs.condition)
    if estimator.conditioning == "merge":
        merge = torch.tanh(
            torch.nn.functional.linear(
                features, leaves["merge.weight"], leaves["merge.bias"]
            )
        )
        return torch_decoder_loss(
            torch, estimator.cell, leaves, arguments, None, merge=merge
        )
    bridges = ("bridge", "bridge_c") if estimator.cell == "lstm" else ("bridge",)
    states = [
        torch_bridge(torch, leaves, name, features, estimator.num_layers)
        for name in bridges
    ]
    initial_state = tuple(states) if estimator.cell == "lstm" else states[0]
    return torch_decoder_loss(torch, estimator.cell, leaves, arguments, initial_state)


@pytest.mark.torch
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("conditioning", ["init", "merge"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_loss_and_gradients_match_torch(cell, conditioning, num_layers):
    torch = pytest.importorskip("torch")
    problem = CaptionerProblem(
        cell=cell,
        num_layers=num_layers,
        hidden_size=3,
        embedding_dim=2,
        conditioning=conditioning,
        n_features=4,
        target_lengths=tuple(map(len, TORCH_CAPTIONS)),
        n_letters=3,
        alpha=0.0 if num_layers == 1 else 0.6,
        zero_weight_index=1,
        seed=0,
    )
    X = np.random.default_rng(0).standard_normal((len(TORCH_CAPTIONS), 4))
    estimator = make_estimator(problem)
    arguments, params = captured_arguments(estimator, X, TORCH_CAPTIONS, TORCH_WEIGHTS)
    assert set(params) == expected_keys(problem)
    loss, grads, total_weight = estimator._loss_and_grads(*arguments, params)
    leaves = torch_leaves(torch, params)
    torch_loss = torch_captioner_loss(torch, estimator, arguments, leaves)
    penalty = sum((leaf**2).sum() for key, leaf in leaves.items() if "weight" in key)
    torch_loss = torch_loss + problem.alpha / 2 * penalty / total_weight
    assert_matches_torch(loss, grads, torch_loss, leaves, TORCH_RTOL, TORCH_FLOOR)


# ------------------------------------------------------------------ learning
WORDS = "zero one two three four five six seven eight nine".split()
CENTRES = np.random.default_rng(0).standard_normal((len(WORDS), 12))


def photos(n, seed):
    """Noisy feature vectors of ten classes and their captions, "a photo of a
    <class>" as lists of words."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(WORDS), n)
    X = CENTRES[labels] + 0.3 * rng.standard_normal((n, CENTRES.shape[1]))
    return X, [["a", "photo", "of", "a", WORDS[label]] for label in labels]


X_TRAIN, Y_TRAIN = photos(300, seed=1)
X_TEST, Y_TEST = photos(100, seed=2)


@pytest.fixture(scope="module", params=["init", "merge"])
def captioner(request):
    model = RNNCaptioner(
        "gru",
        hidden_size=32,
        embedding_dim=8,
        conditioning=request.param,
        max_iter=20,
        batch_size=16,
        learning_rate_init=0.01,
        beam_width=3,
        max_length=10,
        random_state=0,
    )
    return quiet_fit(model, X_TRAIN, Y_TRAIN)


@pytest.fixture(scope="module")
def model64():
    """A float64 model, briefly trained on character captions (its
    distributions spread out, its scores checkable to float64 rounding)."""
    model = RNNCaptioner(
        "lstm",
        hidden_size=8,
        embedding_dim=4,
        num_layers=2,
        max_iter=3,
        max_length=7,
        beam_width=4,
        random_state=0,
        dtype="float64",
    )
    captions = [list(" ".join(words[-2:])) for words in Y_TRAIN[:100]]
    return quiet_fit(model, X_TRAIN[:100], captions)


def test_both_conditionings_learn_the_captions(captioner):
    predictions = captioner.predict(X_TEST)
    # Ten well separated classes: a model that learned them captions nearly
    # every held-out vector exactly (chance: 1 in 10).
    exact = np.mean([p == r for p, r in zip(predictions, Y_TEST, strict=True)])
    assert exact >= 0.95
    bleu = captioner.score(X_TEST, Y_TEST)
    assert bleu >= 95
    assert bleu == corpus_bleu(Y_TEST, predictions)
    assert captioner.loss_curve_[-1] < captioner.loss_curve_[0] / 10


def test_text_captions_come_back_as_text():
    captions = ["cat" if x[0] > 0 else "dog" for x in X_TRAIN[:60]]
    model = quiet_fit(
        RNNCaptioner(hidden_size=8, embedding_dim=4, max_iter=2, random_state=0),
        X_TRAIN[:60],
        captions,
    )
    predictions = model.predict(X_TEST[:5])
    assert all(isinstance(p, str) for p in predictions)
    assert model.score(X_TEST[:5], captions[:5]) == corpus_bleu(
        [list(c) for c in captions[:5]], [list(p) for p in predictions]
    )


# ------------------------------------------------------------------ decoding
# model64 computes in float64: its decoding steps and the teacher-forced
# forward pass differ by rounding only, ~1e-15 per log-probability summed
# over at most 8 of them.
SCORE_ATOL = 1e-10


def test_greedy_is_the_argmax_chain_with_its_log_probability(model64):
    X = X_TEST[:8]
    outputs, scores = model64.generate(X, beam_width=1, return_scores=True)
    forced = teacher_forced(model64, X, outputs)
    assert forced["attention"] is None
    for output, score, ids, log_probs in zip(
        outputs, scores, forced["ids"], forced["log_probs"], strict=True
    ):
        finished = len(output) < model64.max_length
        steps = len(output) + finished
        np.testing.assert_array_equal(ids[:steps], log_probs[:steps].argmax(axis=1))
        assert score == pytest.approx(
            log_probs[np.arange(steps), ids[:steps]].sum(), abs=SCORE_ATOL
        )


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_n_best_are_distinct_sorted_and_scored_by_the_model(model64, alpha):
    X = X_TEST[:5]
    options, scores = model64.generate(
        X, beam_width=4, n_best=3, length_penalty=alpha, return_scores=True
    )
    assert scores.shape == (len(X), 3)
    for row, candidates in enumerate(options):
        assert len({tuple(c) for c in candidates}) == 3
        assert np.all(np.diff(scores[row]) <= 0)
        forced = teacher_forced(model64, np.repeat(X[row : row + 1], 3, 0), candidates)
        for candidate, score, ids, log_probs in zip(
            candidates, scores[row], forced["ids"], forced["log_probs"], strict=True
        ):
            finished = len(candidate) < model64.max_length
            steps = len(candidate) + finished
            expected = log_probs[np.arange(steps), ids[:steps]].sum()
            assert score == pytest.approx(
                expected / wu_penalty(steps, alpha), abs=SCORE_ATOL
            )


@given(
    indices=st.lists(st.integers(0, 19), min_size=1, max_size=6),
    beam=st.sampled_from([1, 3]),
)
def test_a_row_is_captioned_the_same_alone_and_in_any_batch(captioner, indices, beam):
    batch = X_TEST[indices]
    together, scores = captioner.generate(batch, beam_width=beam, return_scores=True)
    for i, features in enumerate(batch):
        alone, score = captioner.generate(
            features[None], beam_width=beam, return_scores=True
        )
        assert alone[0] == together[i]
        assert score[0] == scores[i]  # bit for bit


def test_decoding_in_chunks_that_fit_in_cache_gives_the_same_bits(
    captioner, monkeypatch
):
    # Each thread decodes its inputs in chunks whose states and scratch fit
    # in L2; an input's tokens and scores must not depend on its chunk.
    batch = X_TEST[:12]
    expected = {
        beam: captioner.generate(
            batch, beam_width=beam, n_best=beam, return_scores=True
        )
        for beam in (1, 3)
    }
    decoder = captioner._prepared(rows=len(batch))
    model = decoder.kernel_model(captioner._start(batch, decoder)[0], np.array([0]))
    assert decoder._chunks(slice(0, 12), model, 3) == [slice(0, 12)]
    monkeypatch.setattr(_decoder, "_SCRATCH_CHUNK_BYTES", 1)
    monkeypatch.setattr(_decoder, "_MIN_CHUNK_ROWS", 3)
    # One input per chunk for beams of 3; three rows, so three inputs, greedy.
    assert decoder._chunks(slice(2, 5), model, 3) == [
        slice(2, 3), slice(3, 4), slice(4, 5)
    ]  # fmt: skip
    assert decoder._chunks(slice(0, 7), model, 1) == [
        slice(0, 3), slice(3, 6), slice(6, 7)
    ]  # fmt: skip
    for beam, (outputs, scores) in expected.items():
        chunked, chunked_scores = captioner.generate(
            batch, beam_width=beam, n_best=beam, return_scores=True
        )
        assert chunked == outputs
        np.testing.assert_array_equal(chunked_scores, scores)


# ------------------------------------------------------ persistence, sklearn
def test_save_and_load_without_pickle(captioner, tmp_path):
    save_model(captioner, tmp_path / "captioner")
    loaded = load_model(tmp_path / "captioner")
    assert type(loaded) is RNNCaptioner
    assert loaded.get_params() == captioner.get_params()
    expected = captioner.generate(X_TEST[:10], n_best=2, return_scores=True)
    actual = loaded.generate(X_TEST[:10], n_best=2, return_scores=True)
    assert actual[0] == expected[0]
    np.testing.assert_array_equal(actual[1], expected[1])
    assert list(loaded.classes_) == list(captioner.classes_)
    assert loaded.n_features_in_ == captioner.n_features_in_


def test_pickle_and_clone(captioner):
    restored = pickle.loads(pickle.dumps(captioner))
    expected, scores = captioner.generate(X_TEST[:10], return_scores=True)
    actual, restored_scores = restored.generate(X_TEST[:10], return_scores=True)
    assert actual == expected
    np.testing.assert_array_equal(restored_scores, scores)
    copy = clone(captioner)
    assert copy.get_params() == captioner.get_params()
    assert not hasattr(copy, "params_")


def test_decoding_follows_parameters_changed_in_place(captioner):
    """The decoder's layout is kept between calls only while ``params_``
    holds the same values: changed in place, the next call decodes with the
    new ones, as a copy that never decoded before does. The layout is kept
    outside the estimator's attributes, which decoding leaves as they are."""
    model = pickle.loads(pickle.dumps(captioner))
    attributes = set(vars(model))
    _, before_scores = model.generate(X_TEST[:20], return_scores=True)
    assert _DECODER_CACHES[model].layouts  # kept
    assert set(vars(model)) == attributes
    for key in ("head.bias", "decoder.embedding.weight"):
        values = model.params_[key]
        values += np.linspace(-2, 2, values.size).reshape(values.shape)
        tokens, scores = model.generate(X_TEST[:20], return_scores=True)
        fresh = pickle.loads(pickle.dumps(model))
        expected, expected_scores = fresh.generate(X_TEST[:20], return_scores=True)
        assert tokens == expected
        np.testing.assert_array_equal(scores, expected_scores)
        assert not np.array_equal(scores, before_scores)  # the change mattered
        before_scores = scores
    # Greedy search (fewer row-steps: no token table) alike.
    greedy = model.predict(X_TEST[:20])
    assert greedy == pickle.loads(pickle.dumps(model)).predict(X_TEST[:20])


def test_decoders_too_large_to_keep_are_laid_out_at_every_call(captioner, monkeypatch):
    model = pickle.loads(pickle.dumps(captioner))
    expected = model.generate(X_TEST[:10], return_scores=True)
    assert model in _DECODER_CACHES
    monkeypatch.setattr(_DecoderCache, "MAX_BYTES", 0)
    bias = model.params_["head.bias"]
    bias += np.linspace(-2, 2, bias.size)  # a new layout is needed
    changed = model.generate(X_TEST[:10], return_scores=True)
    assert model not in _DECODER_CACHES
    fresh = pickle.loads(pickle.dumps(model)).generate(X_TEST[:10], return_scores=True)
    assert changed[0] == fresh[0]
    np.testing.assert_array_equal(changed[1], fresh[1])
    assert not np.array_equal(changed[1], expected[1])


class _ComparedCaptioner(RNNCaptioner):
    """Unhashable, as a subclass that defines ``__eq__`` alone is."""

    def __eq__(self, other):
        return self is other


def test_unhashable_subclasses_decode_without_the_cache(captioner):
    model = _ComparedCaptioner(**captioner.get_params())
    model.__dict__.update(vars(pickle.loads(pickle.dumps(captioner))))
    assert model.predict(X_TEST[:10]) == captioner.predict(X_TEST[:10])


def test_grid_search_over_bleu():
    search = GridSearchCV(
        RNNCaptioner(
            hidden_size=6,
            embedding_dim=4,
            max_iter=2,
            beam_width=1,
            max_length=8,
            random_state=0,
        ),
        {"conditioning": ["init", "merge"]},
        cv=2,
        n_jobs=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X_TRAIN[:40], Y_TRAIN[:40])
    scores = search.cv_results_["mean_test_score"]
    assert np.all((scores >= 0) & (scores <= 100))
    assert isinstance(search.best_estimator_.predict(X_TEST[:1])[0], list)


# ----------------------------------------------------------------- bad input
X2 = np.ones((2, 3))


@pytest.mark.parametrize(
    ("X", "y", "error", "match"),
    [
        (np.ones((0, 3)), [], ValueError, "0 sample"),
        (np.ones(2), ["a", "b"], ValueError, "2D"),
        ([1.0, 2.0], ["a", "b"], ValueError, "2-D"),
        (np.ones((2, 3, 1)), ["a", "b"], ValueError, "dim 3"),
        (np.array([[np.nan, 1.0], [1.0, 1.0]]), ["a", "b"], ValueError, "NaN"),
        (np.array([[np.inf, 1.0], [1.0, 1.0]]), ["a", "b"], ValueError, "infinity"),
        (X2, ["a"], ValueError, "2 inputs but y has 1"),
        (X2, None, ValueError, "requires y"),
        (X2, ["a", ""], ValueError, r"y\[1\] is an empty"),
        (X2, "ab", TypeError, "single str"),
        (X2, [["a", ["b"]], ["a"]], TypeError, "unhashable"),
        (X2, [["a", 1], ["a"]], TypeError, "mix"),
    ],
)
def test_bad_training_data_is_named(X, y, error, match):
    with pytest.raises(error, match=match):
        RNNCaptioner(max_iter=1).fit(X, y)


def test_bad_options():
    with pytest.raises(NotImplementedError, match="CPU"):
        RNNCaptioner(device="cuda").fit(X2, ["a", "b"])
    with pytest.raises(ValueError, match="conditioning"):
        RNNCaptioner(conditioning="inject").fit(X2, ["a", "b"])
    with pytest.raises(ValueError, match="beam_width"):
        RNNCaptioner(beam_width=0).fit(X2, ["a", "b"])
    with pytest.raises(NotFittedError):
        RNNCaptioner().predict(X2)


def test_bad_prediction_input(captioner):
    width = captioner.n_features_in_
    with pytest.raises(ValueError, match=f"{width + 1} features"):
        captioner.predict(np.ones((2, width + 1)))
    with pytest.raises(ValueError, match="2D"):
        captioner.predict(np.ones(width))
    with pytest.raises(ValueError, match="NaN"):
        captioner.predict(np.full((1, width), np.nan))
    with pytest.raises(ValueError, match="0 sample"):
        captioner.predict(np.ones((0, width)))
    with pytest.raises(ValueError, match="beam_width"):
        captioner.generate(X_TEST[:1], beam_width=0)
    with pytest.raises(ValueError, match="needs attention"):
        captioner.generate(X_TEST[:1], return_attention=True)
    with pytest.raises(ValueError, match="sample_weight"):
        captioner.score(X_TEST[:2], Y_TEST[:2], sample_weight=[1.0, 1.0])
