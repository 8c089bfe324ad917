"""Demo: ``python -m rnntools``.

Runs an LSTM, a GRU and an Elman RNN forward and backward on a random ragged
batch, prints the timings (first call includes JIT compilation, or loading it
from Numba's cache) and checks the gradient of one weight against central
finite differences.
"""

import time

import numpy as np

from . import init_params
from .functional import rnn_backward, rnn_forward


def _loss(x, params, cell, lengths, upstream):
    output, _, _ = rnn_forward(x, params, cell, lengths=lengths, bidirectional=True)
    return float(np.sum(output * upstream))


def main():
    rng = np.random.default_rng(0)
    batch, steps, features, hidden = 32, 50, 16, 64
    lengths = rng.integers(steps // 2, steps + 1, size=batch)
    print(f"rnntools demo: batch={batch}, T={steps}, I={features}, H={hidden}, ")
    print(
        "bidirectional, 2 layers, ragged lengths, float32 (timings) / float64 (check)"
    )
    for cell in ("lstm", "gru", "rnn"):
        params = init_params(
            cell, features, hidden, num_layers=2, bidirectional=True, random_state=0
        )
        x = rng.standard_normal((batch, steps, features)).astype(np.float32)
        upstream = rng.standard_normal((batch, steps, 2 * hidden)).astype(np.float32)
        timings = []
        for _ in range(4):
            start = time.perf_counter()
            _, _, cache = rnn_forward(
                x, params, cell, lengths=lengths, bidirectional=True
            )
            middle = time.perf_counter()
            rnn_backward(cache, upstream)
            timings.append((middle - start, time.perf_counter() - middle))
        first, warm = timings[0], np.median(timings[1:], axis=0)
        print(
            f"  {cell:4s}  first call {sum(first) * 1e3:8.1f} ms   "
            f"forward {warm[0] * 1e3:6.2f} ms   backward {warm[1] * 1e3:6.2f} ms"
        )

        # Gradient check in float64 on a small problem.
        small = {k: v.astype(np.float64) for k, v in init_params(
            cell, 3, 4, num_layers=2, bidirectional=True, random_state=1
        ).items()}  # fmt: skip
        xs = rng.standard_normal((3, 5, 3))
        small_lengths = np.array([5, 2, 4])
        g = rng.standard_normal((3, 5, 8))
        _, _, cache = rnn_forward(
            xs, small, cell, lengths=small_lengths, bidirectional=True
        )
        grads, _, _ = rnn_backward(cache, g)
        key, index, step = "weight_hh_l0_reverse", (1, 2), 1e-6
        plus = {k: v.copy() for k, v in small.items()}
        minus = {k: v.copy() for k, v in small.items()}
        plus[key][index] += step
        minus[key][index] -= step
        numeric = (
            _loss(xs, plus, cell, small_lengths, g)
            - _loss(xs, minus, cell, small_lengths, g)
        ) / (2 * step)
        print(
            f"        d loss / d {key}{list(index)}: backprop {grads[key][index]:+.10f}"
            f"  finite differences {numeric:+.10f}"
        )


if __name__ == "__main__":
    main()
