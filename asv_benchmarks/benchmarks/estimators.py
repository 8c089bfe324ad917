"""Benchmarks of the estimators: fit, predict, training score, an epoch vs torch.

The data are fixed and seeded (``common.make_sequences``): sequences of 20
to 30 steps of 12 features (``common.ESTIMATOR_PROBLEM``; tiny with
``RNNTOOLS_BENCH_SMOKE=1``). Every ``setup`` fits the estimator once, which
compiles the kernels, so no timed call compiles.
"""

from .common import (
    CELLS,
    EPOCH_PROBLEM,
    TORCH_THREADS,
    Benchmark,
    EpochComparison,
    EstimatorBenchmark,
    speedup_vs_torch,
)


class RNNClassifierSuite(EstimatorBenchmark):
    """``RNNClassifier`` (4 balanced classes): fit, predict, training accuracy."""

    estimator_name = "RNNClassifier"
    task = "classification"
    param_names = ("cell",)
    params = (CELLS,)

    def setup(self, cell):
        self.make_data(cell)

    def time_fit(self, cell):
        self.fit()

    def time_predict(self, cell):
        self.estimator.predict(self.X)

    def track_train_score(self, cell):
        return float(self.estimator.score(self.X, self.y))

    track_train_score.unit = "accuracy"


class RNNRegressorSuite(EstimatorBenchmark):
    """``RNNRegressor`` (one real target): fit, predict, training R²."""

    estimator_name = "RNNRegressor"
    task = "regression"
    param_names = ("cell",)
    params = (CELLS,)

    def setup(self, cell):
        self.make_data(cell)

    def time_fit(self, cell):
        self.fit()

    def time_predict(self, cell):
        self.estimator.predict(self.X)

    def track_train_score(self, cell):
        return float(self.estimator.score(self.X, self.y))

    track_train_score.unit = "R^2"


class TorchEpochSpeedupSuite(Benchmark):
    """One training epoch of ``RNNClassifier`` against an idiomatic torch loop.

    LSTM, 64 hidden units, 256 sequences of 20 to 30 steps x 12 features,
    batch 32, Adam (``common.EPOCH_PROBLEM`` and ``common.EpochComparison``),
    both in this process, torch on ``TORCH_THREADS`` threads. Skipped where
    torch is not installed.
    """

    n_repeats = 7

    def setup(self):
        try:
            import torch
        except ImportError as exc:
            raise NotImplementedError("torch is not installed") from exc
        torch.set_num_threads(TORCH_THREADS)
        self.comparison = EpochComparison("lstm", **EPOCH_PROBLEM)

    def track_speedup_vs_torch_epoch(self):
        return speedup_vs_torch(
            self.comparison.rnntools_epoch,
            self.comparison.torch_epoch,
            repeats=self.n_repeats,
        )

    track_speedup_vs_torch_epoch.unit = "torch time / rnntools time"
