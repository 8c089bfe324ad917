"""
Scaling out on Dask: a grid search and an out-of-core fit
=========================================================

Two ways a cluster helps, shown on a ``distributed.LocalCluster`` of two
worker processes; the same code runs on a real cluster given its scheduler's
address (``--scheduler tcp://host:8786``, see the README's "Scaling out").

1. A grid search: scikit-learn hands its fits to joblib, and joblib's Dask
   backend runs them on the cluster's workers. We time it against joblib's
   default backend (loky: worker processes on this machine) and check that
   both find the same model.
2. An out-of-core fit: a data set written to disk, larger than the memory
   each worker is given, is read block by block by the workers and streamed
   through ``partial_fit`` by dask-ml's ``Incremental``; nothing ever holds
   all of it.

Run: ``python examples/scaling_out.py [--quick] [--scheduler ADDRESS]``
(needs ``python -m pip install -e ".[distributed]"``)
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import joblib
import numpy as np
from dask_ml.wrappers import Incremental
from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.utils import gen_batches

from rnntools import RNNClassifier
from rnntools.dask import sequence_blocks

#: Memory each local worker may use; the out-of-core data set is larger. A
#: worker here peaks at about 0.8 GiB: 0.3 for Python and the libraries, 0.2
#: for the compiled kernels, the rest for blocks of data, their copies during
#: training and the allocator's slack.
WORKER_MEMORY = "1GiB"


# %%
# The grid search: digits read row by row (8 steps of 8 pixels), as in
# ``sequence_classification.py``. Under ``joblib.parallel_backend("dask")``
# every ``fit`` of the search is a task on the cluster: joblib scatters ``X``
# and ``y`` to the workers once, and each task carries the estimator and the
# indices of its split to a worker, which imports rnntools and loads the
# compiled kernels from Numba's cache (or compiles them once).
def grid_search(quick):
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    y = digits.target
    if quick:
        X, y = X[:400], y[:400]
    search = GridSearchCV(
        RNNClassifier(
            learning_rate_init=1e-2, max_iter=5 if quick else 30, random_state=0
        ),
        {"cell": ["lstm", "gru"], "hidden_size": [8, 32] if quick else [16, 64]},
        cv=3,
        n_jobs=-1,
    )
    results = {}
    # The first search on each backend also starts its workers (loky's) or
    # loads the kernels in them (Dask's cluster is already up); the second
    # is the steady state.
    for run in ("first", "second")[: 1 if quick else 2]:
        for backend in ("dask", "loky"):
            start = time.perf_counter()
            with joblib.parallel_backend(backend):
                search.fit(X, y)
            seconds = time.perf_counter() - start
            scores = search.cv_results_["mean_test_score"]
            results[backend] = search.best_params_, scores
            print(
                f"{run} grid search on {backend}: {len(scores)} candidates x 3 "
                f"folds in {seconds:.1f} s, best {search.best_params_} "
                f"(cross-validated accuracy {search.best_score_:.3f})"
            )
    # Bit for bit the same when the workers run the kernels on as many
    # threads as loky's do (RNNTOOLS_NUM_THREADS): the thread count decides
    # how a batch is split, and so the order of the gradients' sums.
    (dask_best, dask_scores), (loky_best, loky_scores) = results.values()
    same = dask_best == loky_best and np.array_equal(dask_scores, loky_scores)
    print(f"same best model and scores on both backends: {same}")


# %%
# The out-of-core data set: sequences of 32 steps of 8 features of unit
# noise, labelled by the sign of a faint linear drift (0.01 a step) of
# feature 0. It is written to two ``.npy`` files, sequences and labels, one
# slice at a time: not even the writer holds all of it.
N_STEPS, N_FEATURES = 32, 8


def write_data_set(directory, n_sequences, chunk):
    X = np.lib.format.open_memmap(
        directory / "sequences.npy",
        mode="w+",
        dtype=np.float32,
        shape=(n_sequences, N_STEPS, N_FEATURES),
    )
    y = np.lib.format.open_memmap(
        directory / "labels.npy", mode="w+", dtype=np.int64, shape=(n_sequences,)
    )
    rng = np.random.default_rng(0)
    for rows in gen_batches(n_sequences, chunk):
        block = rng.normal(size=(rows.stop - rows.start, N_STEPS, N_FEATURES))
        drift = rng.choice([-0.01, 0.01], size=(len(block), 1))
        block[:, :, 0] += drift * np.arange(N_STEPS)
        X[rows] = block
        y[rows] = drift[:, 0] > 0
    X.flush()
    y.flush()


def load_rows(path, start, stop):
    """Rows ``start:stop`` of a ``.npy`` file: runs on a worker, which reads
    only these rows from disk."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def lazy_array(path, rows, chunk):
    """Rows ``rows`` (a slice) of a ``.npy`` file as a Dask array of blocks
    of ``chunk`` rows, each read by a worker when it needs it. On a real
    cluster ``path`` must be on storage every worker sees (or use Zarr, HDF5
    on a shared disk, ...)."""
    on_disk = np.load(path, mmap_mode="r")
    blocks = [
        da.from_delayed(
            dask.delayed(load_rows)(
                str(path), rows.start + block.start, rows.start + block.stop
            ),
            shape=(block.stop - block.start, *on_disk.shape[1:]),
            dtype=on_disk.dtype,
        )
        for block in gen_batches(rows.stop - rows.start, chunk)
    ]
    return da.concatenate(blocks)


def out_of_core_fit(client, quick, directory):
    n_sequences = 20_000 if quick else 1_200_000
    chunk = 5_000 if quick else 20_000
    write_data_set(directory, n_sequences, chunk)
    size = (directory / "sequences.npy").stat().st_size
    print(
        f"\nout-of-core data set: {n_sequences} sequences, {size / 2**20:.0f} MiB "
        f"on disk, read in blocks of {chunk}; each worker may use {WORKER_MEMORY}"
    )
    # Train and test come from separate reads, not slices of one array: the
    # fit's graph and the prediction's then share no task. With slices of one
    # from_delayed array, the prediction after an Incremental fit often dies
    # with a KeyError on a block's key (a scheduler race, not ours: it
    # happens with scikit-learn's SGDClassifier as well).
    n_train = n_sequences - chunk  # the last block is held out
    train, test = slice(0, n_train), slice(n_train, n_sequences)
    X_train = lazy_array(directory / "sequences.npy", train, chunk)
    y_train = lazy_array(directory / "labels.npy", train, chunk)
    X_test = lazy_array(directory / "sequences.npy", test, chunk)
    y_test = np.load(directory / "labels.npy")[test]

    # Incremental calls partial_fit on one block after another (one epoch
    # each time it is fitted), on whichever worker holds the block. dask-ml
    # misaddresses the blocks of a 3-D array (dask/dask-ml#972):
    # sequence_blocks hands it the same blocks as 1-D arrays of sequences.
    model = Incremental(
        RNNClassifier(hidden_size=16, learning_rate_init=5e-3, random_state=0),
        random_state=0,
    )
    start = time.perf_counter()
    for epoch in range(2):
        model.partial_fit(sequence_blocks(X_train), y_train, classes=[0, 1])
        predicted = X_test.map_blocks(
            model.estimator_.predict, drop_axis=(1, 2), dtype=np.int64
        ).compute()
        print(
            f"epoch {epoch + 1}: held-out accuracy "
            f"{np.mean(predicted == y_test):.3f} "
            f"({time.perf_counter() - start:.1f} s)"
        )
    peaks = client.run(peak_memory_mib).values()
    print(
        "peak memory of the workers: "
        + ", ".join(f"{peak:.0f} MiB" for peak in peaks)
        + f" (each may use {WORKER_MEMORY})"
    )


def peak_memory_mib():
    """This process's peak resident memory (Linux reports kiB, macOS bytes)."""
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="less data, fewer fits")
    parser.add_argument(
        "--scheduler", help="a running cluster's scheduler (default: a LocalCluster)"
    )
    args = parser.parse_args()
    # The grid's fits stop at max_iter on purpose: they are timed, not tuned.
    warnings.simplefilter("ignore", ConvergenceWarning)

    # Worker processes, one thread each, no dashboard. Nannies start their
    # workers with "spawn" (Dask's default), never "fork": a forked child
    # inherits the parent's thread pools mid-flight and can hang.
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=WORKER_MEMORY,
            dashboard_address=None,
        )
        client = Client(cluster)
    with client:
        n_workers = len(client.scheduler_info()["workers"])
        print(f"{n_workers} workers, scheduler at {client.scheduler.address}")
        grid_search(args.quick)
        with tempfile.TemporaryDirectory() as directory:
            out_of_core_fit(client, args.quick, Path(directory))
    if not args.scheduler:
        cluster.close()


# Spawned workers import this module again: only the main process may start
# a cluster.
if __name__ == "__main__":
    main()
