"""RNNLanguageModel: learning, completion, decoding invariants, bad input.

The gradient and PyTorch-parity checks of its loss live in
``test_estimators_gradients.py``; the decoders alone in ``test_decoding.py``.
"""

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV

from rnntools import RNNLanguageModel
from rnntools.decoding import length_penalty as wu_penalty
from rnntools.estimators import language_model
from rnntools.estimators._generator import _Condition, state_where
from rnntools.vocabulary import Vocabulary

PHRASES = ["hello world", "help me", "hello there", "world peace", "the cat sat"]


def corpus(n, seed=0):
    rng = np.random.default_rng(seed)
    return [PHRASES[i] for i in rng.integers(0, len(PHRASES), n)]


def quiet_fit(model, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **kwargs)


@pytest.fixture(scope="module")
def model():
    lm = RNNLanguageModel(
        hidden_size=24, embedding_dim=8, max_iter=40, batch_size=16, random_state=0
    )
    return quiet_fit(lm, corpus(300))


def model_log_proba(model, prompt, completion, finished):
    """Log-probability of ``completion`` (and ``<eos>`` if ``finished``) after
    ``prompt`` under the decoder's distribution (``<pad>``, ``<bos>``
    excluded and renormalised), one ``predict_proba`` call per token."""
    vocabulary = model.vocabulary_
    targets = list(vocabulary.encode_one(completion))
    if finished:
        targets.append(Vocabulary.EOS)
    total = 0.0
    for i, target in enumerate(targets):
        proba = model.predict_proba([prompt + completion[:i]])[0]
        proba[[Vocabulary.PAD, Vocabulary.BOS]] = 0
        total += np.log(proba[target] / proba.sum())
    return total


def test_learns_the_phrases(model):
    hel, the_c, wor = model.predict(["hel", "the c", "wor"])
    assert hel in ("lo world", "lo there", "p me")
    assert (the_c, wor) == ("at sat", "ld peace")
    held_out = corpus(50, seed=1)
    # Five phrases of ~10 characters: a model that learned them is nearly
    # certain of every character after the first two; a uniform guess over
    # the ~20 tokens has perplexity ~20.
    assert model.perplexity(held_out) < 1.6
    assert model.score(held_out) == pytest.approx(-np.log(model.perplexity(held_out)))
    assert model.loss_curve_[-1] < model.loss_curve_[0] / 5


def test_predict_proba_is_the_next_token_distribution(model):
    proba = model.predict_proba(["hel", "", "the cat sat"])
    assert proba.shape == (3, len(model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert model.classes_[proba[0].argmax()] == "l"
    assert model.classes_[proba[2].argmax()] == "<eos>"
    assert list(model.classes_[:4]) == list(Vocabulary.SPECIALS)


@pytest.mark.parametrize("stepped_tokens", [0, 100])
@pytest.mark.parametrize(
    ("cell", "num_layers", "dtype"),
    [("lstm", 2, "float32"), ("gru", 1, "float64"), ("rnn", 3, "float32")],
)
def test_prompts_run_in_one_pass_give_the_bits_of_decoding_steps(
    cell, num_layers, dtype, stepped_tokens, monkeypatch
):
    # Long prompts go through one forward pass per layer, short ones are
    # stepped through the decoder (both ways forced here); the decoder then
    # steps from that state. Stepping the decoder through each prompt (what
    # decoding does token by token) must give the same bits: ragged
    # prompts, empty ones and a single token included.
    monkeypatch.setattr(language_model, "_STEPPED_PROMPT_TOKENS", stepped_tokens)
    lm = RNNLanguageModel(
        cell=cell, num_layers=num_layers, hidden_size=12, embedding_dim=5,
        max_iter=3, random_state=0, dtype=dtype,
    )  # fmt: skip
    lm = quiet_fit(lm, corpus(60))
    prompts = ["hello wor", "", "t", "the cat s", "help", "wo"]
    prepared, no_condition = lm._prepared(), _Condition()
    state, last = lm._prompt_states(prompts, prepared)
    inputs, _, lengths = lm._encode_targets(prompts, lm.vocabulary_, name="X")
    np.testing.assert_array_equal(last, inputs[np.arange(len(prompts)), lengths - 1])
    rows = np.arange(len(prompts))
    stepped = lm._zero_state(len(prompts))
    for t in range(inputs.shape[1] - 1):
        _, (new, _) = lm._step_log_proba(
            inputs[:, t], (stepped, rows), prepared, no_condition
        )
        stepped = state_where((t < lengths - 1)[None, :, None], new, stepped)
    for ours, expected in zip(
        state if cell == "lstm" else (state,),
        stepped if cell == "lstm" else (stepped,),
        strict=True,
    ):
        assert ours.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(ours, expected)
    # The next-token distribution is one more step, from that state.
    log_proba, _ = lm._step_log_proba(last, (stepped, rows), prepared, no_condition)
    np.testing.assert_array_equal(lm.predict_proba(prompts), np.exp(log_proba))


def test_word_and_integer_tokens_round_trip():
    words = [phrase.split() for phrase in corpus(120)]
    lm = quiet_fit(RNNLanguageModel(hidden_size=16, max_iter=30, random_state=0), words)
    completion = lm.predict([["hello"]])[0]
    assert isinstance(completion, list) and completion[0] in ("world", "there")
    codes = {word: i * 7 for i, word in enumerate({w for s in words for w in s})}
    numbers = [[codes[w] for w in s] for s in words]
    lm = quiet_fit(
        RNNLanguageModel(hidden_size=16, max_iter=30, random_state=0), numbers
    )
    assert all(isinstance(token, int) for token in lm.predict([[codes["the"]]])[0])


def test_beam_width_one_is_greedy_and_n_best_scores_are_the_models(model):
    prompts = ["hel", "w", ""]
    greedy, greedy_scores = model.generate(prompts, return_scores=True)
    beam, beam_scores = model.generate(prompts, beam_width=1, return_scores=True)
    assert beam == greedy
    np.testing.assert_array_equal(beam_scores, greedy_scores)
    for alpha in (0.0, 0.7):
        options, scores = model.generate(
            prompts, beam_width=4, n_best=3, length_penalty=alpha, return_scores=True
        )
        for prompt, completions, row in zip(prompts, options, scores, strict=True):
            assert len(set(completions)) == 3
            assert np.all(np.diff(row) <= 0)
            for completion, score in zip(completions, row, strict=True):
                finished = len(completion) < model.max_length
                length = len(completion) + finished
                expected = model_log_proba(model, prompt, completion, finished)
                # The decoder and predict_proba run the same float32 steps on
                # different batches (bit-identical rows) but renormalise in a
                # different order: float32 rounding over ~10 tokens.
                assert score == pytest.approx(
                    expected / wu_penalty(length, alpha), abs=1e-4
                )


def test_n_best_beyond_the_possible_outputs_returns_those_possible():
    lm = quiet_fit(
        RNNLanguageModel(hidden_size=8, max_iter=2, random_state=0), ["ab", "ba"]
    )
    # One token each: "a", "b", "<unk>" or <eos> at once ("") — four outputs,
    # not the five asked for.
    options, scores = lm.generate(
        ["a", "b"], beam_width=5, n_best=5, max_length=1, return_scores=True
    )
    assert scores.shape == (2, 4)
    for completions, row in zip(options, scores, strict=True):
        assert sorted(completions) == sorted(["a", "b", "<unk>", ""])
        assert np.all(np.isfinite(row)) and np.all(np.diff(row) <= 0)


def test_sampling_is_seeded_and_degenerates_to_greedy(model):
    prompts = ["hel", "the", "w"]
    greedy = model.generate(prompts)
    assert model.generate(prompts, top_k=1, random_state=3) == greedy
    # At temperature 1e-6 every log-probability gap of the model (> 1e-3)
    # becomes a factor exp(-1e3): the top token is drawn with certainty.
    assert model.generate(prompts, temperature=1e-6, random_state=3) == greedy
    first = model.generate(prompts * 5, temperature=2.0, random_state=7)
    assert model.generate(prompts * 5, temperature=2.0, random_state=7) == first
    assert model.generate(prompts * 5, temperature=2.0, random_state=8) != first


def test_lengths_are_respected(model):
    for completion in model.generate(["h", "t", ""], max_length=3):
        assert len(completion) <= 3
    completions = model.generate(["the cat sat"], min_length=4, max_length=6)
    assert len(completions[0]) >= 4


@given(
    st.lists(
        st.sampled_from(["hel", "he", "", "the c", "x", "wor"]), min_size=1, max_size=5
    ),
    st.sampled_from([1, 3]),
)
def test_a_prompt_completes_the_same_alone_and_in_any_batch(model, prompts, beam):
    together, scores = model.generate(prompts, beam_width=beam, return_scores=True)
    for i, prompt in enumerate(prompts):
        alone, score = model.generate([prompt], beam_width=beam, return_scores=True)
        assert alone[0] == together[i]
        assert score[0] == scores[i]  # bit for bit


def test_unseen_tokens_are_unknown_not_errors(model):
    assert isinstance(model.predict(["qqq"])[0], str)
    assert np.isfinite(model.score(["zebra"]))


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        ([], ValueError, "empty"),
        ("hello", TypeError, "list"),
        ([["a", ["b"]]], TypeError, "hashable|unhashable"),
        ([["a", 1]], TypeError, "mix"),
        (["ab", ""], ValueError, "empty sequence"),
    ],
)
def test_bad_training_data_is_named(X, error, match):
    with pytest.raises(error, match=match):
        RNNLanguageModel(max_iter=1).fit(X)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beam_width": 0}, ValueError, "beam_width"),
        ({"top_p": 1.5}, ValueError, "top_p"),
        ({"top_p": 0.0}, ValueError, "top_p"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"beam_width": 3, "temperature": 0.5}, ValueError, "beam_width=1"),
        ({"beam_width": 2, "n_best": 3}, ValueError, "n_best"),
        ({"max_length": 0}, ValueError, "max_length"),
        # Its token buffers alone would exceed any machine's memory.
        ({"max_length": 10**15}, ValueError, "max_length=10+ is too large"),
        # Unused by greedy search (beam_width=1, no sampling), still checked.
        ({"length_penalty": np.nan}, ValueError, "length_penalty must be finite"),
        ({"length_penalty": "wu"}, TypeError, "length_penalty must be a real"),
        ({"random_state": "seed"}, TypeError, "random_state must be None"),
    ],
)
def test_bad_decoding_options_are_named(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        model.generate(["hel"], **kwargs)


def test_errors_before_fit_and_on_cuda():
    with pytest.raises(NotFittedError):
        RNNLanguageModel().predict(["a"])
    with pytest.raises(NotImplementedError, match="CPU"):
        RNNLanguageModel(device="cuda").fit(["ab"])
    with pytest.raises(ValueError, match="beam_width"):
        RNNLanguageModel(beam_width=0).fit(["ab"])


def test_dropout_is_seeded_and_off_at_prediction():
    X = corpus(60)
    settings = {"hidden_size": 12, "num_layers": 2, "max_iter": 3, "random_state": 0}
    first = quiet_fit(RNNLanguageModel(dropout=0.3, **settings), X)
    again = quiet_fit(RNNLanguageModel(dropout=0.3, **settings), X)
    plain = quiet_fit(RNNLanguageModel(dropout=0.0, **settings), X)
    for key, value in first.params_.items():
        np.testing.assert_array_equal(value, again.params_[key])
    assert not np.array_equal(
        first.params_["head.weight"], plain.params_["head.weight"]
    )
    assert first.score(X) == first.score(X)


def test_partial_fit_warm_start_and_early_stopping():
    X = corpus(80)
    lm = RNNLanguageModel(hidden_size=8, random_state=0)
    lm.partial_fit(X)
    lm.partial_fit(X)
    assert lm.n_iter_ == 2
    lm = RNNLanguageModel(
        hidden_size=8, max_iter=4, early_stopping=True, random_state=0
    )
    quiet_fit(lm, X)
    assert len(lm.validation_scores_) == lm.n_iter_
    assert all(score < 0 for score in lm.validation_scores_)  # log-likelihoods
    lm.set_params(warm_start=True, early_stopping=False, max_iter=2)
    quiet_fit(lm, X)
    assert lm.n_iter_ == 6


def test_pickle_clone_and_grid_search(model):
    restored = pickle.loads(pickle.dumps(model))
    prompts = ["hel", "the"]
    assert restored.generate(prompts, beam_width=3) == model.generate(
        prompts, beam_width=3
    )
    assert clone(model).get_params() == model.get_params()
    search = GridSearchCV(
        RNNLanguageModel(max_iter=3, random_state=0),
        {"hidden_size": [4, 8]},
        cv=2,
        n_jobs=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(corpus(40))
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(["h"])


def test_predict_proba_follows_parameters_changed_in_place(model):
    """See tests/test_captioner.py: the kept decoder layout is dropped when
    ``params_`` changes, here by ``partial_fit`` and by hand."""
    copy = pickle.loads(pickle.dumps(model))
    before = copy.predict_proba(["the", "hel"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        copy.partial_fit(corpus(20))
    after = copy.predict_proba(["the", "hel"])
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(
        after, pickle.loads(pickle.dumps(copy)).predict_proba(["the", "hel"])
    )
    copy.params_["head.bias"][:] = 0
    np.testing.assert_array_equal(
        copy.predict_proba(["the", "hel"]),
        pickle.loads(pickle.dumps(copy)).predict_proba(["the", "hel"]),
    )


def test_save_and_load_without_pickle(model, tmp_path):
    from rnntools import load_model, save_model

    path = tmp_path / "autocomplete.rnn"
    save_model(model, path)
    loaded = load_model(path)
    prompts = ["hel", "", "the c"]
    assert loaded.generate(prompts, beam_width=3, n_best=2) == model.generate(
        prompts, beam_width=3, n_best=2
    )
    assert loaded.score(prompts) == model.score(prompts)
    assert list(loaded.classes_) == list(model.classes_)
    words = [["to", 7], ["be"]]
    with pytest.raises(TypeError):
        RNNLanguageModel(max_iter=1).fit(words)
    numbers = quiet_fit(RNNLanguageModel(hidden_size=4, max_iter=2), [[3, 5, 3], [5]])
    save_model(numbers, tmp_path / "numbers")
    assert load_model(tmp_path / "numbers").predict([[3]]) == numbers.predict([[3]])
