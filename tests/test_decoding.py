"""Greedy search, beam search and sampling of ``rnntools.decoding``.

The decoders run on toy models whose log-probabilities come from fixed tables,
so every result can be checked against something computed independently: a
naive greedy loop, the model's own log-probability of a returned sequence, or
the exhaustive enumeration of every sequence up to ``max_length``. The
property tests (strategies in ``strategies.py``) also check that a row decodes
the same alone as among other rows, bit for bit.
"""

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import DecodingProblem, decoding_problems

from rnntools.decoding import (
    _top_k_stable,
    beam_search,
    greedy_search,
    length_penalty,
    sample,
)


class MarkovModel:
    """A model whose next token depends on the step, the token fed and the one
    before it, through a table ``(max_length, V + 1, V + 1, V)`` of
    log-probabilities (token ``V`` is ``<bos>``).

    The state is the pair ``(previous, counter)`` of ``(n,)`` arrays; the
    decoders must treat it as opaque and go through :meth:`reorder`.
    """

    def __init__(self, table):
        self.table = table
        self.bos = table.shape[-1]

    def initial_state(self, n_rows):
        return np.full(n_rows, self.bos), np.zeros(n_rows, dtype=np.int64)

    def step(self, tokens, state):
        assert tokens.dtype == np.int64 and tokens.ndim == 1
        previous, counter = state
        return self.table[counter, previous, tokens], (tokens, counter + 1)

    def reorder(self, state, index):
        assert index.dtype == np.int64 and index.ndim == 1
        previous, counter = state
        return previous[index], counter[index]

    def log_prob(self, first_token, emitted):
        """Float64 sum of the log-probabilities of ``emitted``, step by step."""
        total = 0.0
        previous, fed = self.bos, first_token
        for t, token in enumerate(emitted):
            total += float(self.table[t, previous, fed, token])
            previous, fed = fed, token
        return total


class ScriptedModel:
    """Next-token log-probabilities ``log_probs[c]`` ``(V,)`` for a row whose
    state is the counter ``c``, whatever the tokens; the counter goes up by one
    at each step. Records the tokens fed and the reorder indices."""

    def __init__(self, log_probs):
        self.log_probs = np.asarray(log_probs, dtype=np.float64)
        self.fed = []
        self.reorder_indices = []

    @property
    def step_rows(self):
        """The number of rows of each call of :meth:`step`."""
        return [len(tokens) for tokens in self.fed]

    def step(self, tokens, counter):
        self.fed.append(tokens)
        return self.log_probs[counter], counter + 1

    def reorder(self, counter, index):
        self.reorder_indices.append(index)
        return counter[index]


def scripted(probabilities):
    """A :class:`ScriptedModel` of probabilities ``(T, V)`` (zeros allowed)."""
    with np.errstate(divide="ignore"):
        return ScriptedModel(np.log(probabilities))


def run_greedy(model, first_tokens, problem):
    return greedy_search(
        model.step,
        model.initial_state(len(first_tokens)),
        first_tokens,
        eos_id=problem.eos_id,
        max_length=problem.max_length,
        min_length=problem.min_length,
    )


def run_beam(model, first_tokens, problem):
    return beam_search(
        model.step,
        model.reorder,
        model.initial_state(len(first_tokens)),
        first_tokens,
        eos_id=problem.eos_id,
        max_length=problem.max_length,
        min_length=problem.min_length,
        beam_width=problem.beam_width,
        n_best=problem.n_best,
        length_penalty=problem.alpha,
    )


def run_sample(model, first_tokens, problem, **kwargs):
    return sample(
        model.step,
        model.initial_state(len(first_tokens)),
        first_tokens,
        eos_id=problem.eos_id,
        max_length=problem.max_length,
        min_length=problem.min_length,
        **kwargs,
    )


def emitted_tokens(tokens, problem):
    """The tokens a row emitted: ``tokens``, then eos if it ended before the cut."""
    tokens = [int(token) for token in tokens]
    return [*tokens, problem.eos_id] if len(tokens) < problem.max_length else tokens


def penalised_score(model, first_token, tokens, problem):
    """Beam search's score of ``tokens``, recomputed from the model's table."""
    emitted = emitted_tokens(tokens, problem)
    return model.log_prob(first_token, emitted) / ((5 + len(emitted)) / 6) ** (
        problem.alpha
    )


def naive_greedy(model, first_token, problem):
    """Greedy search of one row, one step at a time, straight from the table."""
    tokens, total = [], 0.0
    previous, fed = model.bos, first_token
    for t in range(problem.max_length):
        log_probs = model.table[t, previous, fed].astype(np.float64)
        if t < problem.min_length:
            log_probs[problem.eos_id] = -np.inf
        token = int(np.argmax(log_probs))
        total += log_probs[token]
        if token == problem.eos_id:
            break
        tokens.append(token)
        previous, fed = fed, token
    return tokens, total


def all_hypotheses(model, first_token, problem):
    """Every sequence beam search may return, with its score, best first."""
    words = [token for token in range(problem.vocab_size) if token != problem.eos_id]
    finished = [
        tokens
        for length in range(problem.min_length, problem.max_length)
        for tokens in itertools.product(words, repeat=length)
    ]
    cut = list(itertools.product(words, repeat=problem.max_length))
    hypotheses = [
        (list(tokens), penalised_score(model, first_token, tokens, problem))
        for tokens in finished + cut
    ]
    return sorted(hypotheses, key=lambda hypothesis: -hypothesis[1])


def assert_same_sequences(actual, expected):
    assert len(actual) == len(expected)
    for actual_tokens, expected_tokens in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(actual_tokens, expected_tokens)


def assert_same_hypotheses(actual, expected):
    assert len(actual) == len(expected)
    for (actual_tokens, actual_score), (expected_tokens, expected_score) in zip(
        actual, expected, strict=True
    ):
        np.testing.assert_array_equal(actual_tokens, expected_tokens)
        assert actual_score == expected_score


def top_two_gap(model, problem):
    """The smallest gap between the two most probable allowed tokens of any
    row of the table."""
    log_probs = model.table.astype(np.float64)
    log_probs[: problem.min_length, ..., problem.eos_id] = -np.inf
    top_two = np.sort(log_probs, axis=-1)[..., -2:]
    return np.min(top_two[..., 1] - top_two[..., 0])


# length_penalty -------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "alpha", "expected"),
    [
        (7, 0.0, 1.0),
        (1, 0.8, 1.0),
        (7, 1.0, 2.0),
        (7, 0.5, np.sqrt(2.0)),
        (0, 1.0, 5 / 6),
        (13, -1.0, 1 / 3),
    ],
)
def test_length_penalty_values(length, alpha, expected):
    # The power rounds in the last bit; 1e-15 is a few ulps.
    assert length_penalty(length, alpha) == pytest.approx(expected, rel=1e-15)
    assert isinstance(length_penalty(length, alpha), float)


def test_length_penalty_broadcasts_over_lengths():
    lengths = np.array([[1, 7], [19, 0]])
    np.testing.assert_array_equal(
        length_penalty(lengths, 1.0), [[1.0, 2.0], [4.0, 5 / 6]]
    )


# greedy_search --------------------------------------------------------------


@given(problem=decoding_problems())
def test_greedy_matches_naive_loop(problem):
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    sequences, scores = run_greedy(model, first_tokens, problem)
    assert scores.dtype == np.float64 and scores.shape == (problem.batch_size,)
    for first_token, tokens, score in zip(first_tokens, sequences, scores, strict=True):
        expected_tokens, expected_score = naive_greedy(model, first_token, problem)
        assert tokens.dtype == np.int64
        np.testing.assert_array_equal(tokens, expected_tokens)
        # The same float64 additions in the same order.
        assert score == expected_score
        assert problem.eos_id not in tokens
        assert len(tokens) <= problem.max_length
        assert len(tokens) >= problem.min_length
        assert score == model.log_prob(first_token, emitted_tokens(tokens, problem))


@given(problem=decoding_problems(), data=st.data())
def test_greedy_rows_do_not_depend_on_the_batch(problem, data):
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    order = data.draw(st.permutations(range(problem.batch_size)))
    sequences, scores = run_greedy(model, first_tokens[order], problem)
    for position, row in enumerate(order):
        alone_sequences, alone_scores = run_greedy(
            model, first_tokens[row : row + 1], problem
        )
        np.testing.assert_array_equal(sequences[position], alone_sequences[0])
        assert scores[position] == alone_scores[0]


@pytest.mark.parametrize(
    ("counters", "expected", "n_steps"),
    [
        # Both rows emit eos (id 1) at once: one step.
        ([0, 0], [[], []], 1),
        # Row 1 starts on token 2 and never ends; row 0 ends at once, and is
        # fed eos until the cut.
        ([0, 1], [[], [2, 2, 2]], 3),
    ],
)
def test_greedy_runs_until_every_row_has_ended(counters, expected, n_steps):
    model = scripted([[0.3, 0.6, 0.1]] + [[0.2, 0.1, 0.7]] * 3)
    sequences, _ = greedy_search(
        model.step, np.array(counters), [5, 6], eos_id=1, max_length=3
    )
    assert_same_sequences(sequences, expected)
    assert len(model.fed) == n_steps
    for tokens in model.fed[1:]:
        assert tokens[0] == 1


def test_greedy_min_length_forbids_eos():
    model = scripted([[0.6, 0.3, 0.1]] + [[0.1, 0.2, 0.7]] * 2)
    sequences, scores = greedy_search(
        model.step,
        np.zeros(1, dtype=np.int64),
        [5],
        eos_id=0,
        max_length=3,
        min_length=1,
    )
    assert_same_sequences(sequences, [[1, 2, 2]])
    np.testing.assert_array_equal(scores, [np.log(0.3) + np.log(0.7) + np.log(0.7)])


def test_greedy_ties_go_to_the_lowest_token():
    model = scripted([[0.2, 0.4, 0.4]])
    sequences, _ = greedy_search(
        model.step, np.zeros(1, dtype=np.int64), [0], eos_id=0, max_length=1
    )
    assert_same_sequences(sequences, [[1]])


# beam_search ----------------------------------------------------------------


@given(problem=decoding_problems())
def test_beam_width_one_is_greedy(problem):
    problem = dataclasses.replace(problem, beam_width=1, n_best=1, alpha=0.0)
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    sequences, scores = run_greedy(model, first_tokens, problem)
    results = run_beam(model, first_tokens, problem)
    for tokens, score, hypotheses in zip(sequences, scores, results, strict=True):
        assert_same_hypotheses(hypotheses, [(tokens, score)])


@given(problem=decoding_problems(min_alpha=-1.0, max_alpha=2.0))
def test_beam_hypotheses_are_distinct_sorted_and_scored_by_the_model(problem):
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    results = run_beam(model, first_tokens, problem)
    assert len(results) == problem.batch_size
    words = problem.vocab_size - 1
    n_possible = sum(
        words**length for length in range(problem.min_length, problem.max_length)
    ) + words ** (problem.max_length)
    for first_token, hypotheses in zip(first_tokens, results, strict=True):
        assert len(hypotheses) == min(problem.n_best, n_possible)
        scores = [score for _, score in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(tokens) for tokens, _ in hypotheses}) == len(hypotheses)
        for tokens, score in hypotheses:
            assert tokens.dtype == np.int64 and isinstance(score, float)
            assert problem.min_length <= len(tokens) <= problem.max_length
            assert problem.eos_id not in tokens
            # The same float64 sum; only the penalty's power, recomputed
            # here, may round differently, by an ulp or so.
            assert score == pytest.approx(
                penalised_score(model, first_token, tokens, problem), rel=1e-14
            )


@given(problem=decoding_problems(min_alpha=-1.0, max_alpha=2.0), data=st.data())
def test_beam_rows_do_not_depend_on_the_batch(problem, data):
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    order = data.draw(st.permutations(range(problem.batch_size)))
    results = run_beam(model, first_tokens[order], problem)
    for position, row in enumerate(order):
        alone = run_beam(model, first_tokens[row : row + 1], problem)
        assert_same_hypotheses(results[position], alone[0])


@given(
    problem=decoding_problems(
        min_alpha=-1.0, max_alpha=2.0, max_batch=2, max_live_prefixes=27
    )
)
def test_wide_beam_finds_the_best_sequences(problem):
    # Wider than the number of eos-free prefixes, the beam never prunes one, so
    # only the early stop can lose the best hypotheses: its bound is checked.
    beam_width = (problem.vocab_size - 1) ** problem.max_length + 1
    problem = dataclasses.replace(problem, beam_width=max(beam_width, problem.n_best))
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    results = run_beam(model, first_tokens, problem)
    for first_token, hypotheses in zip(first_tokens, results, strict=True):
        expected = all_hypotheses(model, first_token, problem)[: problem.n_best]
        assert len(hypotheses) == len(expected)
        for (tokens, score), (expected_tokens, expected_score) in zip(
            hypotheses, expected, strict=True
        ):
            np.testing.assert_array_equal(tokens, expected_tokens)
            # Sums in the same order, penalties by the same formula.
            assert score == pytest.approx(expected_score, rel=1e-14)


@pytest.mark.parametrize(
    ("first_step", "beam_width", "alpha", "best", "n_steps"),
    [
        # Without a penalty, eos at once (log 0.5) beats [1, eos] and no live
        # beam can do better: the search stops after one step. With one beam,
        # eos is finished only as it ties with token 1 and has a lower id.
        ([0.5, 0.5, 0.0], 1, 0.0, [], 1),
        ([0.5, 0.5, 0.0], 2, 0.0, [], 1),
        # With alpha=1, [1, eos] scores (log 0.5 + log 0.999) / (7/6) > log 0.5;
        # the bound must let the search go on to find it.
        ([0.5, 0.5, 0.0], 2, 1.0, [1], 2),
        # With alpha=-1 the penalty falls with length: [1, eos] scores
        # (log 0.5 + log 0.999) * 7/6 > log 0.3, which a bound at max_length,
        # log 0.5 * 15/6 < log 0.3, would miss.
        ([0.3, 0.5, 0.2], 2, -1.0, [1], 2),
    ],
)
def test_beam_early_stop(first_step, beam_width, alpha, best, n_steps):
    model = scripted([first_step] + [[0.999, 0.0005, 0.0005]] * 9)
    results = beam_search(
        model.step,
        model.reorder,
        np.zeros(1, dtype=np.int64),
        [0],
        eos_id=0,
        max_length=10,
        beam_width=beam_width,
        length_penalty=alpha,
    )
    assert_same_sequences([tokens for tokens, _ in results[0]], [best])
    assert len(model.step_rows) == n_steps


def test_beam_stops_only_when_no_live_beam_beats_the_n_best_th():
    # After step 1 the pool holds [] (0.4) and [1] (0.6 * 0.3 = 0.18), and the
    # live [1, 1] (0.36) can still beat the 2nd best: it ends at 0.3564.
    model = scripted([[0.4, 0.6, 0.0], [0.3, 0.6, 0.1], [0.99, 0.005, 0.005]])
    results = beam_search(
        model.step,
        model.reorder,
        np.zeros(1, dtype=np.int64),
        [0],
        eos_id=0,
        max_length=3,
        beam_width=2,
        n_best=2,
    )
    assert_same_sequences([tokens for tokens, _ in results[0]], [[], [1, 1]])


def test_beam_feeds_every_beam_and_drops_rows_that_are_done():
    # Row 0 (counters 0-2) finds [] and then [1], [2] at step 1, better than
    # any live beam: done. Row 1 (counters 3-5) is unlikely to emit eos and
    # runs to the cut; after step 1 only its beams are fed.
    model = scripted([[0.9, 0.05, 0.05]] * 3 + [[0.1, 0.6, 0.3]] * 3)
    results = beam_search(
        model.step,
        model.reorder,
        np.array([0, 3]),
        [3, 4],
        eos_id=0,
        max_length=3,
        beam_width=2,
        n_best=2,
    )
    assert model.step_rows == [4, 4, 2]
    np.testing.assert_array_equal(model.reorder_indices[0], [0, 0, 1, 1])
    # Row 1's beams after step 1: [1, 1] and [1, 2] (tied with [2, 1], which
    # comes from beam 1), both children of its beam 0, at rows 2 and 3.
    np.testing.assert_array_equal(model.reorder_indices[2], [2, 2])
    assert_same_sequences([tokens for tokens, _ in results[0]], [[], [1]])
    assert_same_sequences([tokens for tokens, _ in results[1]], [[1, 1, 1], [1, 1, 2]])


def test_beam_returns_fewer_when_fewer_sequences_are_possible():
    # Token 2 is impossible: only [], [1] and [1, 1] have non-zero probability.
    model = scripted([[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]])
    results = beam_search(
        model.step,
        model.reorder,
        np.zeros(1, dtype=np.int64),
        [0],
        eos_id=0,
        max_length=2,
        beam_width=4,
        n_best=4,
    )
    assert_same_sequences([tokens for tokens, _ in results[0]], [[], [1, 1], [1]])
    np.testing.assert_allclose(
        [score for _, score in results[0]],
        np.log([0.5, 0.375, 0.125]),
        rtol=1e-15,  # a sum of two float64 logs vs the log of their product
    )


# sample ---------------------------------------------------------------------


@given(
    problem=decoding_problems(),
    temperature=st.floats(0.1, 10.0),
    top_p=st.none() | st.floats(0.01, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_sample_top_k_one_is_greedy(problem, temperature, top_p, seed):
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    sequences, scores = run_greedy(model, first_tokens, problem)
    sampled, sampled_scores = run_sample(
        model,
        first_tokens,
        problem,
        temperature=temperature,
        top_k=1,
        top_p=top_p,
        random_state=seed,
    )
    assert_same_sequences(sampled, sequences)
    np.testing.assert_array_equal(sampled_scores, scores)


@given(problem=decoding_problems(), seed=st.integers(0, 2**32 - 1))
def test_sample_at_a_cold_temperature_is_greedy(problem, seed):
    model = MarkovModel(problem.make_table())
    # With the two best log-probs of every row at least 1e-3 apart, dividing
    # by 1e-6 puts the others below exp(-1000): exactly 0 in float64.
    assume(top_two_gap(model, problem) >= 1e-3)
    first_tokens = problem.make_first_tokens()
    sequences, scores = run_greedy(model, first_tokens, problem)
    sampled, sampled_scores = run_sample(
        model, first_tokens, problem, temperature=1e-6, random_state=seed
    )
    assert_same_sequences(sampled, sequences)
    np.testing.assert_array_equal(sampled_scores, scores)


@given(
    problem=decoding_problems(),
    temperature=st.floats(0.1, 10.0),
    top_k=st.none() | st.integers(1, 6),
    top_p=st.none() | st.floats(0.01, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_sample_scores_are_the_model_log_probs(
    problem, temperature, top_k, top_p, seed
):
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    kwargs = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    sequences, scores = run_sample(
        model, first_tokens, problem, random_state=seed, **kwargs
    )
    assert scores.dtype == np.float64 and scores.shape == (problem.batch_size,)
    for first_token, tokens, score in zip(first_tokens, sequences, scores, strict=True):
        assert tokens.dtype == np.int64
        assert problem.min_length <= len(tokens) <= problem.max_length
        assert problem.eos_id not in tokens
        # The same float64 additions in the same order.
        assert score == model.log_prob(first_token, emitted_tokens(tokens, problem))

    again, again_scores = run_sample(
        model,
        first_tokens,
        problem,
        random_state=np.random.default_rng(seed),
        **kwargs,
    )
    assert_same_sequences(again, sequences)
    np.testing.assert_array_equal(again_scores, scores)


@given(problem=decoding_problems(), data=st.data())
def test_sample_rows_do_not_depend_on_the_batch(problem, data):
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    sequences, scores = run_sample(model, first_tokens, problem, random_state=7)

    alone, alone_scores = run_sample(model, first_tokens[:1], problem, random_state=7)
    np.testing.assert_array_equal(alone[0], sequences[0])
    assert alone_scores[0] == scores[0]

    others = data.draw(
        st.lists(
            st.integers(0, problem.vocab_size),
            min_size=problem.batch_size,
            max_size=problem.batch_size,
        )
    )
    for row in range(problem.batch_size):
        changed = np.array(others)
        changed[row] = first_tokens[row]
        changed_sequences, changed_scores = run_sample(
            model, changed, problem, random_state=7
        )
        np.testing.assert_array_equal(changed_sequences[row], sequences[row])
        assert changed_scores[row] == scores[row]


UNEVEN = [0.1, 0.4, 0.2, 0.3]
UNIFORM = [0.25, 0.25, 0.25, 0.25]


def renormalised(probabilities, kept):
    weights = np.zeros(len(probabilities))
    weights[kept] = np.asarray(probabilities)[kept]
    return weights / weights.sum()


@pytest.mark.parametrize(
    ("probabilities", "kwargs", "expected"),
    [
        (UNEVEN, {}, UNEVEN),
        (UNEVEN, {"temperature": 0.5}, renormalised(np.square(UNEVEN), [0, 1, 2, 3])),
        (UNEVEN, {"top_k": 2}, renormalised(UNEVEN, [1, 3])),
        # Sorted: 0.4, 0.3, 0.2, 0.1; the mass before each is 0, 0.4, 0.7, 0.9.
        (UNEVEN, {"top_p": 0.35}, renormalised(UNEVEN, [1])),
        (UNEVEN, {"top_p": 0.65}, renormalised(UNEVEN, [1, 3])),
        (UNEVEN, {"top_p": 0.75}, renormalised(UNEVEN, [1, 3, 2])),
        (UNEVEN, {"top_p": 1.0}, UNEVEN),
        # top_k first: 4/9, 3/9, 2/9, so [1, 3] reach 0.5.
        (UNEVEN, {"top_k": 3, "top_p": 0.5}, renormalised(UNEVEN, [1, 3])),
        # Tempered: 0.325, 0.282, 0.230, 0.163, so [1, 3] reach 0.5.
        (
            UNEVEN,
            {"temperature": 2.0, "top_p": 0.5},
            renormalised(np.sqrt(UNEVEN), [1, 3]),
        ),
        # Ties at the cut go to the lowest ids.
        (UNIFORM, {"top_k": 2}, renormalised(UNIFORM, [0, 1])),
        (UNIFORM, {"top_p": 0.3}, renormalised(UNIFORM, [0, 1])),
        # Reaching top_p exactly is enough (the masses are exact here).
        (UNIFORM, {"top_p": 0.5}, renormalised(UNIFORM, [0, 1])),
        ([1 / 40] * 40, {"top_k": 5}, renormalised([1 / 40] * 40, range(5))),
    ],
)
def test_sample_draws_from_the_filtered_distribution(probabilities, kwargs, expected):
    n_rows = 20_000
    model = scripted([probabilities])
    sequences, scores = sample(
        model.step,
        np.zeros(n_rows, dtype=np.int64),
        np.zeros(n_rows, dtype=np.int64),
        eos_id=0,
        max_length=1,
        random_state=0,
        **kwargs,
    )
    drawn = np.array([tokens[0] if len(tokens) else 0 for tokens in sequences])
    np.testing.assert_array_equal(scores, np.log(probabilities)[drawn])
    frequencies = np.bincount(drawn, minlength=len(probabilities)) / n_rows
    expected = np.asarray(expected)
    # Five binomial standard deviations; tokens outside the filter: exactly 0.
    tolerance = 5 * np.sqrt(expected * (1 - expected) / n_rows)
    assert np.all(np.abs(frequencies - expected) <= tolerance), frequencies


class FixedUniforms(np.random.RandomState):
    """A RandomState whose every uniform variate is ``value``."""

    def __init__(self, value):
        super().__init__(0)
        self.value = value

    def random(self, size=None):
        return np.full(size, self.value)


@pytest.mark.parametrize(
    ("uniform", "expected"), [(0.0, 2), (0.5, 3), (np.nextafter(1.0, 0.0), 3)]
)
def test_sample_inverts_the_cumulative_distribution(uniform, expected):
    # Tokens 0, 1 and 4 have probability 0: never drawn, even at u = 0 or u
    # just below 1.
    model = scripted([[0.0, 0.0, 0.5, 0.5, 0.0]])
    sequences, _ = sample(
        model.step,
        np.zeros(1, dtype=np.int64),
        [0],
        eos_id=0,
        max_length=1,
        random_state=FixedUniforms(uniform),
    )
    assert_same_sequences(sequences, [[expected]])


def test_sample_accepts_a_random_state_instance():
    problem = DecodingProblem(
        vocab_size=5,
        batch_size=3,
        eos_id=1,
        max_length=4,
        min_length=0,
        beam_width=1,
        n_best=1,
        alpha=0.0,
        dtype="float64",
        seed=3,
    )
    model = MarkovModel(problem.make_table())
    first_tokens = problem.make_first_tokens()
    results = [
        run_sample(model, first_tokens, problem, random_state=np.random.RandomState(0))
        for _ in range(2)
    ]
    assert_same_sequences(results[0][0], results[1][0])


def test_sample_seeds_change_the_draws():
    # 4 equally likely tokens for 50 rows: two seeds drawing the same is 4**-50.
    model = scripted([UNIFORM])
    draws = [
        sample(
            model.step,
            np.zeros(50, dtype=np.int64),
            np.zeros(50, dtype=np.int64),
            eos_id=0,
            max_length=1,
            random_state=seed,
        )[0]
        for seed in (0, 1)
    ]
    assert [list(tokens) for tokens in draws[0]] != [list(t) for t in draws[1]]


@given(
    values=st.lists(
        st.lists(st.sampled_from([-np.inf, -2.0, -1.0, 0.0]), min_size=40, max_size=40),
        min_size=1,
        max_size=3,
    ),
    k=st.integers(1, 41),
)
def test_top_k_stable_is_a_stable_argsort(values, k):
    # Few distinct values: ties everywhere, -inf included. Rows long enough
    # for numpy's partition and sort to leave insertion sort, which is stable.
    values = np.array(values)
    np.testing.assert_array_equal(
        _top_k_stable(values, k), np.argsort(-values, axis=1, kind="stable")[:, :k]
    )


# errors ---------------------------------------------------------------------


def decode(decoder, model, first_tokens=(0, 1), **kwargs):
    """Call ``decoder`` on ``model`` (a :class:`ScriptedModel`) with valid
    defaults, overridden by ``kwargs``."""
    kwargs = {"eos_id": 0, "max_length": 2} | kwargs
    state = np.zeros(len(np.atleast_1d(first_tokens)), dtype=np.int64)
    if decoder == "greedy":
        return greedy_search(model.step, state, first_tokens, **kwargs)
    if decoder == "beam":
        kwargs = {"beam_width": 2} | kwargs
        return beam_search(model.step, model.reorder, state, first_tokens, **kwargs)
    return sample(model.step, state, first_tokens, **{"random_state": 0} | kwargs)


DECODERS = ["greedy", "beam", "sample"]
# eos (id 0) unlikely, so every decoder reaches step 1, where BrokenModel breaks.
VALID = [[0.01, 0.59, 0.4]] * 2


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"first_tokens": [0.0, 1.0]}, TypeError, "first_tokens must be integer"),
        ({"first_tokens": [[0, 1]]}, ValueError, r"first_tokens .* got shape \(1, 2\)"),
        ({"first_tokens": []}, ValueError, r"non-empty .* got shape \(0,\)"),
        ({"first_tokens": np.array([], np.int64)}, ValueError, "non-empty"),
        ({"first_tokens": 3}, ValueError, "first_tokens must be a non-empty 1-D"),
        ({"eos_id": 0.0}, TypeError, "eos_id must be an int"),
        ({"eos_id": True}, TypeError, "eos_id must be an int"),
        ({"eos_id": -1}, ValueError, "eos_id must be >= 0"),
        ({"max_length": 0}, ValueError, "max_length must be >= 1"),
        ({"max_length": 2.0}, TypeError, "max_length must be an int"),
        ({"min_length": -1}, ValueError, "min_length must be >= 0"),
        ({"min_length": 3}, ValueError, "min_length=3 is more than max_length=2"),
    ],
)
def test_invalid_common_arguments(decoder, kwargs, error, match):
    with pytest.raises(error, match=match):
        decode(decoder, scripted(VALID), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beam_width": 0}, ValueError, "beam_width must be >= 1"),
        ({"beam_width": 2.5}, TypeError, "beam_width must be an int"),
        ({"n_best": 0}, ValueError, "n_best must be >= 1"),
        ({"n_best": 3}, ValueError, "n_best=3 is more than beam_width=2"),
        ({"n_best": None}, TypeError, "n_best must be an int"),
        ({"length_penalty": np.nan}, ValueError, "length_penalty must be finite"),
        ({"length_penalty": "wu"}, TypeError, "length_penalty must be a real"),
    ],
)
def test_invalid_beam_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        decode("beam", scripted(VALID), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"temperature": 0.0}, ValueError, "temperature must be > 0"),
        ({"temperature": -1.0}, ValueError, "temperature must be > 0"),
        ({"temperature": np.inf}, ValueError, "temperature must be finite"),
        ({"temperature": np.nan}, ValueError, "temperature must be finite"),
        ({"temperature": "1"}, TypeError, "temperature must be a real"),
        ({"top_k": 0}, ValueError, "top_k must be >= 1"),
        ({"top_k": 1.5}, TypeError, "top_k must be an int"),
        ({"top_p": 0.0}, ValueError, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, ValueError, r"top_p must be in \(0, 1\]"),
        ({"top_p": np.nan}, ValueError, "top_p must be finite"),
        ({"random_state": "seed"}, TypeError, "random_state must be None, an int"),
        ({"random_state": -1}, ValueError, "random_state must be >= 0"),
    ],
)
def test_invalid_sample_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        decode("sample", scripted(VALID), **kwargs)


@pytest.mark.parametrize(
    ("length", "alpha", "error", "match"),
    [
        (-1, 1.0, ValueError, "length must be >= 0"),
        (1.5, 1.0, TypeError, "length must be an int"),
        (3, np.inf, ValueError, "alpha must be finite"),
        (3, None, TypeError, "alpha must be a real"),
    ],
)
def test_invalid_length_penalty_arguments(length, alpha, error, match):
    with pytest.raises(error, match=match):
        length_penalty(length, alpha)


class BrokenModel(ScriptedModel):
    """A :class:`ScriptedModel` whose output at step 1 is ``broken(log_probs)``."""

    def __init__(self, broken):
        super().__init__(np.log(VALID))
        self.broken = broken

    def step(self, tokens, counter):
        log_probs, counter = super().step(tokens, counter)
        return (self.broken(log_probs) if counter[0] == 2 else log_probs), counter


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(
    ("broken", "error", "match"),
    [
        (lambda log_probs: log_probs[:, :, None], ValueError, r"shape \(\d, 3, 1\)"),
        (lambda log_probs: log_probs[:-1], ValueError, "log_probs has shape"),
        (lambda log_probs: log_probs[:, :2], ValueError, r"expected \(\d, 3\)"),
        (lambda log_probs: log_probs[:, :0], ValueError, "log_probs has shape"),
        (lambda log_probs: log_probs.astype(int), TypeError, "must be floats"),
        (lambda log_probs: log_probs * np.nan, ValueError, "NaN or \\+inf"),
    ],
)
def test_invalid_step_output(decoder, broken, error, match):
    with pytest.raises(error, match=match):
        decode(decoder, BrokenModel(broken))


@pytest.mark.parametrize("decoder", DECODERS)
def test_step_must_return_a_pair(decoder):
    model = scripted(VALID)
    model.step = lambda tokens, counter: np.log(VALID)[counter]
    with pytest.raises(TypeError, match=r"\(log_probs, state\) pair"):
        decode(decoder, model)


@pytest.mark.parametrize("decoder", DECODERS)
def test_eos_id_outside_the_vocabulary(decoder):
    with pytest.raises(ValueError, match="eos_id=3 is not a token"):
        decode(decoder, scripted(VALID), eos_id=3)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("max_length", [1, 3])
def test_nothing_allowed_to_emit(decoder, max_length):
    # Only eos is possible, but min_length forbids it at step 0.
    model = scripted([[1.0, 0.0, 0.0]] * max_length)
    with pytest.raises(ValueError, match=r"-inf at step 0 .*min_length=1"):
        decode(decoder, model, min_length=1, max_length=max_length)


@pytest.mark.parametrize("decoder", DECODERS)
def test_the_models_log_probs_are_not_modified(decoder):
    # Rows of one array, returned as views of it.
    log_probs = np.log(VALID[:1] * 4)
    original = log_probs.copy()
    model = scripted(VALID)
    model.step = lambda tokens, counter: (log_probs[: len(tokens)], counter)
    decode(decoder, model, min_length=2, max_length=2)
    np.testing.assert_array_equal(log_probs, original)
