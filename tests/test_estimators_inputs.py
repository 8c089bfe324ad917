"""Input formats, ragged batches, dtypes, and bad input (a clear error each)."""

import numpy as np
import pytest
import scipy.sparse
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from rnntools import RNNClassifier, RNNRegressor, RNNTagger

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ALL_ESTIMATORS = [RNNClassifier, RNNRegressor, RNNTagger]


def _small(estimator_class, **params):
    params = {"hidden_size": 4, "max_iter": 2, "random_state": 0, **params}
    return estimator_class(**params)


def _targets(estimator_class, X):
    """Targets of the right kind for sequences ``X`` (a list or an array)."""
    lengths = [len(sequence) for sequence in X]
    if estimator_class is RNNTagger:
        return [np.arange(length) % 3 for length in lengths]
    if estimator_class is RNNRegressor:
        return np.linspace(-1.0, 1.0, len(lengths))
    return np.arange(len(lengths)) % 3


def _ragged(n=10, n_features=2, seed=0, dtype=np.float64, max_length=9):
    rng = np.random.RandomState(seed)
    lengths = rng.randint(1, max_length + 1, n)
    return [rng.normal(size=(length, n_features)).astype(dtype) for length in lengths]


# ------------------------------------------------------------------ formats
@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_three_formats_of_the_same_data_give_the_same_model(estimator_class):
    """A 2-D array (n, T), the 3-D array (n, T, 1) and the list of (T,) arrays
    are the same univariate sequences: the same parameters, bit for bit, and
    the same predictions."""
    rng = np.random.RandomState(0)
    X2 = rng.normal(size=(9, 6))
    y = _targets(estimator_class, X2)
    fitted = [_small(estimator_class).fit(X, y) for X in (X2, X2[:, :, None], list(X2))]
    reference = fitted[0]
    for other in fitted[1:]:
        assert other.n_features_in_ == 1
        for key, value in reference.params_.items():
            np.testing.assert_array_equal(other.params_[key], value)
    expected = np.asarray(reference.predict(X2))
    for X in (X2[:, :, None], list(X2)):
        np.testing.assert_array_equal(np.asarray(reference.predict(X)), expected)


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_list_of_equal_length_sequences_equals_the_3d_array(estimator_class):
    rng = np.random.RandomState(0)
    X3 = rng.normal(size=(7, 5, 3))
    y = _targets(estimator_class, X3)
    from_array = _small(estimator_class).fit(X3, y)
    from_list = _small(estimator_class).fit(list(X3), y)
    for key, value in from_array.params_.items():
        np.testing.assert_array_equal(from_list.params_[key], value)


def test_ragged_object_array_is_a_list_of_sequences():
    X = _ragged()
    as_objects = np.empty(len(X), dtype=object)
    as_objects[:] = X
    y = _targets(RNNTagger, X)
    tagger = _small(RNNTagger).fit(as_objects, y)
    predicted = tagger.predict(as_objects)
    assert isinstance(predicted, list)
    for a, b in zip(predicted, tagger.predict(X), strict=True):
        np.testing.assert_array_equal(a, b)


def test_tagger_returns_a_list_for_a_list_and_an_array_for_an_array():
    X3 = np.random.RandomState(0).normal(size=(4, 6, 2))
    tagger = _small(RNNTagger).fit(X3, _targets(RNNTagger, X3))
    assert isinstance(tagger.predict(list(X3)), list)
    assert tagger.predict(X3).shape == (4, 6)
    assert tagger.predict_proba(X3).shape == (4, 6, len(tagger.classes_))


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_predicts_sequences_longer_than_in_training(estimator_class):
    X = _ragged(max_length=5)
    estimator = _small(estimator_class).fit(X, _targets(estimator_class, X))
    longer = _ragged(n=3, max_length=40, seed=1)
    longer[0] = np.random.RandomState(2).normal(size=(40, 2))
    predicted = estimator.predict(longer)
    assert len(predicted) == 3
    as_array = estimator.predict(np.stack([longer[0]] * 2))
    assert len(as_array) == 2
    if estimator_class is RNNTagger:
        assert [len(p) for p in predicted] == [len(x) for x in longer]
    if estimator_class is RNNRegressor:
        assert np.isfinite(predicted).all()


# ------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
@pytest.mark.parametrize("compute_dtype", ["float32", "float64"])
@pytest.mark.parametrize("input_dtype", [np.float32, np.float64])
def test_dtypes(estimator_class, compute_dtype, input_dtype):
    """params_ follow the ``dtype`` hyperparameter whatever the input; the
    predictions follow the input (float32 stays float32, as in check_array)."""
    X = _ragged(dtype=input_dtype)
    estimator = _small(estimator_class, dtype=compute_dtype)
    estimator.fit(X, _targets(estimator_class, X))
    assert {p.dtype for p in estimator.params_.values()} == {np.dtype(compute_dtype)}
    if estimator_class is RNNRegressor:
        outputs = [estimator.predict(X)]
    elif estimator_class is RNNTagger:
        outputs = estimator.predict_proba(X) + estimator.predict_log_proba(X)
    else:
        outputs = [estimator.predict_proba(X), estimator.predict_log_proba(X)]
    assert {o.dtype for o in outputs} == {np.dtype(input_dtype)}


def test_integer_input_is_read_as_float64():
    X = np.random.RandomState(0).randint(0, 5, size=(8, 4, 2))
    regressor = _small(RNNRegressor).fit(X, np.arange(8.0))
    assert regressor.predict(X).dtype == np.float64


# ------------------------------------------------------------------- ragged
# A sequence gives the same prediction in any batch. The labels must be equal;
# the probabilities may differ by a few float32 rounding steps, because BLAS
# blocks its GEMMs (input projection, recurrent product, head) by the shapes,
# and the shapes depend on the batch. We measured at most 1 ulp (1.2e-7) on the
# hidden states and 3e-8 on probabilities; atol=1e-6 is 8 ulps of 1.0.
BATCH_TOLERANCE = {np.float32: 1e-6, np.float64: 1e-12}


@pytest.mark.parametrize(
    "architecture",
    [
        dict(cell="rnn"),
        dict(cell="rnn", nonlinearity="relu"),
        dict(cell="lstm", num_layers=2),
        dict(cell="gru", bidirectional=True),
        dict(cell="lstm", bidirectional=True, num_layers=2, dtype="float64"),
    ],
    ids=lambda a: "-".join(f"{k}={v}" for k, v in a.items()),
)
@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_batch_composition_never_changes_predictions(estimator_class, architecture):
    X = _ragged(n=14, max_length=11, seed=3)
    estimator = _small(estimator_class, hidden_size=6, max_iter=3, **architecture)
    estimator.fit(X, _targets(estimator_class, X))
    atol = BATCH_TOLERANCE[np.dtype(architecture.get("dtype", "float32")).type]
    together = estimator.predict(X)
    alone = [estimator.predict([x])[0] for x in X]
    reversed_batch = estimator.predict(X[::-1])[::-1]
    if estimator_class is RNNRegressor:
        np.testing.assert_allclose(alone, together, rtol=0, atol=atol)
        np.testing.assert_allclose(reversed_batch, together, rtol=0, atol=atol)
        return
    proba = estimator.predict_proba(X)
    proba_alone = [estimator.predict_proba([x])[0] for x in X]
    for p, q in zip(proba, proba_alone, strict=True):
        np.testing.assert_allclose(q, p, rtol=0, atol=atol)
        # Exact label equality is meaningful only away from ties.
        top_two = np.sort(np.atleast_2d(p), axis=-1)[..., -2:]
        assert np.min(top_two[..., 1] - top_two[..., 0]) > 100 * atol
    for a, b, c in zip(together, alone, reversed_batch, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_padding_never_leaks_into_predictions():
    """A short sequence batched with a long one predicts as when alone, whatever
    the long one holds (large values would show through any leak)."""
    X = _ragged(n=8, max_length=6)
    classifier = _small(RNNClassifier, max_iter=3).fit(X, _targets(RNNClassifier, X))
    short = X[0][:2]
    alone = classifier.predict_proba([short])
    for fill in (0.0, 1e3):
        long = np.full((30, 2), fill)
        batched = classifier.predict_proba([long, short, long])
        np.testing.assert_allclose(batched[1], alone[0], rtol=0, atol=1e-6)


def test_more_sequences_than_one_prediction_batch():
    """Prediction runs in chunks of 1024 sequences; chunking changes nothing."""
    X = _ragged(n=1100, max_length=4, seed=5)
    regressor = _small(RNNRegressor, max_iter=1).fit(X[:50], np.arange(50.0))
    together = regressor.predict(X)
    pieces = np.concatenate([regressor.predict(X[:500]), regressor.predict(X[500:])])
    np.testing.assert_allclose(together, pieces, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- bad input
def _bad_X_cases():
    good = np.random.RandomState(0).normal(size=(4, 5, 2))
    nan = good.copy()
    nan[1, 2, 0] = np.nan
    inf = good.copy()
    inf[0, 0, 1] = np.inf
    ragged_nan = [good[0], good[1, :3].copy()]
    ragged_nan[1][1, 1] = np.nan
    objects = good.astype(object)
    objects[0, 0, 0] = {}
    return [
        ("nan-3d", nan, ValueError, "NaN"),
        ("inf-3d", inf, ValueError, "infinity"),
        ("nan-2d", nan[:, :, 0], ValueError, "NaN"),
        ("nan-ragged", ragged_nan, ValueError, "NaN"),
        ("empty-3d", np.empty((0, 5, 2)), ValueError, "0 sample"),
        ("empty-list", [], ValueError, "empty"),
        ("empty-sequence", [good[0], np.empty((0, 2))], ValueError, "empty"),
        ("zero-length-3d", np.empty((4, 0, 2)), ValueError, "length 0"),
        ("zero-length-2d", np.empty((4, 0)), ValueError, "0 feature"),
        ("zero-features", np.empty((4, 5, 0)), ValueError, "0 feature"),
        (
            "mismatched-features",
            [good[0], good[1, :, :1]],
            ValueError,
            "same number of features",
        ),
        ("4-d", good[:, :, :, None], ValueError, "3-D array"),
        ("1-d", good[0, :, 0], ValueError, "Reshape your data"),
        ("scalar", np.float64(3.0), ValueError, "Reshape your data"),
        ("strings-2d", np.array([["a", "b"], ["c", "d"]]), ValueError, "numbers"),
        ("string-sequence", ["abc", "def"], ValueError, "string"),
        ("object-3d", objects, TypeError, "numbers"),
        ("complex", good + 1j, ValueError, "omplex"),
        ("sparse", scipy.sparse.csr_matrix(good[:, :, 0]), TypeError, "Sparse"),
        ("scalar-sequences", [1.0, 2.0], ValueError, "1-D"),
        ("3-d-sequence", [good, good], ValueError, "1-D"),
    ]


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [case[1:] for case in _bad_X_cases()],
    ids=[case[0] for case in _bad_X_cases()],
)
@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_bad_X_is_a_clear_error_in_fit_and_predict(estimator_class, X, error, match):
    estimator = _small(estimator_class)
    y = _targets(estimator_class, [np.zeros((5, 2))] * 4)
    with pytest.raises(error, match=match):
        estimator.fit(X, y)
    assert not hasattr(estimator, "params_")
    good = np.random.RandomState(1).normal(size=(4, 5, 2))
    estimator.fit(good, y)
    with pytest.raises(error, match=match):
        estimator.predict(X)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_nan_and_inf_in_y():
    X = np.random.RandomState(0).normal(size=(4, 3, 2))
    for bad in (np.nan, np.inf):
        y = np.array([0.0, 1.0, bad, 1.0])
        with pytest.raises(ValueError, match=r"NaN|infinity"):
            _small(RNNRegressor).fit(X, y)
        with pytest.raises(ValueError, match=r"NaN|infinity"):
            _small(RNNClassifier).fit(X, y)
        with pytest.raises(ValueError, match=r"NaN|infinity"):
            _small(RNNTagger).fit(X, [np.array([0.0, 1.0, bad])] * 4)


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_y_length_mismatch(estimator_class):
    X = _ragged(n=5)
    y = _targets(estimator_class, X)
    with pytest.raises(ValueError, match="X has 5 sequences but y has 4"):
        _small(estimator_class).fit(X, y[:4])
    with pytest.raises(ValueError, match="requires y to be passed"):
        _small(estimator_class).fit(X, None)


def test_tagger_y_must_match_every_sequence():
    X = _ragged(n=3, max_length=6)
    y = _targets(RNNTagger, X)
    y[1] = np.append(y[1], 0)
    with pytest.raises(ValueError, match=r"y\[1\] must hold one label per step"):
        _small(RNNTagger).fit(X, y)
    with pytest.raises(ValueError, match="one label per step"):
        _small(RNNTagger).fit(X, np.zeros(3))  # a classifier's y
    with pytest.raises(ValueError, match="list of per-step label arrays"):
        _small(RNNTagger).fit(X, "abc")


def test_targets_of_the_wrong_kind():
    X = _ragged(n=4)
    with pytest.raises(ValueError, match="Unknown label type"):
        _small(RNNClassifier).fit(X, [0.5, 1.5, 2.5, 3.25])
    with pytest.raises(ValueError, match="must contain numbers"):
        _small(RNNRegressor).fit(X, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="1-D"):
        _small(RNNClassifier).fit(X, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        _small(RNNRegressor).fit(X, np.zeros((4, 2, 2)))
    regressor = _small(RNNRegressor).fit(X, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="y has 3 targets"):
        regressor.partial_fit(X, np.zeros((4, 3)))


@pytest.mark.parametrize("estimator_class", [RNNClassifier, RNNTagger])
def test_partial_fit_rejects_unseen_labels_and_label_types(estimator_class):
    X = _ragged(n=4, max_length=4)
    y = _targets(estimator_class, X)  # labels 0, 1, 2
    estimator = _small(estimator_class)
    with pytest.raises(ValueError, match="classes must be passed"):
        estimator.partial_fit(X, y)
    estimator.partial_fit(X, y, classes=[0, 1, 2])
    if estimator_class is RNNTagger:
        unseen = [np.full(len(x), 7) for x in X]
        strings = [np.full(len(x), "0") for x in X]
    else:
        unseen = np.array([0, 1, 7, 1])
        strings = np.array(["0", "1", "2", "0"])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes_"):
        estimator.partial_fit(X, unseen)
    with pytest.raises(ValueError, match="not in classes_"):
        estimator.partial_fit(X, strings)
    with pytest.raises(ValueError, match="differs from the classes_"):
        estimator.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="not in classes_"):
        _small(estimator_class).partial_fit(X, unseen, classes=[0, 1, 2])


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_predict_before_fit(estimator_class):
    X = _ragged(n=3)
    estimator = estimator_class()
    methods = ["predict", "predict_proba", "predict_log_proba"]
    for method in methods:
        if hasattr(estimator, method):
            with pytest.raises(NotFittedError):
                getattr(estimator, method)(X)
    with pytest.raises(NotFittedError):
        estimator.score(X, _targets(estimator_class, X))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"hidden_size": -1}, "hidden_size"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": 2.5}, "hidden_size"),
        ({"cell": "transformer"}, "cell"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"validation_fraction": 0.0}, "validation_fraction"),
        ({"num_layers": 0}, "num_layers"),
        ({"solver": "lbfgs"}, "solver"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"momentum": 1.5}, "momentum"),
        ({"alpha": -1.0}, "alpha"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_iter": 0}, "max_iter"),
        ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
        ({"dtype": "float16"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"nonlinearity": "sigmoid"}, "nonlinearity"),
    ],
)
@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_invalid_hyperparameters(estimator_class, params, match):
    X = _ragged(n=4)
    estimator = estimator_class(**params)
    with pytest.raises(InvalidParameterError, match=match):
        estimator.fit(X, _targets(estimator_class, X))
    assert not hasattr(estimator, "params_")


def test_invalid_combinations():
    X = _ragged(n=4)
    y = _targets(RNNClassifier, X)
    with pytest.raises(ValueError, match="applies to cell='rnn' only"):
        RNNClassifier(cell="lstm", nonlinearity="relu").fit(X, y)
    with pytest.raises(InvalidParameterError, match="class_weight"):
        RNNClassifier(class_weight="auto").fit(X, y)
    with pytest.raises(ValueError, match=r"class_weight has labels \[5\]"):
        RNNClassifier(class_weight={5: 2.0}).fit(X, y)
    with pytest.raises(ValueError, match="non-negative"):
        RNNClassifier(class_weight={0: -1.0}).fit(X, y)
    with pytest.raises(ValueError, match="empty training or validation"):
        RNNClassifier(early_stopping=True, validation_fraction=0.1).fit(X[:1], y[:1])


def test_bad_sample_weight():
    X = _ragged(n=4)
    y = _targets(RNNClassifier, X)
    with pytest.raises(ValueError, match=r"(?i)negative"):
        _small(RNNClassifier).fit(X, y, sample_weight=[1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="zero"):
        _small(RNNClassifier).fit(X, y, sample_weight=np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        _small(RNNClassifier).fit(X, y, sample_weight=[1.0, np.nan, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"shape"):
        _small(RNNClassifier).fit(X, y, sample_weight=np.ones(3))


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_a_failed_fit_leaves_the_estimator_as_it_was(estimator_class):
    """Validation happens before any attribute changes: a refit with bad data
    keeps the fitted model, a first fit with bad data leaves it unfitted."""
    X = _ragged(n=6)
    y = _targets(estimator_class, X)
    fresh = _small(estimator_class)
    with pytest.raises(ValueError):
        fresh.fit(X, y[:3])
    assert vars(fresh) == vars(_small(estimator_class))
    with pytest.raises(NotFittedError):
        fresh.predict(X)

    fitted = _small(estimator_class).fit(X, y)
    attributes = set(vars(fitted))
    params = {k: v.copy() for k, v in fitted.params_.items()}
    expected = fitted.predict(X)
    other_width = _ragged(n=6, n_features=5)
    with pytest.raises(ValueError):
        fitted.fit(other_width, y[:3])
    assert set(vars(fitted)) == attributes
    assert fitted.n_features_in_ == 2
    assert fitted.n_iter_ == 2
    for key, value in params.items():
        np.testing.assert_array_equal(fitted.params_[key], value)
    for a, b in zip(fitted.predict(X), expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "X",
    [
        pytest.param(_ragged(dtype=np.float32), id="float32-2d"),
        pytest.param(_ragged(n_features=1, seed=1), id="float64-width-1"),
        pytest.param([s[:, 0] for s in _ragged(seed=2)], id="float64-1d"),
        pytest.param(
            [s[:, 0] if i % 2 else s for i, s in enumerate(_ragged(n_features=1))],
            id="mixed-1d-2d",
        ),
        pytest.param([s.T.copy().T for s in _ragged(seed=3)], id="fortran-order"),
    ],
)
def test_fast_path_for_float_sequence_lists_equals_the_general_path(X, monkeypatch):
    from rnntools import _sequences

    padded, lengths = _sequences.check_sequences(X)
    monkeypatch.setattr(_sequences, "_pad_float_arrays", lambda X: None)
    expected_padded, expected_lengths = _sequences.check_sequences(X)
    assert padded.dtype == expected_padded.dtype
    np.testing.assert_array_equal(padded, expected_padded)
    np.testing.assert_array_equal(lengths, expected_lengths)


def test_nan_in_a_sequence_list_names_the_sequence():
    X = _ragged(dtype=np.float32)
    X[3][0, 1] = np.nan
    with pytest.raises(ValueError, match="sequence 3 of X contains NaN"):
        _small(RNNClassifier).fit(X, _targets(RNNClassifier, X))
