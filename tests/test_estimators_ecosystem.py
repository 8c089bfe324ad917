"""The estimators in the scikit-learn ecosystem: Pipeline, clone,
cross_val_score, GridSearchCV in loky worker processes, and threads."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from rnntools import RNNClassifier, RNNRegressor, RNNTagger

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _classification(n=60, seed=0):
    """Sequences whose label is the sign of their first feature's sum."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6, 2)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    return X, y


def _double(X):
    return 2.0 * X


def test_pipeline_with_a_function_transformer():
    X, y = _classification()
    config = dict(hidden_size=8, max_iter=5, random_state=0)
    pipeline = make_pipeline(
        FunctionTransformer(_double, validate=False), RNNClassifier(**config)
    ).fit(X, y)
    direct = RNNClassifier(**config).fit(2.0 * X, y)
    np.testing.assert_array_equal(pipeline.predict(X), direct.predict(2.0 * X))
    np.testing.assert_array_equal(
        pipeline.predict_proba(X), direct.predict_proba(2.0 * X)
    )
    assert pipeline.score(X, y) == direct.score(2.0 * X, y)


@pytest.mark.parametrize("estimator_class", [RNNClassifier, RNNRegressor, RNNTagger])
def test_clone_is_unfitted_with_the_same_parameters(estimator_class):
    X, y = _classification(n=20)
    targets = list((X[:, :, 1] > 0).astype(int)) if estimator_class is RNNTagger else y
    estimator = estimator_class(
        hidden_size=3, max_iter=1, bidirectional=True, random_state=0
    )
    estimator.fit(X, targets)
    cloned = clone(estimator)
    assert cloned.get_params() == estimator.get_params()
    assert not hasattr(cloned, "params_") and not hasattr(cloned, "n_features_in_")


def test_cross_val_score():
    X, y = _classification()
    classifier = RNNClassifier(hidden_size=8, max_iter=10, learning_rate_init=1e-2)
    scores = cross_val_score(classifier.set_params(random_state=0), X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.6)

    regressor = RNNRegressor(hidden_size=8, max_iter=5, random_state=0)
    r2 = cross_val_score(regressor, X, X[:, :, 0].sum(axis=1), cv=3)
    assert r2.shape == (3,) and np.all(np.isfinite(r2))

    # Each step's label is the sign of that step's second feature, so even a
    # small tagger learns it well: above 0.9 per-step accuracy on every fold,
    # where always predicting one label scores about 0.5.
    tagger = RNNTagger(hidden_size=8, max_iter=30, learning_rate_init=1e-2)
    step_labels = list((X[:, :, 1] > 0).astype(int))
    folds = KFold(3)
    accuracy = cross_val_score(
        tagger.set_params(random_state=0), list(X), step_labels, cv=folds
    )
    assert accuracy.shape == (3,) and np.all(accuracy > 0.9)
    for fold_accuracy, (train, test) in zip(accuracy, folds.split(X), strict=True):
        fitted = clone(tagger).fit(X[train], [step_labels[i] for i in train])
        predicted = np.concatenate(fitted.predict(list(X[test])))
        expected = np.concatenate([step_labels[i] for i in test])
        assert fold_accuracy == np.mean(predicted == expected)


def test_grid_search_in_loky_workers_equals_serial():
    """GridSearchCV(n_jobs=2) runs the Numba kernels in joblib's default loky
    worker processes; they must work there and give the serial results."""
    X, y = _classification()
    grid = {"cell": ["lstm", "gru"], "hidden_size": [4, 8]}
    estimator = RNNClassifier(max_iter=4, learning_rate_init=1e-2, random_state=0)
    parallel = GridSearchCV(estimator, grid, cv=2, n_jobs=2).fit(X, y)
    serial = GridSearchCV(estimator, grid, cv=2, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(
        parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    assert parallel.best_params_ == serial.best_params_
    np.testing.assert_array_equal(parallel.predict_proba(X), serial.predict_proba(X))


@pytest.mark.parametrize("estimator_class", [RNNClassifier, RNNTagger])
def test_four_threads_predicting_at_once_match_serial(estimator_class):
    rng = np.random.RandomState(0)
    X = [rng.normal(size=(length, 2)) for length in rng.randint(1, 30, 200)]
    targets = (
        [(x[:, 0] > 0).astype(int) for x in X]
        if estimator_class is RNNTagger
        else np.array([int(x[:, 0].sum() > 0) for x in X])
    )
    model = estimator_class(hidden_size=16, max_iter=2, random_state=0).fit(X, targets)
    batches = [X[i::4] for i in range(4)] + [X] * 4
    serial = [model.predict_proba(batch) for batch in batches]
    barrier = threading.Barrier(4)

    def predict(batch):
        barrier.wait()
        return model.predict_proba(batch)

    for _ in range(2):
        with ThreadPoolExecutor(max_workers=4) as pool:
            concurrent = list(pool.map(predict, batches))
        for got, expected in zip(concurrent, serial, strict=True):
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)
