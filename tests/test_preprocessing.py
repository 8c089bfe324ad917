"""SequenceScaler: statistics over the steps of all sequences (never the
padding), the input's own form given back, streaming fits, scikit-learn's
checks, and pipelines of a scaler and an RNN estimator."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from rnntools import RNNClassifier, SequenceScaler, save_model

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ------------------------------------------------------- scikit-learn checks
# The estimators' two exceptions (tests/test_estimators_sklearn.py), for the
# same reason, and one that only transformers meet: the check passes
# ``X.tolist()``, a list, which the scaler reads as a list of sequences and
# gives back as a list (see test_list_of_lists_is_a_list_of_sequences).
N_FEATURES_REASON = (
    "2-D X is read as n univariate sequences, so n_features_in_ is 1, not X.shape[1]"
)
EXPECTED_FAILED_CHECKS = {
    "check_n_features_in": N_FEATURES_REASON,
    "check_n_features_in_after_fitting": N_FEATURES_REASON,
    "check_transformer_data_not_an_array": (
        "a list is a list of sequences and is transformed into a list, not an array"
    ),
}


@parametrize_with_checks(
    [SequenceScaler(), SequenceScaler(with_mean=False)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_list_of_lists_is_a_list_of_sequences():
    """What check_transformer_data_not_an_array would test, for our reading of
    a list: fit_transform equals fit then transform, and a list of lists of
    numbers is a list of univariate sequences, given back as a list."""
    X = np.random.RandomState(0).normal(size=(30, 2))
    as_lists = X.tolist()
    transformed = SequenceScaler().fit_transform(as_lists)
    again = SequenceScaler().fit(as_lists).transform(as_lists)
    assert isinstance(transformed, list) and len(transformed) == 30
    expected = StandardScaler().fit_transform(X.reshape(-1, 1)).reshape(30, 2)
    for row, (a, b) in enumerate(zip(transformed, again, strict=True)):
        assert a.shape == (2,)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, expected[row], rtol=1e-12)


# ------------------------------------------------------------------ helpers
def _ragged(seed=0, n=25, n_features=3, dtype=np.float64):
    """Sequences of 1 to 30 steps whose features have very different means and
    spreads (so that a statistic that counted padding would be far off)."""
    rng = np.random.RandomState(seed)
    location = np.array([1e4, -3.0, 0.5, 7.0][:n_features])
    spread = np.array([1e3, 0.01, 1.0, 50.0][:n_features])
    return [
        (location + spread * rng.normal(size=(length, n_features))).astype(dtype)
        for length in rng.randint(1, 31, n)
    ]


def _reference(sequences, **params):
    """StandardScaler fitted on every step of every sequence, stacked."""
    steps = np.concatenate([np.reshape(s, (len(s), -1)) for s in sequences])
    return StandardScaler(**params).fit(steps.astype(np.float64))


def _assert_same_statistics(scaler, reference):
    assert scaler.n_samples_seen_ == reference.n_samples_seen_
    for name in ("mean_", "var_", "scale_"):
        expected = getattr(reference, name)
        if expected is None:
            assert getattr(scaler, name) is None, name
        else:
            np.testing.assert_allclose(getattr(scaler, name), expected, rtol=1e-12)


# -------------------------------------------------------------- statistics
@pytest.mark.parametrize(
    "params",
    [{}, {"with_mean": False}, {"with_std": False}],
    ids=["default", "no_mean", "no_std"],
)
def test_statistics_and_transform_equal_standard_scaler_on_all_steps(params):
    """On ragged sequences the scaler is StandardScaler fitted on the steps of
    all sequences stacked: same attributes, same transformed steps."""
    X = _ragged()
    scaler = SequenceScaler(**params).fit(X)
    reference = _reference(X, **params)
    _assert_same_statistics(scaler, reference)
    assert scaler.n_samples_seen_ == sum(len(s) for s in X)
    for transformed, sequence in zip(scaler.transform(X), X, strict=True):
        np.testing.assert_allclose(
            transformed, reference.transform(sequence), rtol=1e-9, atol=1e-12
        )


def test_neither_mean_nor_std_is_the_identity():
    X = _ragged()
    scaler = SequenceScaler(with_mean=False, with_std=False).fit(X)
    assert scaler.mean_ is None and scaler.var_ is None and scaler.scale_ is None
    assert scaler.n_samples_seen_ == sum(len(s) for s in X)
    for transformed, sequence in zip(scaler.transform(X), X, strict=True):
        np.testing.assert_array_equal(transformed, sequence)


def test_padding_is_never_counted():
    """A short and a long sequence: the statistics are those of their 2 + 50
    steps, not of a 2 x 50 padded block."""
    short = np.array([[100.0], [102.0]])
    long = np.full((50, 1), 1.0)
    scaler = SequenceScaler().fit([short, long])
    assert scaler.n_samples_seen_ == 52
    np.testing.assert_allclose(scaler.mean_, [(202.0 + 50.0) / 52])
    np.testing.assert_allclose(scaler.var_, np.var(np.r_[short[:, 0], long[:, 0]]))


@pytest.mark.parametrize("form", ["3d", "2d", "list"])
def test_every_input_form_gives_the_same_statistics(form):
    rng = np.random.RandomState(1)
    X3 = 5.0 + 3.0 * rng.normal(size=(8, 6, 1))
    X = {"3d": X3, "2d": X3[:, :, 0], "list": list(X3)}[form]
    _assert_same_statistics(SequenceScaler().fit(X), _reference(list(X3)))


def test_constant_features_are_centred_not_scaled():
    """Scale 1 where the variance is rounding error, as in StandardScaler,
    even when that error is not exactly 0 (0.1 is not a binary fraction)."""
    rng = np.random.RandomState(0)
    X = [
        np.column_stack(
            [np.full(length, 0.1), np.full(length, 5.0), rng.normal(size=length)]
        )
        for length in (3, 11, 7)
    ]
    scaler = SequenceScaler().fit(X)
    reference = _reference(X)
    np.testing.assert_array_equal(scaler.scale_[:2], [1.0, 1.0])
    np.testing.assert_array_equal(scaler.scale_[:2], reference.scale_[:2])
    for transformed in scaler.transform(X):
        np.testing.assert_allclose(transformed[:, :2], 0.0, atol=1e-15)
        assert np.all(np.isfinite(transformed))


# -------------------------------------------------------- forms and dtypes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_3d_array_gives_a_3d_array(dtype):
    X = np.random.RandomState(0).normal(3.0, 2.0, size=(5, 7, 3)).astype(dtype)
    scaler = SequenceScaler().fit(X)
    transformed = scaler.transform(X)
    assert isinstance(transformed, np.ndarray)
    assert transformed.shape == X.shape and transformed.dtype == dtype
    restored = scaler.inverse_transform(transformed)
    assert restored.shape == X.shape and restored.dtype == dtype
    np.testing.assert_allclose(restored, X, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_2d_array_gives_a_2d_array(dtype):
    X = np.random.RandomState(0).normal(3.0, 2.0, size=(5, 7)).astype(dtype)
    scaler = SequenceScaler().fit(X)
    transformed = scaler.transform(X)
    assert transformed.shape == X.shape and transformed.dtype == dtype
    assert scaler.n_features_in_ == 1 and scaler.n_samples_seen_ == 35
    np.testing.assert_allclose(
        transformed,
        (X - X.mean()) / X.std(),
        rtol=1e-4 if dtype == np.float32 else 1e-12,
    )
    assert scaler.inverse_transform(transformed).shape == X.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_list_gives_a_list_of_the_same_shapes(dtype):
    """Each sequence keeps its length and its dimensions: (T_i, F) or (T_i,)."""
    rng = np.random.RandomState(0)
    X = [rng.normal(size=(4, 2)), rng.normal(size=(9, 2)), rng.normal(size=(1, 2))]
    X = [x.astype(dtype) for x in X]
    scaler = SequenceScaler().fit(X)
    for output in (scaler.transform(X), scaler.inverse_transform(X)):
        assert isinstance(output, list)
        assert [x.shape for x in output] == [(4, 2), (9, 2), (1, 2)]
        assert all(x.dtype == dtype for x in output)
    restored = scaler.inverse_transform(scaler.transform(X))
    for a, b in zip(restored, X, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12)

    univariate = [rng.normal(size=length).astype(dtype) for length in (3, 8)]
    scaled = SequenceScaler().fit_transform(univariate)
    assert [x.shape for x in scaled] == [(3,), (8,)]
    assert all(x.dtype == dtype for x in scaled)


def test_tuples_object_arrays_and_integers():
    rng = np.random.RandomState(0)
    sequences = [rng.randint(0, 10, size=(length, 2)) for length in (3, 5)]
    scaler = SequenceScaler().fit(sequences)
    from_tuple = scaler.transform(tuple(sequences))
    assert isinstance(from_tuple, list)
    assert all(x.dtype == np.float64 for x in from_tuple)

    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = sequences
    from_objects = scaler.transform(objects)
    assert isinstance(from_objects, np.ndarray) and from_objects.dtype == object
    assert [x.shape for x in from_objects] == [(3, 2), (5, 2)]
    for a, b in zip(from_objects, from_tuple, strict=True):
        np.testing.assert_array_equal(a, b)


def test_transform_never_modifies_its_input():
    X = np.random.RandomState(0).normal(size=(4, 5, 2))
    before = X.copy()
    scaler = SequenceScaler().fit(X)
    scaler.inverse_transform(scaler.transform(X))
    np.testing.assert_array_equal(X, before)


# ------------------------------------------------------------- partial_fit
def test_partial_fit_equals_one_fit():
    """Chunks of any form, merged by Chan et al.'s update, give the one-shot
    statistics to float64 rounding (means near 1e4, spreads from 0.01 to 1e3)."""
    X = _ragged(n=60)
    streamed = SequenceScaler()
    for start, stop in ((0, 1), (1, 13), (13, 14), (14, 40), (40, 60)):
        assert streamed.partial_fit(X[start:stop]) is streamed
    equal_length = np.stack([s[:2] for s in X if len(s) >= 2])
    streamed.partial_fit(equal_length)
    one_shot = SequenceScaler().fit(X + list(equal_length))
    assert streamed.n_samples_seen_ == one_shot.n_samples_seen_
    for name in ("mean_", "var_", "scale_"):
        np.testing.assert_allclose(
            getattr(streamed, name), getattr(one_shot, name), rtol=1e-12
        )
    _assert_same_statistics(one_shot, _reference(X + list(equal_length)))


def test_fit_forgets_and_partial_fit_accumulates():
    a, b = _ragged(seed=1), _ragged(seed=2, n_features=2)
    scaler = SequenceScaler().fit(a)
    scaler.fit(b)  # another number of features is fine for a new fit
    _assert_same_statistics(scaler, _reference(b))
    scaler.partial_fit(_ragged(seed=3, n_features=2))
    assert scaler.n_samples_seen_ == sum(map(len, b)) + sum(
        map(len, _ragged(seed=3, n_features=2))
    )


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    X = _ragged()
    broken = [x.copy() for x in X]
    broken[3][0, 1] = bad
    as_array = np.zeros((3, 4, 3))
    as_array[1, 2, 0] = bad
    for inputs in (broken, as_array):
        with pytest.raises(ValueError, match=r"NaN|infinity"):
            SequenceScaler().fit(inputs)
        fitted = SequenceScaler().fit(X)
        for method in ("transform", "inverse_transform", "partial_fit"):
            with pytest.raises(ValueError, match=r"NaN|infinity"):
                getattr(fitted, method)(inputs)


def test_wrong_number_of_features_is_refused():
    X = np.random.RandomState(0).normal(size=(6, 5, 3))
    scaler = SequenceScaler().fit(X)
    message = "X has 2 features per step, but SequenceScaler was fitted with 3"
    for bad in (X[:, :, :2], [x[:, :2] for x in X]):
        for method in ("transform", "inverse_transform", "partial_fit"):
            with pytest.raises(ValueError, match=message):
                getattr(scaler, method)(bad)


def test_a_2d_x_must_have_the_training_length():
    """As for the estimators: a 2-D table of another width is refused (most
    likely transposed); other lengths go through a 3-D array or a list."""
    X = np.random.RandomState(0).normal(size=(8, 5))
    scaler = SequenceScaler().fit(X)
    with pytest.raises(ValueError, match=r"X has 8 columns, but .* 5 steps"):
        scaler.transform(X.T)
    assert scaler.transform(X.T[:, :, None]).shape == (5, 8, 1)
    assert [x.shape for x in scaler.transform(list(X.T))] == [(8,)] * 5


def test_not_fitted():
    scaler = SequenceScaler()
    for method in ("transform", "inverse_transform"):
        with pytest.raises(NotFittedError):
            getattr(scaler, method)(np.zeros((2, 3, 1)))
    with pytest.raises(NotFittedError):
        scaler.get_feature_names_out()


@pytest.mark.parametrize("params", [{"with_mean": "yes"}, {"with_std": 1.0}])
def test_bad_parameters(params):
    with pytest.raises(ValueError, match="with_"):
        SequenceScaler(**params).fit(np.zeros((2, 3, 1)))


# ------------------------------------------------------------ feature names
def test_feature_names_out():
    X = np.random.RandomState(0).normal(size=(4, 5, 3))
    scaler = SequenceScaler().fit(X)
    names = scaler.get_feature_names_out()
    assert names.dtype == object and list(names) == ["x0", "x1", "x2"]
    assert list(scaler.get_feature_names_out(["a", "b", "c"])) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="input_features should have length"):
        scaler.get_feature_names_out(["a", "b"])
    assert not hasattr(scaler, "feature_names_in_")
    univariate = SequenceScaler().fit(X[:, :, 0])
    assert list(univariate.get_feature_names_out()) == ["x0"]


def test_feature_names_from_a_list_of_dataframes():
    """One DataFrame per sequence, one column per feature: the columns name
    the features; a 2-D DataFrame (columns are time steps) names none."""
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    columns = ["vibration", "pressure"]
    frames = [pd.DataFrame(rng.normal(size=(n, 2)), columns=columns) for n in (3, 6)]
    scaler = SequenceScaler().fit(frames)
    np.testing.assert_array_equal(scaler.feature_names_in_, columns)
    assert list(scaler.get_feature_names_out()) == columns
    transformed = scaler.transform(frames)
    assert [x.shape for x in transformed] == [(3, 2), (6, 2)]
    np.testing.assert_array_equal(
        transformed[1], scaler.transform([frame.to_numpy() for frame in frames])[1]
    )

    swapped = [frame[columns[::-1]] for frame in frames]
    with pytest.raises(ValueError, match="feature names of X"):
        scaler.transform(swapped)
    with pytest.raises(ValueError, match="Sequence 1 of X has columns"):
        SequenceScaler().fit([frames[0], swapped[1]])

    table = pd.DataFrame(rng.normal(size=(4, 6)), columns=[f"t{i}" for i in range(6)])
    from_table = SequenceScaler().fit(table)
    assert not hasattr(from_table, "feature_names_in_")
    assert list(from_table.get_feature_names_out()) == ["x0"]
    assert from_table.transform(table).shape == (4, 6)


# ---------------------------------------------------------------- pipelines
def _scale_sensitive_data(n=60, seed=0):
    """Two classes told apart by a feature near 1e4 whose spread is ~1e3:
    hopeless for an RNN fed the raw numbers (its gates saturate), easy once
    standardised."""
    rng = np.random.RandomState(seed)
    y = np.arange(n) % 2
    X = [
        np.column_stack(
            [
                rng.normal(size=length),
                1e4 + 1e3 * ((2 * label - 1) + 0.5 * rng.normal(size=length)),
            ]
        )
        for label, length in zip(y, rng.randint(4, 12, n), strict=True)
    ]
    return X, y


_SMALL = dict(hidden_size=8, max_iter=15, learning_rate_init=1e-2, random_state=0)


def test_scaling_matters_in_a_pipeline():
    """Same model, same seed: standardised inputs are learned, raw ones are
    not (the raw model is no better than always predicting one class)."""
    X, y = _scale_sensitive_data()
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    raw = cross_val_score(RNNClassifier(**_SMALL), X, y, cv=folds)
    scaled = cross_val_score(
        make_pipeline(SequenceScaler(), RNNClassifier(**_SMALL)), X, y, cv=folds
    )
    assert raw.mean() <= 0.6
    assert scaled.mean() >= 0.9


def test_cross_val_score_fits_the_scaler_on_each_training_fold():
    X, y = _scale_sensitive_data()
    pipeline = make_pipeline(SequenceScaler(), RNNClassifier(**_SMALL))
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipeline, X, y, cv=folds)
    for score, (train, test) in zip(scores, folds.split(X, y), strict=True):
        scaler = SequenceScaler().fit([X[i] for i in train])
        model = RNNClassifier(**_SMALL).fit(
            scaler.transform([X[i] for i in train]), y[train]
        )
        assert score == model.score(scaler.transform([X[i] for i in test]), y[test])


def test_grid_search_in_loky_workers_equals_serial():
    X, y = _scale_sensitive_data()
    pipeline = make_pipeline(SequenceScaler(), RNNClassifier(**_SMALL))
    grid = {
        "sequencescaler__with_std": [True, False],
        "rnnclassifier__cell": ["lstm", "gru"],
    }
    parallel = GridSearchCV(pipeline, grid, cv=2, n_jobs=2).fit(X, y)
    serial = GridSearchCV(pipeline, grid, cv=2, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(
        parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    assert parallel.best_params_ == serial.best_params_
    assert parallel.best_params_["sequencescaler__with_std"] is True
    np.testing.assert_array_equal(parallel.predict_proba(X), serial.predict_proba(X))


def test_pipeline_pickles_and_predicts_identically():
    X, y = _scale_sensitive_data()
    pipeline = make_pipeline(SequenceScaler(), RNNClassifier(**_SMALL)).fit(X, y)
    loaded = pickle.loads(pickle.dumps(pipeline))
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))
    np.testing.assert_array_equal(loaded[0].scale_, pipeline[0].scale_)
    unfitted = clone(pipeline)
    assert not hasattr(unfitted[0], "mean_")


def test_save_model_refuses_a_pipeline_clearly(tmp_path):
    """save_model writes rnntools estimators only; a Pipeline (or a scaler)
    is a TypeError that names it and points to pickle, and writes nothing."""
    X, y = _scale_sensitive_data(n=20)
    pipeline = make_pipeline(SequenceScaler(), RNNClassifier(**_SMALL)).fit(X, y)
    path = tmp_path / "pipeline.rnn"
    with pytest.raises(TypeError, match=r"not Pipeline\. .*pickle"):
        save_model(pipeline, path)
    with pytest.raises(TypeError, match="not SequenceScaler"):
        save_model(pipeline[0], path)
    assert not path.exists()
    save_model(pipeline[-1], path)  # the recurrent model alone can be saved
    assert path.exists()
