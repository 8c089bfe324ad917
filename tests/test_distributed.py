"""Scaling out on Dask: a real ``LocalCluster``, grid search, out-of-core fits.

The cluster has two worker processes, started by their nannies with
``spawn`` (Dask's default): a forked child would inherit the parent's thread
pools (BLAS, rnntools' own) in whatever state they were in, and can hang.
"""

import os
import sys
import tracemalloc

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.utils import gen_batches

from rnntools import RNNClassifier

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
Incremental = pytest.importorskip("dask_ml.wrappers").Incremental

from rnntools.dask import sequence_blocks  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CLASSES = [0, 1]


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def make_sequences(n, steps=8, features=2, seed=0):
    """``n`` sequences ``(steps, features)``; the label: is feature 0's mean > 0."""
    X = np.random.default_rng(seed).normal(size=(n, steps, features))
    X = X.astype(np.float32)
    return X, (X[:, :, 0].mean(axis=1) > 0).astype(np.int64)


def tiny_classifier(**params):
    return RNNClassifier(
        hidden_size=4, max_iter=3, batch_size=16, random_state=0, **params
    )


def assert_same_model(actual, expected):
    assert actual.params_.keys() == expected.params_.keys()
    for key, value in expected.params_.items():
        np.testing.assert_array_equal(actual.params_[key], value, err_msg=key)
    assert actual.t_ == expected.t_
    assert actual.loss_curve_ == expected.loss_curve_


def test_partial_fit_over_a_memmap_equals_in_memory_and_stays_small(tmp_path):
    X, y = make_sequences(12000, steps=16, features=4, seed=3)
    path = tmp_path / "X.npy"
    np.save(path, X)
    on_disk = np.load(path, mmap_mode="r")
    chunk = 200

    def train(X):
        model = RNNClassifier(hidden_size=4, random_state=0)
        for rows in gen_batches(len(X), chunk):
            model.partial_fit(X[rows], y[rows], classes=CLASSES)
        return model

    in_memory = train(X)
    tracemalloc.start()
    try:
        from_disk = train(on_disk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_same_model(from_disk, in_memory)
    # Only a chunk at a time is read into memory: the data set is 3 MB, a
    # chunk 51 kB, and training allocates ~150 kB (reading the whole file
    # would allocate 3 MB). Runs before the cluster starts: tracemalloc
    # counts the allocations of every thread, the Dask client's included.
    assert peak < on_disk.nbytes / 4, (peak, on_disk.nbytes)


def _fit_on_worker(estimator, X, y):
    estimator.fit(X, y)
    return estimator, os.getpid()


def _command_line():
    return sys.orig_argv


def test_workers_are_spawned_not_forked(client):
    # A spawned worker is a fresh interpreter running multiprocessing's
    # spawn_main; a forked one would still show this process's command line.
    command_lines = client.run(_command_line)
    assert len(command_lines) == 2
    for command_line in command_lines.values():
        assert "spawn_main" in " ".join(command_line)
    assert " ".join(_command_line()).count("spawn_main") == 0


def test_fit_on_a_worker_equals_a_local_fit(client):
    X, y = make_sequences(60)
    future = client.submit(_fit_on_worker, tiny_classifier(cell="gru"), X, y)
    remote, worker_pid = future.result()
    local = tiny_classifier(cell="gru").fit(X, y)
    assert worker_pid != os.getpid()
    assert_same_model(remote, local)
    np.testing.assert_array_equal(remote.predict_proba(X), local.predict_proba(X))


def test_grid_search_on_the_cluster_equals_loky(client):
    X, y = make_sequences(90, seed=1)
    grid = {"cell": ["lstm", "gru"], "hidden_size": [2, 6]}

    def search(backend):
        with joblib.parallel_backend(backend):
            return GridSearchCV(tiny_classifier(), grid, cv=3, n_jobs=2).fit(X, y)

    on_dask = search("dask")
    on_loky = search("loky")
    assert on_dask.best_params_ == on_loky.best_params_
    for key in ("mean_test_score", "std_test_score", "rank_test_score"):
        np.testing.assert_array_equal(
            on_dask.cv_results_[key], on_loky.cv_results_[key], err_msg=key
        )
    np.testing.assert_array_equal(on_dask.predict(X), on_loky.predict(X))


def test_incremental_on_a_3d_dask_array_equals_local_partial_fits(client):
    X, y = make_sequences(96, seed=2)
    chunk = 24
    X_dask = da.from_array(X, chunks=(chunk, -1, -1))
    y_dask = da.from_array(y, chunks=chunk)
    incremental = Incremental(tiny_classifier(), shuffle_blocks=False)
    incremental.fit(sequence_blocks(X_dask), y_dask, classes=CLASSES)

    local = tiny_classifier()
    for rows in gen_batches(len(X), chunk):
        local.partial_fit(X[rows], y[rows], classes=CLASSES)
    assert_same_model(incremental.estimator_, local)

    predicted = X_dask.map_blocks(
        incremental.estimator_.predict, drop_axis=(1, 2), dtype=np.int64
    )
    np.testing.assert_array_equal(predicted.compute(), local.predict(X))


def test_incremental_on_the_raw_3d_array_explains_the_dask_ml_bug(client):
    X, y = make_sequences(32)
    X_dask = da.from_array(X, chunks=(16, -1, -1))
    y_dask = da.from_array(y, chunks=16)
    with pytest.raises(ValueError, match=r"key of a Dask task.*sequence_blocks"):
        Incremental(tiny_classifier()).fit(X_dask, y_dask, classes=CLASSES)


def test_sequence_blocks_checks_its_input():
    X = da.zeros((8, 5, 3), chunks=(4, 5, 3))
    assert sequence_blocks(X).shape == (8,)
    assert sequence_blocks(X).chunks == ((4, 4),)
    with pytest.raises(ValueError, match="chunked along the sequences only"):
        sequence_blocks(X.rechunk((4, 2, 3)))
    with pytest.raises(ValueError, match="3-D Dask array"):
        sequence_blocks(da.zeros((8, 5), chunks=4))
    with pytest.raises(ValueError, match="3-D Dask array"):
        sequence_blocks(np.zeros((8, 5, 3)))
