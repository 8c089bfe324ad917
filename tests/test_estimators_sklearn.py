"""scikit-learn's own estimator checks, and sequence-aware versions of the two
that contradict "a 2-D X is n univariate sequences".

RNNClassifier and RNNRegressor run every check of ``parametrize_with_checks``.
RNNTagger's ``y`` (one label array per sequence) is not a scikit-learn target,
so it runs the checks that need no data here and data-based equivalents with
per-step labels (pickling, determinism and dtypes are also covered in the
persistence, training and input test files).
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
    parametrize_with_checks,
)

from rnntools import RNNClassifier, RNNRegressor, RNNTagger

# Small budgets of epochs, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

N_FEATURES_REASON = (
    "2-D X is read as n univariate sequences, so n_features_in_ is 1, not X.shape[1]"
)
EXPECTED_FAILED_CHECKS = {
    "check_n_features_in": N_FEATURES_REASON,
    "check_n_features_in_after_fitting": N_FEATURES_REASON,
}

# A batch_size larger than any check's data makes every epoch one full-batch
# step, where an integer sample weight is exactly a repetition of the sample
# (check_sample_weight_equivalence_on_dense_data); float64 because float32
# rounding of the two summation orders alone exceeds that check's rtol=1e-7
# once training has amplified it. The learning rates and epochs are the
# smallest round values that pass check_classifiers_train (accuracy > 0.83)
# and check_regressors_train (R² > 0.5) with a margin.
_CHECK_CONFIG = dict(hidden_size=8, batch_size=256, dtype="float64", random_state=0)
CHECKED_ESTIMATORS = [
    RNNClassifier(max_iter=30, learning_rate_init=0.01, **_CHECK_CONFIG),
    RNNRegressor(max_iter=60, learning_rate_init=0.05, **_CHECK_CONFIG),
]


@parametrize_with_checks(
    CHECKED_ESTIMATORS,
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _small(estimator_class, **params):
    return estimator_class(hidden_size=4, max_iter=2, random_state=0, **params)


def _data(estimator_class, X):
    """Targets of the right kind for sequences ``X`` (a list or an array)."""
    lengths = [len(sequence) for sequence in X]
    if estimator_class is RNNTagger:
        return [np.arange(length) % 2 for length in lengths]
    if estimator_class is RNNRegressor:
        return np.linspace(-1.0, 1.0, len(lengths))
    return np.arange(len(lengths)) % 2


ALL_ESTIMATORS = [RNNClassifier, RNNRegressor, RNNTagger]


# --------------------------------------------- sequence-aware n_features_in_
@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_n_features_in_is_features_per_step(estimator_class):
    """``n_features_in_`` is F: of a 3-D array, of a list, and 1 for a 2-D X."""
    rng = np.random.RandomState(0)
    estimator = _small(estimator_class)
    assert not hasattr(estimator, "n_features_in_")
    X3 = rng.normal(size=(6, 5, 3))
    estimator.fit(X3, _data(estimator_class, X3))
    assert estimator.n_features_in_ == 3
    ragged = [rng.normal(size=(length, 2)) for length in (2, 7, 4, 3)]
    estimator.fit(ragged, _data(estimator_class, ragged))
    assert estimator.n_features_in_ == 2
    X2 = rng.normal(size=(6, 9))
    estimator.fit(X2, _data(estimator_class, X2))
    assert estimator.n_features_in_ == 1


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_n_features_checked_after_fitting(estimator_class):
    """Every method taking X refuses sequences with another number of features."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(6, 5, 3))
    y = _data(estimator_class, X)
    estimator = _small(estimator_class).fit(X, y)
    name = estimator_class.__name__
    message = f"X has 2 features per step, but {name} was fitted with 3"
    bad_inputs = [X[:, :, :2], [x[:, :2] for x in X]]
    methods = ["predict", "score", "partial_fit"]
    if hasattr(estimator, "predict_proba"):
        methods += ["predict_proba", "predict_log_proba"]
    for bad in bad_inputs:
        for method in methods:
            call = getattr(estimator, method)
            with pytest.raises(ValueError, match=message):
                call(bad, y) if method in ("score", "partial_fit") else call(bad)
    with pytest.raises(ValueError, match="X has 1 features per step"):
        estimator.predict(X[:, :, 0])


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_2d_x_must_have_the_training_length(estimator_class):
    """Fitted on sequences of T steps, a 2-D X must have T columns (guards
    against a transposed table); other lengths go through a 3-D array or a list.
    """
    rng = np.random.RandomState(0)
    X = rng.normal(size=(8, 5))
    estimator = _small(estimator_class).fit(X, _data(estimator_class, X))
    with pytest.raises(ValueError, match=r"X has 8 columns, but .* 5 steps"):
        estimator.predict(X.T)
    with pytest.raises(ValueError, match="X has 4 columns"):
        estimator.partial_fit(X[:, :4], _data(estimator_class, X[:, :4]))
    longer = rng.normal(size=(3, 12))
    assert len(estimator.predict(longer[:, :, None])) == 3
    assert len(estimator.predict(list(longer))) == 3

    ragged = [rng.normal(size=length) for length in (3, 6, 4)]
    ragged_fit = _small(estimator_class).fit(ragged, _data(estimator_class, ragged))
    assert len(ragged_fit.predict(longer)) == 3  # no single training length


# ------------------------------------------------------ RNNTagger's own suite
@pytest.mark.parametrize(
    "check",
    [
        check_estimator_cloneable,
        check_estimator_repr,
        check_no_attributes_set_in_init,
        check_parameters_default_constructible,
        check_get_params_invariance,
        check_set_params,
        check_mixin_order,
        check_valid_tag_types,
    ],
    ids=lambda check: check.__name__,
)
def test_tagger_sklearn_api_checks(check):
    """The scikit-learn checks that need no data apply to the tagger as is."""
    check("RNNTagger", RNNTagger(hidden_size=4, max_iter=2, random_state=0))


def _tagging_data(seed=0, n=12):
    rng = np.random.RandomState(seed)
    X = [rng.normal(size=(length, 3)) for length in rng.randint(2, 9, n)]
    y = [np.where(x[:, 0] > 0, "up", "down") for x in X]
    return X, y


def test_tagger_not_fitted():
    X, y = _tagging_data()
    tagger = RNNTagger()
    for method in ("predict", "predict_proba", "predict_log_proba"):
        with pytest.raises(NotFittedError):
            getattr(tagger, method)(X)
    with pytest.raises(NotFittedError):
        tagger.score(X, y)


def test_tagger_fit_returns_self_and_keeps_parameters():
    """fit returns self, does not change hyperparameters, and sets only
    trailing-underscore public attributes (check_dont_overwrite_parameters)."""
    X, y = _tagging_data()
    tagger = RNNTagger(hidden_size=4, max_iter=2, random_state=0)
    params = tagger.get_params()
    before = set(vars(tagger))
    assert tagger.fit(X, y) is tagger
    assert tagger.get_params() == params
    new_public = {k for k in set(vars(tagger)) - before if not k.startswith("_")}
    assert new_public and all(k.endswith("_") for k in new_public)


def test_tagger_methods_do_not_change_state():
    """predict / predict_proba / score leave the fitted attributes untouched
    (check_dict_unchanged)."""
    X, y = _tagging_data()
    tagger = RNNTagger(hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    snapshot = {
        k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(tagger).items()
    }
    params = {k: v.copy() for k, v in tagger.params_.items()}
    tagger.predict(X)
    tagger.predict_proba(X)
    tagger.score(X, y)
    assert set(vars(tagger)) == set(snapshot)
    for key, value in params.items():
        np.testing.assert_array_equal(tagger.params_[key], value)


def test_tagger_fit_idempotent_and_clone():
    """Refitting (a clone or the same object) with a fixed random_state gives
    the same model (check_fit_idempotent)."""
    X, y = _tagging_data()
    tagger = RNNTagger(hidden_size=4, max_iter=3, random_state=0)
    first = [p.copy() for p in tagger.fit(X, y).predict_proba(X)]
    again = tagger.fit(X, y).predict_proba(X)
    cloned = clone(tagger)
    assert not hasattr(cloned, "params_")
    from_clone = cloned.fit(X, y).predict_proba(X)
    for a, b, c in zip(first, again, from_clone, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_tagger_outputs_are_consistent():
    """predict is the argmax of predict_proba, probabilities sum to one and
    predict_log_proba is their log (check_classifiers_train's consistency)."""
    X, y = _tagging_data()
    tagger = RNNTagger(hidden_size=4, max_iter=3, random_state=0).fit(X, y)
    labels = tagger.predict(X)
    proba = tagger.predict_proba(X)
    log_proba = tagger.predict_log_proba(X)
    np.testing.assert_array_equal(tagger.classes_, ["down", "up"])
    for x, label, p, log_p in zip(X, labels, proba, log_proba, strict=True):
        assert label.shape == (len(x),) and p.shape == (len(x), 2)
        np.testing.assert_array_equal(label, tagger.classes_[p.argmax(axis=1)])
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(log_p, np.log(p), rtol=1e-12)
    # score is the accuracy over all steps of all sequences, not the mean of
    # per-sequence accuracies (the sequences have different lengths).
    assert tagger.score(X, y) == np.mean(np.concatenate(labels) == np.concatenate(y))


def test_tagger_sample_order_invariance():
    """Permuting the sequences permutes the predictions
    (check_methods_sample_order_invariance)."""
    X, y = _tagging_data()
    tagger = RNNTagger(hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    order = np.random.RandomState(1).permutation(len(X))
    proba = tagger.predict_proba(X)
    permuted = tagger.predict_proba([X[i] for i in order])
    for row, i in enumerate(order):
        np.testing.assert_allclose(permuted[row], proba[i], rtol=0, atol=1e-12)


def test_tagger_readonly_memmap_input(tmp_path):
    """Read-only memory-mapped input works (check_estimators_fit_returns_self
    with readonly_memmap=True)."""
    rng = np.random.RandomState(0)
    path = tmp_path / "X.npy"
    np.save(path, rng.normal(size=(6, 5, 2)))
    X = np.load(path, mmap_mode="r")
    y = (np.asarray(X)[:, :, 0] > 0).astype(int)
    tagger = RNNTagger(hidden_size=4, max_iter=2, random_state=0)
    assert tagger.fit(X, y) is tagger
    assert tagger.predict(X).shape == (6, 5)


# The same checks in float32 with 64 hidden units, where a batch-dependent
# kernel once made check_methods_subset_invariance and
# check_methods_sample_order_invariance fail now and then (results that
# differed by 1e-7 with the batch); every row's result is now bit-identical
# whatever the batch. The sample-weight equivalence check compares a
# repeated sample with a weight of 2 to rtol=1e-7, below float32 rounding
# once training has amplified it (see _CHECK_CONFIG), so it is expected to
# fail here; expected, not strictly: whether the rounding stays inside the
# tolerance depends on the machine's BLAS kernels (the regressor's check
# failed on an AMD Zen 5 and passed on an Intel Xeon with AVX-512, same
# code). The other expected failures are strict in the float64 test above.
_FLOAT32_CONFIG = dict(hidden_size=64, batch_size=256, dtype="float32", random_state=0)
FLOAT32_EXPECTED_FAILED_CHECKS = {
    **EXPECTED_FAILED_CHECKS,
    "check_sample_weight_equivalence_on_dense_data": (
        "float32 rounding of two summation orders exceeds the check's rtol=1e-7"
    ),
}


@parametrize_with_checks(
    [
        RNNClassifier(max_iter=30, learning_rate_init=0.01, **_FLOAT32_CONFIG),
        RNNRegressor(max_iter=60, learning_rate_init=0.01, **_FLOAT32_CONFIG),
    ],
    expected_failed_checks=lambda estimator: FLOAT32_EXPECTED_FAILED_CHECKS,
    xfail_strict=False,
)
def test_sklearn_estimator_checks_float32(estimator, check):
    check(estimator)
