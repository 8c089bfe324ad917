"""Benchmarks of ``rnntools.functional.rnn_forward`` and ``rnn_backward``."""

from .common import (
    CELLS,
    PER_STEP_STEPS,
    SHAPES,
    TORCH_THREADS,
    WIDE_LSTM_SHAPES,
    Benchmark,
    RNNBenchmark,
    calls_per_sample,
    format_shape,
    interleaved_samples,
    make_torch_rnn,
    per_step_seconds,
    per_step_shape,
    speedup_vs_torch,
    torch_forward,
    torch_forward_backward,
)


class RNNKernelsSuite(RNNBenchmark):
    """Time and peak memory of one forward, one inference forward (no cache)
    and one forward+backward call."""

    param_names = ("cell", "shape", "bidirectional", "dtype")
    params = (CELLS, SHAPES, (False, True), ("float32", "float64"))

    def setup(self, cell, shape, bidirectional, dtype):
        self.make_data(cell, shape, dtype=dtype, bidirectional=bidirectional)

    def time_forward(self, *args):
        self.forward()

    def time_forward_backward(self, *args):
        self.forward_backward()

    def time_inference(self, *args):
        self.inference()

    def peakmem_forward_backward(self, *args):
        self.forward_backward()

    def peakmem_inference(self, *args):
        self.inference()


class WideLSTMInferenceSuite(RNNBenchmark):
    """Time and peak memory of the inference of an LSTM wide enough to run
    panel by panel (``rnntools.kernels.cpu.lstm_panel_layer``)."""

    param_names = ("shape", "dtype")
    params = (WIDE_LSTM_SHAPES, ("float32", "float64"))

    def setup(self, shape, dtype):
        self.make_data("lstm", shape, dtype=dtype)
        self.inference()  # compiles the panel kernel outside the timing

    def time_inference(self, *args):
        self.inference()

    def peakmem_inference(self, *args):
        self.inference()


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
        self.torch_forward()
        self.torch_forward_backward()

    def torch_forward(self):
        return torch_forward(self.torch_rnn, self.x)

    def torch_forward_backward(self):
        return torch_forward_backward(self.torch_rnn, self.x, self.d_output)

    def speedup(self, ours, theirs):
        return speedup_vs_torch(
            ours,
            theirs,
            repeats=self.n_repeats,
            min_sample_seconds=self.min_sample_seconds,
        )

    def track_speedup_vs_torch_forward(self, cell, shape):
        return self.speedup(self.forward, self.torch_forward)

    track_speedup_vs_torch_forward.unit = "torch time / rnntools time"

    def track_speedup_vs_torch_forward_backward(self, cell, shape):
        return self.speedup(self.forward_backward, self.torch_forward_backward)

    track_speedup_vs_torch_forward_backward.unit = "torch time / rnntools time"


class PerStepOverheadSuite(Benchmark):
    """Fixed cost of one timestep: batch 1, 4 inputs, 4 hidden units, float32.

    ``track_us_per_step_forward_backward`` times forward+backward at
    ``T = 1000`` and ``T = 4000`` (5 and 20 with ``RNNTOOLS_BENCH_SMOKE=1``)
    in alternation and returns ``(time(4000) - time(1000)) / 3000`` in
    microseconds: the cost of one more step, without the per-call cost. The
    target is 0.5 us or less.
    """

    param_names = ("cell",)
    params = (CELLS,)
    n_repeats = 7
    min_sample_seconds = 0.01

    def setup(self, cell):
        self.calls = {}
        for steps in PER_STEP_STEPS:
            problem = RNNBenchmark()
            problem.make_data(cell, format_shape(per_step_shape(steps)))
            self.calls["rnntools", steps] = problem.forward_backward

    def track_us_per_step_forward_backward(self, cell):
        numbers = {
            key: calls_per_sample(func, self.min_sample_seconds)
            for key, func in self.calls.items()
        }
        samples = interleaved_samples(
            self.calls, repeats=self.n_repeats, numbers=numbers
        )
        return 1e6 * per_step_seconds(samples, "rnntools")

    track_us_per_step_forward_backward.unit = "us per step"
