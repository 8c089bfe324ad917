"""corpus_bleu: sacrebleu's score on random corpora, hand-checked values, token
sequences, and a clear error for every malformed input.

The comparisons with sacrebleu (the reference implementation, a test
dependency only) skip when it is not installed; the hand-checked cases do not
need it.
"""

import doctest
import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import rnntools.metrics
from rnntools.metrics import _tokenize_13a, corpus_bleu

# corpus_bleu and sacrebleu follow the same arithmetic, so they agree to the
# last bit in practice; 1e-9 on a 0-100 scale is the promised tolerance.
ATOL = 1e-9

# Pieces of text that exercise every rule of the 13a tokenizer: words in two
# cases, ASCII punctuation and symbols, numbers with periods, commas and
# dashes, the entities and the <skipped> tag it rewrites, and non-ASCII text
# it leaves alone.
PIECES = (
    "the", "The", "cat", "sat", "on", "a", "mat", "dog", "ran", "fast",
    ".", ",", "!", "?", "'", '"', "-", "(", ")", ":", ";", "/", "$", "%", "@",
    "[", "]", "{", "}", "~", "`", "^", "_", "|", "\\", "&", "#", "*", "+", "=",
    "3.5", "1,000", "42", "7-", "2024-01", "a.b", "x,y", "U.S.", "...",
    "&amp;", "&quot;", "&lt;", "&gt;", "&amp", "<skipped>",
    "été", "naïve", "Straße", "中文", "日本語", "😀", "ü.", "Ω,",
)  # fmt: skip
SEPARATORS = (" ", " ", " ", "", "  ", "\t", "\n", "-\n", "\u00a0", "\u3000")
# Tokens without whitespace, for token-sequence input.
TOKENS = tuple(piece for piece in PIECES if piece.split() == [piece])


@pytest.fixture(scope="module")
def sacrebleu():
    return pytest.importorskip("sacrebleu")


def sacrebleu_score(sacrebleu, references, hypotheses, tokenize):
    """sacrebleu's corpus BLEU of per-hypothesis reference lists, turned into
    reference streams padded with None."""
    streams = [list(stream) for stream in itertools.zip_longest(*references)]
    return sacrebleu.corpus_bleu(hypotheses, streams, tokenize=tokenize).score


# ---------------------------------------------------------------------------
# Random corpora


@st.composite
def segments(draw):
    """A hypothesis and 1 to 3 references, all edits of one list of pieces,
    so that they share n-grams of every order some of the time."""
    base = draw(st.lists(st.sampled_from(PIECES), max_size=12))

    def edit():
        kept = [piece for piece in base if draw(st.integers(0, 4))]
        inserted = draw(st.lists(st.sampled_from(PIECES), max_size=3))
        position = draw(st.integers(0, len(kept)))
        pieces = kept[:position] + inserted + kept[position:]
        separators = draw(
            st.lists(
                st.sampled_from(SEPARATORS),
                min_size=len(pieces),
                max_size=len(pieces),
            )
        )
        return "".join(itertools.chain(*zip(pieces, separators, strict=True)))

    hypothesis = edit()
    references = [edit() for _ in range(draw(st.integers(1, 3)))]
    return hypothesis, references


corpora = st.lists(segments(), min_size=1, max_size=6)


@given(corpus=corpora, tokenize=st.sampled_from(["13a", "none"]))
@example(corpus=[("the cat sat on the mat", ["the cat sat on a mat"])], tokenize="13a")
@example(corpus=[("", ["a b c d"]), ("a b c d e", ["a b c d e"])], tokenize="13a")
@example(corpus=[("a b c", ["a b c"])], tokenize="none")
@example(corpus=[("x y z w", ["a b c d", "a b", "q"])], tokenize="13a")
def test_matches_sacrebleu_on_random_corpora(sacrebleu, corpus, tokenize):
    hypotheses = [hypothesis for hypothesis, _ in corpus]
    references = [segment_references for _, segment_references in corpus]
    expected = sacrebleu_score(sacrebleu, references, hypotheses, tokenize)
    actual = corpus_bleu(references, hypotheses, tokenize=tokenize)
    assert abs(actual - expected) <= ATOL


@pytest.mark.parametrize("seed", range(40))
def test_matches_sacrebleu_on_seeded_corpora(sacrebleu, seed):
    """Larger corpora than the property test draws, whatever its profile."""
    rng = np.random.default_rng(seed)

    def pieces(size):
        return [str(piece) for piece in rng.choice(PIECES, size=size)]

    def edit(base):
        """Drop pieces, insert some, and join them with spaces, or (one time
        in three) shuffle them and join them with random separators."""
        edited = [piece for piece in base if rng.random() < 0.8]
        edited += pieces(rng.integers(0, 3))
        if rng.random() < 2 / 3:
            return " ".join(edited)
        separators = rng.choice(SEPARATORS, size=len(edited))
        return "".join(
            piece + str(separator)
            for piece, separator in zip(
                rng.permutation(edited), separators, strict=True
            )
        )

    references, hypotheses = [], []
    for _ in range(rng.integers(1, 60)):
        base = pieces(rng.integers(0, 25))
        hypotheses.append(edit(base))
        references.append([edit(base) for _ in range(rng.integers(1, 4))])
    for tokenize in ("13a", "none"):
        expected = sacrebleu_score(sacrebleu, references, hypotheses, tokenize)
        actual = corpus_bleu(references, hypotheses, tokenize=tokenize)
        assert abs(actual - expected) <= ATOL


@given(line=st.text())
@example(line="a-\n")
@example(line="x &amp;quot; y")
@example(line="<skip<skipped>ped>")
@example(line="3.5, 1,000 and 4-5.")
def test_13a_tokenizer_matches_sacrebleu(sacrebleu, line):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    # sacrebleu strips the trailing whitespace before it tokenizes a segment.
    assert _tokenize_13a(line) == Tokenizer13a()(line.rstrip()).split()


@given(corpus=st.lists(segments(), min_size=1, max_size=6))
def test_token_sequences_match_sacrebleu_without_tokenization(sacrebleu, corpus):
    """Token sequences are used as they are: the score of sacrebleu with
    tokenize="none" on the tokens joined by spaces, for str tokens, for int
    tokens standing for them, and for tuples and arrays of them."""
    hypotheses = [_tokenize_13a(hypothesis) for hypothesis, _ in corpus]
    references = [
        [_tokenize_13a(reference) for reference in segment_references]
        for _, segment_references in corpus
    ]
    expected = sacrebleu_score(
        sacrebleu,
        [[" ".join(reference) for reference in item] for item in references],
        [" ".join(hypothesis) for hypothesis in hypotheses],
        "none",
    )
    assert abs(corpus_bleu(references, hypotheses) - expected) <= ATOL

    ids = {}
    for token in itertools.chain(*hypotheses, *itertools.chain(*references)):
        ids.setdefault(token, len(ids))
    id_hypotheses = [np.array([ids[t] for t in h], dtype=np.int64) for h in hypotheses]
    id_references = [
        [tuple(ids[t] for t in reference) for reference in item] for item in references
    ]
    assert abs(corpus_bleu(id_references, id_hypotheses) - expected) <= ATOL


# ---------------------------------------------------------------------------
# Hand-checked values


def test_perfect_match_is_100():
    sentence = "The quick brown fox jumps over the lazy dog."
    assert corpus_bleu([sentence], [sentence]) == pytest.approx(100.0, abs=ATOL)
    assert corpus_bleu([[sentence, "Something else."]], [sentence]) == pytest.approx(
        100.0, abs=ATOL
    )


def test_no_shared_word_is_0():
    assert corpus_bleu(["a b c d e"], ["v w x y z"]) == 0.0


def test_hypotheses_shorter_than_four_tokens_score_0():
    """No 4-gram in the whole corpus: precision 0 at order 4, and corpus BLEU
    does not reduce the order, so even a perfect match scores 0."""
    assert corpus_bleu(["a b c", "d e"], ["a b c", "d e"]) == 0.0
    # One hypothesis long enough is enough for the corpus to have 4-grams.
    assert corpus_bleu(["a b c", "d e f g"], ["a b c", "d e f g"]) == pytest.approx(
        100.0, abs=ATOL
    )


def test_exponential_smoothing():
    """Hypothesis "a b c d", reference "a b d c": unigrams 4/4, bigrams 1/3,
    trigrams 0/2, 4-grams 0/1; the first order without a match gets 1/(2*2),
    the second 1/(4*1)."""
    expected = 100 * (1 * (1 / 3) * (1 / 4) * (1 / 4)) ** (1 / 4)
    assert corpus_bleu(["a b d c"], ["a b c d"]) == pytest.approx(expected, abs=ATOL)


def test_brevity_penalty():
    """The hypothesis is the first half of the reference: every n-gram matches
    and BLEU = 100 exp(1 - r/c) = 100 exp(1 - 8/4)."""
    reference = "a b c d e f g h"
    expected = 100 * math.exp(1 - 8 / 4)
    assert corpus_bleu([reference], ["a b c d"]) == pytest.approx(expected, abs=ATOL)
    # A hypothesis longer than its reference has BP = 1; its repeated n-grams
    # are clipped: 4/8, 3/7, 2/6, 1/5.
    expected = 100 * (4 / 8 * 3 / 7 * 2 / 6 * 1 / 5) ** (1 / 4)
    assert corpus_bleu(["a b c d"], ["a b c d a b c d"]) == pytest.approx(
        expected, abs=ATOL
    )


def test_brevity_penalty_is_summed_over_the_corpus():
    """c = 4 + 0 and r = 4 + 4: an empty hypothesis counts its reference's
    length; its segment has no n-grams, so the precisions are those of the
    first segment alone."""
    expected = 100 * math.exp(1 - 8 / 4)
    assert corpus_bleu(["a b c d", "e f g h"], ["a b c d", ""]) == pytest.approx(
        expected, abs=ATOL
    )


@pytest.mark.parametrize(
    ("references", "expected"),
    [
        # Lengths 3 and 5 are both 1 from 4: the shorter, 3, is taken, BP = 1.
        (["a b c", "a b c d e"], 100.0),
        (["a b c d e", "a b c"], 100.0),
        # 5 is closer to 4 than 2: BP = exp(1 - 5/4).
        (["a b", "a b c d e"], 100 * math.exp(1 - 5 / 4)),
    ],
)
def test_closest_reference_length(references, expected):
    assert corpus_bleu([references], ["a b c d"]) == pytest.approx(expected, abs=ATOL)


def test_several_references_clip_by_the_largest_count_in_one_reference():
    """The word "the" is twice in the hypothesis and once in each reference:
    1 match, not 2. Unigrams 4/5, bigrams 3/4, trigrams 1/3, 4-grams 0/2
    (smoothed to 1/(2*2)); the closest reference length is 4, so BP = 1."""
    hypothesis = "the cat the dog runs"
    references = ["the cat is here", "the dog runs"]
    expected = 100 * (4 / 5 * 3 / 4 * 1 / 3 * 1 / 4) ** (1 / 4)
    assert corpus_bleu([references], [hypothesis]) == pytest.approx(expected, abs=ATOL)


def test_13a_splits_punctuation_and_none_does_not():
    hypothesis = "Hello, big world."
    reference = "Hello , big world ."
    assert corpus_bleu([reference], [hypothesis]) == pytest.approx(100.0, abs=ATOL)
    assert corpus_bleu([reference], [hypothesis], tokenize="none") < 50


def test_case_matters():
    assert corpus_bleu(["A B C D"], ["a b c d"]) == 0.0


def test_references_may_differ_in_number():
    """One reference for the first hypothesis, two for the second: the second
    reference counts for the second hypothesis only."""
    hypotheses = ["a b c d", "e f g h"]
    one_each = corpus_bleu(["a b c d", "x y z w"], hypotheses)
    more_for_one = corpus_bleu(["a b c d", ["x y z w", "e f g h"]], hypotheses)
    assert one_each < more_for_one == pytest.approx(100.0, abs=ATOL)


def test_token_sequence_forms_agree():
    """A reference as a list, a tuple or an array, alone or in a list of
    references, gives the same score; tokens are not split further."""
    hypotheses = [["the", "cat", "sat", "on", "the", "mat", "."]]
    reference = ["the", "cat", "sat", "on", "a", "mat", "."]
    expected = corpus_bleu([" ".join(reference)], [" ".join(hypotheses[0])])
    for form in (reference, tuple(reference), np.array(reference)):
        assert corpus_bleu([form], hypotheses) == expected
        assert corpus_bleu([[form]], hypotheses) == expected
        assert corpus_bleu([[form, ["x"]]], hypotheses) == expected
    assert corpus_bleu([["a,b", "c", "d", "e"]], [["a,b", "c", "d", "e"]]) == (
        pytest.approx(100.0, abs=ATOL)
    )
    assert corpus_bleu([["a,b c d e"]], [["a", ",", "b", "c", "d", "e"]]) == 0.0


def test_token_sequences_are_not_tokenized():
    """tokenize applies to strings only."""
    hypotheses = [["Hello,", "big", "world", "."]]
    references = [["Hello", ",", "big", "world", "."]]
    assert corpus_bleu(references, hypotheses, tokenize="13a") == corpus_bleu(
        references, hypotheses, tokenize="none"
    )
    assert corpus_bleu(references, hypotheses) < 100 - 1


def test_empty_token_sequence_is_one_empty_reference():
    assert corpus_bleu([[], ["a", "b", "c", "d"]], [["a"], ["a", "b", "c", "d"]]) == (
        corpus_bleu(["", "a b c d"], ["a", "a b c d"])
    )


def test_docstring_examples():
    assert doctest.testmod(rnntools.metrics).failed == 0


def test_returns_a_python_float():
    assert type(corpus_bleu(["a b c d"], ["a b c d"])) is float
    assert type(corpus_bleu(["a"], ["b"])) is float


def test_runs_without_sacrebleu():
    """No import of sacrebleu at run time, even when it is installed."""
    code = (
        "import sys; sys.modules['sacrebleu'] = None\n"
        "from rnntools.metrics import corpus_bleu\n"
        "print(round(corpus_bleu(['a b c d e'], ['a b c d e']), 6))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "100.0"


# ---------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("references", "hypotheses", "kwargs", "error", "match"),
    [
        (["a"], ["a"], {"tokenize": "intl"}, ValueError, "tokenize must be one of"),
        (["a"], ["a"], {"tokenize": None}, ValueError, "tokenize must be one of"),
        (["a", "b"], ["a"], {}, ValueError, "references has 2 items and hypotheses 1"),
        ([], [], {}, ValueError, "corpus is empty"),
        ("a b", ["a b"], {}, TypeError, "references is a single str"),
        (["a b"], "a b", {}, TypeError, "hypotheses is a single str"),
        ({"a": 1}, ["a"], {}, TypeError, "references must be a list"),
        (["a"], np.array("a"), {}, TypeError, "hypotheses must be a list"),
        (["a", "b"], ["a", ["b"]], {}, TypeError, "Hypothesis 1 is \\['b'\\]"),
        (["a"], [3], {}, TypeError, "Hypothesis 0 is 3"),
        (["a"], [None], {}, TypeError, "Hypothesis 0 is None"),
        ([None], ["a"], {}, TypeError, "references\\[0\\] is None"),
        ([["a", None]], ["a"], {}, TypeError, "Reference 1 of references\\[0\\]"),
        ([[]], ["a"], {}, ValueError, "references\\[0\\] is empty"),
        (["a b"], [["a", "b"]], {}, TypeError, "references\\[0\\] is 'a b'"),
        ([["a"]], [["a", 1.5]], {}, TypeError, "hypothesis 0 holds 1.5 of type float"),
        ([["a"]], [[True]], {}, TypeError, "holds True of type bool"),
        ([[[1.0]]], [[1]], {}, TypeError, "reference 0 of references\\[0\\] holds"),
        ([[1, 2]], [["a", "b"]], {}, TypeError, "references\\[0\\] holds int tokens"),
        ([["a"]], [["a", 1]], {}, TypeError, "hypothesis 0 holds int tokens"),
        ([["a", ["b"]]], [["a"]], {}, TypeError, "mixes tokens and token sequences"),
        ([["a"]], [np.zeros((2, 2), dtype=int)], {}, TypeError, "Tokens must be"),
    ],
)
def test_bad_input(references, hypotheses, kwargs, error, match):
    with pytest.raises(error, match=match):
        corpus_bleu(references, hypotheses, **kwargs)
