"""Vocabulary: token <-> id round trips, frequency rules, special tokens,
pickle-free storage, and a clear error for every malformed input."""

import doctest
import io
import json
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import rnntools.vocabulary
from rnntools.vocabulary import Vocabulary

PAD, BOS, EOS, UNK = 0, 1, 2, 3
N_SPECIALS = 4


def _store(vocabulary):
    """to_arrays, through an npz file and JSON as a model file would, and
    from_arrays."""
    arrays, meta = vocabulary.to_arrays()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:
        return Vocabulary.from_arrays(loaded, json.loads(json.dumps(meta)))


def _tampered(vocabulary, **changes):
    """The arrays and meta of ``vocabulary`` with keys replaced (a value of
    None removes the key); meta keys are prefixed with ``meta_``."""
    arrays, meta = vocabulary.to_arrays()
    for key, value in changes.items():
        target, key = (meta, key[5:]) if key.startswith("meta_") else (arrays, key)
        if value is None:
            del target[key]
        else:
            target[key] = value
    return arrays, meta


def test_docstring_examples():
    assert doctest.testmod(rnntools.vocabulary).failed == 0


def test_specials_are_fixed():
    assert (Vocabulary.PAD, Vocabulary.BOS, Vocabulary.EOS, Vocabulary.UNK) == (
        PAD,
        BOS,
        EOS,
        UNK,
    )
    assert Vocabulary.SPECIALS == ("<pad>", "<bos>", "<eos>", "<unk>")
    vocabulary = Vocabulary().fit([[7]])
    assert vocabulary.tokens_[:N_SPECIALS] == list(Vocabulary.SPECIALS)
    assert len(vocabulary) == N_SPECIALS + 1


# Round trips ----------------------------------------------------------------


def test_character_round_trip():
    texts = ["hello world", "", "naïve café ☕", "a\0b"]
    vocabulary = Vocabulary().fit(texts)
    assert vocabulary.token_kind_ == "str"
    ids = vocabulary.encode(texts)
    assert all(i.dtype == np.int64 and i.ndim == 1 for i in ids)
    assert [len(i) for i in ids] == [len(t) for t in texts]
    assert ["".join(tokens) for tokens in vocabulary.decode(ids)] == texts
    assert UNK not in np.concatenate(ids)
    assert min(np.concatenate(ids)) >= N_SPECIALS


def test_word_round_trip_from_lists_tuples_and_arrays():
    sentences = [
        ["the", "cat", "sat"],
        ("the", "dog"),
        np.array(["a", "cat"]),
        np.array(["the", "end"], dtype=object),
    ]
    vocabulary = Vocabulary().fit(sentences)
    assert vocabulary.tokens_[N_SPECIALS:] == ["the", "cat", "sat", "dog", "a", "end"]
    assert all(type(t) is str for t in vocabulary.tokens_)
    decoded = vocabulary.decode(vocabulary.encode(sentences))
    assert decoded == [list(s) for s in sentences]


def test_int_round_trip_with_numpy_integers():
    sequences = [
        [5, 3, 5],
        np.array([3, 9], dtype=np.int32),
        [np.int64(9), np.uint8(5), 11],
        np.array([11, 0], dtype=np.uint16),
    ]
    vocabulary = Vocabulary().fit(sequences)
    assert vocabulary.token_kind_ == "int"
    assert vocabulary.tokens_[N_SPECIALS:] == [5, 3, 9, 11, 0]
    assert all(type(t) is int for t in vocabulary.tokens_[N_SPECIALS:])
    decoded = vocabulary.decode(vocabulary.encode(sequences))
    assert decoded == [[int(t) for t in s] for s in sequences]


def test_int_tokens_0_to_3_are_ordinary_tokens():
    vocabulary = Vocabulary().fit([[0, 1, 2, 3]])
    np.testing.assert_array_equal(vocabulary.encode_one([3, 2, 1, 0]), [7, 6, 5, 4])
    assert vocabulary.decode_one([4, 5, 6, 7]) == [0, 1, 2, 3]


def test_outer_array_of_strings_is_a_list_of_texts():
    vocabulary = Vocabulary().fit(np.array(["ab", "ba"]))
    assert vocabulary.tokens_[N_SPECIALS:] == ["a", "b"]
    np.testing.assert_array_equal(vocabulary.encode(np.array(["ba"]))[0], [5, 4])


def test_2d_int_array_is_a_list_of_rows():
    vocabulary = Vocabulary().fit(np.array([[1, 2], [2, 2]]))
    assert vocabulary.tokens_[N_SPECIALS:] == [2, 1]


def test_encode_adds_bos_and_eos():
    vocabulary = Vocabulary().fit(["ab"])
    np.testing.assert_array_equal(
        vocabulary.encode_one("ba", add_bos=True, add_eos=True), [BOS, 5, 4, EOS]
    )
    np.testing.assert_array_equal(vocabulary.encode_one("ab", add_bos=True), [1, 4, 5])
    np.testing.assert_array_equal(vocabulary.encode_one("ab", add_eos=True), [4, 5, 2])
    empty = vocabulary.encode(["", []], add_bos=True, add_eos=True)
    for ids in empty:
        np.testing.assert_array_equal(ids, [BOS, EOS])
        assert ids.dtype == np.int64
    assert vocabulary.encode_one("").dtype == np.int64
    assert vocabulary.encode_one("").shape == (0,)


def test_encode_one_matches_encode():
    sentences = [["x", "y", "x"], ["z", "q"]]
    vocabulary = Vocabulary().fit(sentences)
    for sentence, ids in zip(
        sentences, vocabulary.encode(sentences, add_eos=True), strict=True
    ):
        np.testing.assert_array_equal(
            vocabulary.encode_one(sentence, add_eos=True), ids
        )


@given(st.lists(st.text(), min_size=1))
def test_any_text_round_trips_through_storage(texts):
    """Any characters, including NUL and lone surrogates, which NumPy's unicode
    arrays would drop at the end of a token without ``token_lengths``."""
    if not "".join(texts):
        texts = [*texts, "\0"]
    vocabulary = _store(Vocabulary().fit(texts))
    decoded = vocabulary.decode(vocabulary.encode(texts, add_bos=True, add_eos=True))
    assert ["".join(tokens) for tokens in decoded] == texts


@given(
    st.lists(
        st.lists(
            st.text(min_size=0, max_size=3).filter(
                lambda t: t not in Vocabulary.SPECIALS
            )
        ),
        min_size=1,
    ).filter(lambda sentences: any(sentences))
)
def test_any_words_round_trip_through_storage(sentences):
    vocabulary = _store(Vocabulary().fit(sentences))
    assert vocabulary.decode(vocabulary.encode(sentences)) == sentences


# Frequencies ----------------------------------------------------------------


def test_ids_by_decreasing_frequency_then_first_appearance():
    vocabulary = Vocabulary().fit(["cab", "bcd", "d"])
    # counts: c 2, a 1, b 2, d 2; first seen in the order c, a, b, d
    assert vocabulary.tokens_[N_SPECIALS:] == ["c", "b", "d", "a"]


def test_min_frequency_drops_rare_tokens_to_unk():
    vocabulary = Vocabulary(min_frequency=2).fit([["a", "b", "a"], ["c", "b", "d"]])
    assert vocabulary.tokens_[N_SPECIALS:] == ["a", "b"]
    np.testing.assert_array_equal(
        vocabulary.encode_one(["a", "c", "b", "d"]), [4, UNK, 5, UNK]
    )


def test_max_size_keeps_the_most_frequent_and_breaks_ties_by_first_appearance():
    texts = ["dccbba", "eb"]  # b 3, c 2, d 1, a 1, e 1
    assert Vocabulary(max_size=1).fit(texts).tokens_[N_SPECIALS:] == ["b"]
    assert Vocabulary(max_size=2).fit(texts).tokens_[N_SPECIALS:] == ["b", "c"]
    # three-way tie at the cut: d, a, e in order of first appearance
    assert Vocabulary(max_size=3).fit(texts).tokens_[N_SPECIALS:] == ["b", "c", "d"]
    assert Vocabulary(max_size=4).fit(texts).tokens_[N_SPECIALS:] == [
        "b",
        "c",
        "d",
        "a",
    ]
    assert len(Vocabulary(max_size=4).fit(texts)) == N_SPECIALS + 4
    assert len(Vocabulary(max_size=100).fit(texts)) == N_SPECIALS + 5


def test_max_size_applies_after_min_frequency():
    vocabulary = Vocabulary(min_frequency=2, max_size=5).fit(["aabbccd"])
    assert vocabulary.tokens_[N_SPECIALS:] == ["a", "b", "c"]


def test_refit_forgets_the_previous_tokens():
    vocabulary = Vocabulary().fit(["abc"])
    vocabulary.fit(["xy"])
    assert vocabulary.tokens_[N_SPECIALS:] == ["x", "y"]
    np.testing.assert_array_equal(vocabulary.encode_one("a"), [UNK])


# Unknown and special tokens ----------------------------------------------------


def test_unknown_tokens_encode_to_unk():
    vocabulary = Vocabulary().fit([["a", "b"]])
    np.testing.assert_array_equal(vocabulary.encode_one(["b", "zz", "a"]), [5, 3, 4])
    np.testing.assert_array_equal(vocabulary.encode_one("ab"), [4, 5])
    ints = Vocabulary().fit([[10, 20]])
    np.testing.assert_array_equal(
        ints.encode_one([20, 30, 2**70, np.int8(10)]), [5, UNK, UNK, 4]
    )


def test_special_strings_in_the_data_are_the_special_tokens():
    sentences = [["a", "<unk>", "b", "<eos>", "<pad>", "<bos>"], ["<unk>", "<unk>"]]
    vocabulary = Vocabulary().fit(sentences)
    assert vocabulary.tokens_ == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b"]
    ids = vocabulary.encode(sentences)
    np.testing.assert_array_equal(ids[0], [4, UNK, 5, EOS, PAD, BOS])
    assert vocabulary.decode(ids) == [["a", "<unk>", "b"], ["<unk>", "<unk>"]]


def test_decode_strips_special_tokens_and_stops_at_the_first_eos():
    vocabulary = Vocabulary().fit(["ab"])
    ids = [BOS, 4, PAD, UNK, 5, EOS, 4, EOS, 5]
    assert vocabulary.decode_one(ids) == ["a", "<unk>", "b"]
    assert vocabulary.decode_one(ids, strip_special=False) == [
        "<bos>",
        "a",
        "<pad>",
        "<unk>",
        "b",
        "<eos>",
        "a",
        "<eos>",
        "b",
    ]
    assert vocabulary.decode_one([EOS, 4]) == []
    assert vocabulary.decode_one([]) == []


def test_decode_a_padded_2d_array_and_mixed_integer_dtypes():
    vocabulary = Vocabulary().fit([[10, 20, 30]])
    padded = np.array([[BOS, 4, 5, EOS, PAD], [BOS, 6, UNK, PAD, PAD]], dtype=np.int32)
    assert vocabulary.decode(padded) == [[10, 20], [30, "<unk>"]]
    assert vocabulary.decode((np.array([4], dtype=np.uint8), [5, 6])) == [
        [10],
        [20, 30],
    ]
    assert vocabulary.decode([]) == []


@pytest.mark.parametrize("bad_id", [-1, N_SPECIALS + 2])
def test_decode_rejects_ids_out_of_range(bad_id):
    vocabulary = Vocabulary().fit(["ab"])
    with pytest.raises(ValueError, match=rf"ids holds the id {bad_id} at position 1"):
        vocabulary.decode_one([4, bad_id])
    with pytest.raises(ValueError, match=rf"ids\[1\] holds the id {bad_id}"):
        vocabulary.decode([[4], [bad_id]])


@pytest.mark.parametrize(
    "ids", [[4.0, 5.0], [True, False], ["a"], np.array([4, 5], dtype=object)]
)
def test_decode_rejects_ids_that_are_not_integers(ids):
    vocabulary = Vocabulary().fit(["ab"])
    with pytest.raises(TypeError, match="ids must hold integer ids, got dtype"):
        vocabulary.decode_one(ids)
    with pytest.raises(TypeError, match=r"ids\[0\] must hold integer ids"):
        vocabulary.decode([ids])


def test_decode_rejects_misshapen_ids():
    vocabulary = Vocabulary().fit(["ab"])
    with pytest.raises(ValueError, match=r"ids must be a 1-D sequence of ids, got sh"):
        vocabulary.decode_one([[4, 5]])
    with pytest.raises(ValueError, match="ids must be a 1-D sequence of ids"):
        vocabulary.decode_one([[4, 5], [4]])
    with pytest.raises(ValueError, match=r"ids\[0\] .* decode_one takes one"):
        vocabulary.decode(np.array([4, 5]))
    with pytest.raises(ValueError, match=r"ids\[0\] must be a 1-D sequence of ids"):
        vocabulary.decode(np.zeros((1, 2, 2), dtype=int))
    for not_a_list in (None, 4, "45", {0: [4]}):
        with pytest.raises(TypeError, match="ids must be a list, tuple or array"):
            vocabulary.decode(not_a_list)


# Storage -------------------------------------------------------------------


@pytest.mark.parametrize(
    "vocabulary",
    [
        Vocabulary().fit(["hello\0", "\0", "x\0\0"]),
        Vocabulary(min_frequency=2, max_size=3).fit([["the", "cat", "the", "cat"]]),
        Vocabulary(max_size=10).fit([np.array([2**62, -5, 0, 2**62])]),
    ],
    ids=["chars-with-nul", "words", "ints"],
)
def test_to_arrays_from_arrays_round_trip(vocabulary):
    arrays, meta = vocabulary.to_arrays()
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    assert arrays["tokens"].dtype.kind == (
        "U" if vocabulary.token_kind_ == "str" else "i"
    )
    assert meta == {
        "min_frequency": vocabulary.min_frequency,
        "max_size": vocabulary.max_size,
        "token_kind": vocabulary.token_kind_,
    }
    restored = _store(vocabulary)
    assert restored.tokens_ == vocabulary.tokens_
    assert [type(t) for t in restored.tokens_] == [type(t) for t in vocabulary.tokens_]
    assert restored.token_kind_ == vocabulary.token_kind_
    assert restored.get_params() == vocabulary.get_params()
    sample = [vocabulary.tokens_[N_SPECIALS:]]
    np.testing.assert_array_equal(
        restored.encode(sample)[0], vocabulary.encode(sample)[0]
    )


def test_to_arrays_keeps_trailing_nul_characters_apart():
    vocabulary = Vocabulary().fit([["a", "a\0", "a\0\0"]])
    arrays, _ = vocabulary.to_arrays()
    np.testing.assert_array_equal(arrays["token_lengths"], [1, 2, 3])
    assert _store(vocabulary).tokens_[N_SPECIALS:] == ["a", "a\0", "a\0\0"]


def test_to_arrays_takes_numpy_integer_parameters():
    vocabulary = Vocabulary(min_frequency=np.int64(1), max_size=np.int32(5))
    _, meta = vocabulary.fit(["ab"]).to_arrays()
    assert json.loads(json.dumps(meta)) == {
        "min_frequency": 1,
        "max_size": 5,
        "token_kind": "str",
    }


_WORDS = Vocabulary().fit([["the", "cat", "sat"]])
_INTS = Vocabulary().fit([[7, 8, 9]])


@pytest.mark.parametrize(
    ("vocabulary", "changes", "match"),
    [
        (_WORDS, {"tokens": np.array(["the", "cat", "the"])}, "'the' appears twice"),
        (_INTS, {"tokens": np.array([7, 8, 7])}, "7 appears twice"),
        (
            _WORDS,
            {"tokens": np.array(["the", "cat", "sat"], dtype=object)},
            "must be a unicode array, got object",
        ),
        (_INTS, {"tokens": np.array([7, 8, 9], dtype=object)}, "must be int64"),
        (_INTS, {"tokens": np.array([7, 8, 9], dtype=np.int32)}, "must be int64"),
        (_INTS, {"tokens": np.array(["7", "8", "9"])}, "must be int64"),
        (_WORDS, {"tokens": np.array([1, 2, 3])}, "must be a unicode array"),
        (_WORDS, {"tokens": ["the", "cat", "sat"]}, "'tokens' must be a 1-D ndarray"),
        (_INTS, {"tokens": np.array([[7, 8, 9]])}, "'tokens' must be a 1-D ndarray"),
        (
            _WORDS,
            {"tokens": np.array([], dtype=str), "token_lengths": np.array([], int)},
            "no learned token",
        ),
        (_WORDS, {"specials": None}, "must be exactly"),
        (_INTS, {"specials": None}, "must be exactly"),
        (
            _WORDS,
            {"specials": np.array(["<pad>", "<bos>", "<eos>"])},
            "special tokens must be",
        ),
        (
            _INTS,
            {"specials": np.array(["<pad>", "<eos>", "<bos>", "<unk>"])},
            "special tokens must be",
        ),
        (
            _INTS,
            {"specials": np.array(Vocabulary.SPECIALS, dtype=object)},
            "special tokens must be",
        ),
        (
            _WORDS,
            {
                "tokens": np.array(["the", "<unk>", "sat"]),
                "token_lengths": np.array([3, 5, 3]),
            },
            r"is a special token: \['<unk>'\]",
        ),
        (_WORDS, {"token_lengths": None}, "must be exactly"),
        (_INTS, {"token_lengths": np.array([1, 1, 1])}, "must be exactly"),
        (_WORDS, {"extra": np.zeros(1)}, "must be exactly"),
        (
            _WORDS,
            {"token_lengths": np.array([3, 3, 3], dtype=np.int32)},
            "token_lengths must be int64",
        ),
        (_WORDS, {"token_lengths": np.array([3, 3])}, "token_lengths must be int64"),
        (_WORDS, {"token_lengths": np.array([3, 2, 3])}, "do not match the tokens"),
        (_WORDS, {"token_lengths": np.array([3, 3, 10**12])}, "do not match the tok"),
        (_WORDS, {"meta_token_kind": "float"}, "token_kind must be 'str' or 'int'"),
        (_WORDS, {"meta_token_kind": "int"}, "must be exactly"),
        (_INTS, {"meta_token_kind": "str"}, "must be exactly"),
        (_WORDS, {"meta_min_frequency": 0}, "min_frequency must be an int >= 1"),
        (_WORDS, {"meta_min_frequency": True}, "min_frequency must be an int >= 1"),
        (_WORDS, {"meta_min_frequency": 1.0}, "min_frequency must be an int >= 1"),
        (_WORDS, {"meta_max_size": 0}, "max_size must be None or an int >= 1"),
        (_WORDS, {"meta_max_size": "3"}, "max_size must be None or an int >= 1"),
        (_WORDS, {"meta_max_size": 2}, "holds 3 tokens, more than its max_size=2"),
        (_WORDS, {"meta_max_size": None, "meta_extra": 1}, "metadata must be a dict"),
        (_WORDS, {"meta_min_frequency": None}, "metadata must be a dict"),
    ],
)
def test_from_arrays_rejects_tampered_arrays(vocabulary, changes, match):
    arrays, meta = _tampered(vocabulary, **changes)
    with pytest.raises(ValueError, match=match):
        Vocabulary.from_arrays(arrays, meta)


def test_from_arrays_rejects_containers_of_the_wrong_type():
    arrays, meta = _WORDS.to_arrays()
    with pytest.raises(ValueError, match="metadata must be a dict"):
        Vocabulary.from_arrays(arrays, json.dumps(meta))
    with pytest.raises(ValueError, match="must be exactly"):
        Vocabulary.from_arrays(list(arrays.values()), meta)


def test_pickle_round_trip():
    for vocabulary in (
        Vocabulary(max_size=3).fit(["abcabcd"]),
        Vocabulary().fit([[5, 6]]),
    ):
        restored = pickle.loads(pickle.dumps(vocabulary))
        assert restored.tokens_ == vocabulary.tokens_
        assert restored.get_params() == vocabulary.get_params()
        sample = [vocabulary.tokens_[N_SPECIALS:]]
        np.testing.assert_array_equal(
            restored.encode(sample)[0], vocabulary.encode(sample)[0]
        )


def test_clone_gives_an_unfitted_copy_with_the_same_parameters():
    vocabulary = Vocabulary(min_frequency=2, max_size=7).fit(["aabb"])
    copy = clone(vocabulary)
    assert copy.get_params() == {"min_frequency": 2, "max_size": 7}
    with pytest.raises(NotFittedError):
        len(copy)


# Bad input -----------------------------------------------------------------


def test_unfitted_vocabulary_raises_not_fitted():
    vocabulary = Vocabulary()
    assert bool(vocabulary)
    for call in (
        lambda: len(vocabulary),
        lambda: vocabulary.encode(["a"]),
        lambda: vocabulary.encode_one("a"),
        lambda: vocabulary.decode([[4]]),
        lambda: vocabulary.decode_one([4]),
        vocabulary.to_arrays,
    ):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"min_frequency": 0}, "'min_frequency' parameter"),
        ({"min_frequency": 1.5}, "'min_frequency' parameter"),
        ({"min_frequency": "2"}, "'min_frequency' parameter"),
        ({"max_size": 0}, "'max_size' parameter"),
        ({"max_size": 2.0}, "'max_size' parameter"),
    ],
)
def test_fit_rejects_bad_parameters(params, match):
    # sklearn's InvalidParameterError is both a ValueError and a TypeError.
    with pytest.raises(ValueError, match=match):
        Vocabulary(**params).fit(["ab"])
    with pytest.raises(TypeError, match=match):
        Vocabulary(**params).fit(["ab"])


@pytest.mark.parametrize(
    ("sequences", "error", "match"),
    [
        ("hello", TypeError, "sequences is a single str; pass a list of strings"),
        (b"hello", TypeError, "sequences is a single bytes; pass a list of strings"),
        ({"a": "b"}, TypeError, "sequences must be a list .* got a dict"),
        (None, TypeError, "sequences must be a list .* got a NoneType"),
        (3, TypeError, "sequences must be a list .* got a int"),
        (np.array("ab"), TypeError, "sequences must be a list .* got a ndarray"),
        ((s for s in ["ab"]), TypeError, "sequences must be a list .* got a gener"),
        ([], ValueError, "sequences is empty: expected at least one sequence"),
        ((), ValueError, "sequences is empty"),
        (["ab", 3], TypeError, "sequence 1 of sequences is a int; expected a str"),
        (["ab", None], TypeError, "sequence 1 of sequences is a NoneType"),
        (["ab", {"a", "b"}], TypeError, "sequence 1 of sequences is a set"),
        (["ab", b"ab"], TypeError, "sequence 1 of sequences is a bytes"),
        (
            [["a"], ["b", ["c"]]],
            TypeError,
            r"sequence 1 of sequences holds \['c'\] of type list\. It is unhashable",
        ),
        ([["a", {"b": 1}]], TypeError, "sequence 0 .* type dict. It is unhashable"),
        ([[1, np.array([2])]], TypeError, "sequence 0 .* type ndarray. It is unhash"),
        (
            [np.array([np.array([1]), np.array([2, 3])], dtype=object)],
            TypeError,
            "sequence 0 .* type ndarray. It is unhashable",
        ),
        ([["a", 1]], TypeError, "sequence 0 of sequences mixes str and int tokens"),
        ([[np.int64(1), "a"]], TypeError, "sequence 0 .* mixes str and int"),
        (
            [["a"], [], [1, 2]],
            TypeError,
            "sequence 2 of sequences holds int tokens, but sequence 0 holds str",
        ),
        (
            [[1], "ab"],
            TypeError,
            "sequence 1 of sequences holds str tokens, but sequence 0 holds int",
        ),
        ([[1, 2.5]], TypeError, "sequence 0 of sequences holds 2.5 of type float"),
        ([[1, np.float32(2)]], TypeError, r"holds \S*2\.0\)? of type float32"),
        ([np.array([1.0, 2.0])], TypeError, r"holds \S*1\.0\)? of type float64"),
        ([[1, True]], TypeError, "holds True of type bool. Booleans are not"),
        ([np.array([True])], TypeError, "of type bool_?. Booleans are not"),
        ([[b"a"]], TypeError, "of type bytes. Decode bytes to str first"),
        ([np.array([b"a"])], TypeError, "Decode bytes to str first"),
        ([[None]], TypeError, "holds None of type NoneType"),
        ([np.zeros((2, 2), dtype=int)], ValueError, r"shape \(2, 2\); .* must be 1-D"),
        (["", [], np.array([])], ValueError, "Every sequence is empty"),
        (
            [[2**70]],
            ValueError,
            "int token 1180591620717411303424 is outside the int64",
        ),
        ([["<unk>", "<pad>"]], ValueError, "No token to learn"),
    ],
)
def test_fit_rejects_bad_sequences(sequences, error, match):
    with pytest.raises(error, match=match):
        Vocabulary().fit(sequences)


def test_fit_rejects_when_min_frequency_leaves_no_token():
    with pytest.raises(ValueError, match="fewer than min_frequency=3 times"):
        Vocabulary(min_frequency=3).fit(["abcab"])


def test_long_unprintable_tokens_are_shortened_in_messages():
    with pytest.raises(TypeError, match=r"holds \[0, 0, .*\.\.\. of type list") as info:
        Vocabulary().fit([[[0] * 1000]])
    assert len(str(info.value)) < 300


def test_encode_applies_the_same_checks_as_fit():
    vocabulary = Vocabulary().fit([["a"]])
    with pytest.raises(TypeError, match="pass a list of strings"):
        vocabulary.encode("a")
    with pytest.raises(ValueError, match="sequences is empty"):
        vocabulary.encode([])
    with pytest.raises(TypeError, match=r"sequence 1 of sequences holds \['a'\]"):
        vocabulary.encode([["a"], [["a"]]])
    with pytest.raises(TypeError, match=r"the sequence holds \['a'\] .* encode_one"):
        vocabulary.encode_one([["a"]])
    with pytest.raises(TypeError, match=r"the sequence holds 1\.5 of type float"):
        vocabulary.encode_one([1.5])
    with pytest.raises(TypeError, match="the sequence is a NoneType"):
        vocabulary.encode_one(None)


def test_encode_rejects_the_other_kind_of_token():
    words = Vocabulary().fit([["a", "b"]])
    ints = Vocabulary().fit([[1, 2]])
    with pytest.raises(TypeError, match=r"fitted on str tokens, but sequence 1 .* int"):
        words.encode([["a"], [1]])
    with pytest.raises(TypeError, match=r"fitted on int tokens, but sequence 0 .* str"):
        ints.encode([["1"]])
    with pytest.raises(TypeError, match=r"fitted on int tokens, but sequence 0 .* str"):
        ints.encode(["12"])
    with pytest.raises(
        TypeError, match=r"fitted on int tokens, but the sequence .*str"
    ):
        ints.encode_one("12")
    with pytest.raises(
        TypeError, match=r"fitted on str tokens, but the sequence .*int"
    ):
        words.encode_one(np.array([1]))
    # Characters of a str are str tokens, fine for a word vocabulary; empty
    # sequences have no kind.
    np.testing.assert_array_equal(words.encode_one("ab"), [4, 5])
    np.testing.assert_array_equal(ints.encode_one(""), [])
    np.testing.assert_array_equal(words.encode([[], np.array([])])[1], [])


def test_check_sequences_names_the_input_and_checks_the_kind_once_fitted():
    vocabulary = Vocabulary()
    checked = vocabulary.check_sequences(["ab", ("c",), np.array(["d"])], name="X")
    assert checked == ["ab", ("c",), ["d"]]
    assert vocabulary.check_sequences([np.array([3, 4], dtype=np.int8)]) == [[3, 4]]
    with pytest.raises(TypeError, match=r"sequence 1 of X holds 1\.5"):
        vocabulary.check_sequences(["a", [1.5]], name="X")
    with pytest.raises(TypeError, match="X is a single str"):
        vocabulary.check_sequences("ab", name="X")
    vocabulary.fit([[1, 2]])
    with pytest.raises(TypeError, match=r"fitted on int tokens, but sequence 0 of X"):
        vocabulary.check_sequences(["ab"], name="X")


@given(
    training=st.lists(st.text(max_size=8), min_size=1, max_size=6),
    texts=st.lists(st.text(max_size=8), min_size=1, max_size=6),
    add_bos=st.booleans(),
    add_eos=st.booleans(),
)
def test_texts_encode_at_once_as_one_by_one(training, texts, add_bos, add_eos):
    # The one-lookup path for texts (code points, searchsorted) against the
    # dictionary lookup per token, with unseen characters (UNK), empty texts
    # and any code point, surrogates included.
    vocabulary = Vocabulary().fit([*training, "<pad>x"])
    padded, lengths = vocabulary._encode_padded(
        texts, add_bos=add_bos, add_eos=add_eos, name="X"
    )
    one_by_one = vocabulary.encode(texts, add_bos=add_bos, add_eos=add_eos)
    np.testing.assert_array_equal(lengths, [len(ids) for ids in one_by_one])
    assert padded.shape == (len(texts), max(lengths))
    for row, ids in zip(padded, one_by_one, strict=True):
        np.testing.assert_array_equal(row[: len(ids)], ids)
        assert np.all(row[len(ids) :] == PAD)
    # Token sequences take the general path, with the same result.
    lists, list_lengths = vocabulary._encode_padded(
        [list(text) for text in texts], add_bos=add_bos, add_eos=add_eos, name="X"
    )
    np.testing.assert_array_equal(lists, padded)
    np.testing.assert_array_equal(list_lengths, lengths)
