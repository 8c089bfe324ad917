"""Benchmarks of ``rnntools.functional.rnn_forward`` and ``rnn_backward``."""

from .common import (
    CELLS,
    SHAPES,
    TORCH_THREADS,
    RNNBenchmark,
    calls_per_sample,
    interleaved_samples,
    make_torch_rnn,
    median_wall,
    torch_forward_backward,
)


class RNNKernelsSuite(RNNBenchmark):
    """Time and peak memory of one forward and one forward+backward call."""

    param_names = ("cell", "shape", "bidirectional", "dtype")
    params = (CELLS, SHAPES, (False, True), ("float32", "float64"))

    def setup(self, cell, shape, bidirectional, dtype):
        self.make_data(cell, shape, dtype=dtype, bidirectional=bidirectional)

    def time_forward(self, *args):
        self.forward()

    def time_forward_backward(self, *args):
        self.forward_backward()

    def peakmem_forward_backward(self, *args):
        self.forward_backward()


class TorchSpeedupSuite(RNNBenchmark):
    """rnntools against ``torch.nn.RNN/LSTM/GRU`` (CPU, float32), same process.

    Skipped where torch is not installed. torch runs ``TORCH_THREADS``
    intra-op threads; rnntools chooses its own.
    """

    param_names = ("cell", "shape")
    params = (CELLS, SHAPES)
    n_repeats = 7
    min_sample_seconds = 0.01

    def setup(self, cell, shape):
        try:
            import torch
        except ImportError as exc:
            raise NotImplementedError("torch is not installed") from exc
        torch.set_num_threads(TORCH_THREADS)
        self.make_data(cell, shape)
        self.torch_rnn = make_torch_rnn(cell, self.weights, self.shape)
        self.torch_step()

    def torch_step(self):
        return torch_forward_backward(self.torch_rnn, self.x, self.d_output)

    def track_speedup_vs_torch_forward_backward(self, cell, shape):
        funcs = {"rnntools": self.forward_backward, "torch": self.torch_step}
        numbers = {
            name: calls_per_sample(func, self.min_sample_seconds)
            for name, func in funcs.items()
        }
        samples = interleaved_samples(funcs, repeats=self.n_repeats, numbers=numbers)
        return median_wall(samples["torch"]) / median_wall(samples["rnntools"])

    track_speedup_vs_torch_forward_backward.unit = "torch time / rnntools time"
