"""
Gradient check in five lines
============================

How to verify rnntools' gradients yourself: compare what ``rnn_backward``
returns with central finite differences of ``rnn_forward``, in float64, for
a random upstream gradient (so that every output element matters).

Run: ``python examples/gradient_check.py``
"""

import numpy as np

import rnntools
from rnntools.functional import rnn_backward, rnn_forward

# %%
# A small bidirectional 2-layer GRU on a ragged batch, in float64.
rng = np.random.default_rng(0)
params = rnntools.init_params(
    "gru", 3, 4, num_layers=2, bidirectional=True, random_state=0, dtype=np.float64
)
x = rng.standard_normal((3, 6, 3))
lengths = np.array([6, 2, 4])
upstream = rng.standard_normal((3, 6, 8))  # d loss / d output


def loss(params, x):
    output, _, _ = rnn_forward(x, params, "gru", bidirectional=True, lengths=lengths)
    return np.sum(output * upstream)


# %%
# Backpropagation through time.
_, _, cache = rnn_forward(x, params, "gru", bidirectional=True, lengths=lengths)
grads, d_x, _ = rnn_backward(cache, upstream)

# %%
# Central differences along one random direction per array (checking every
# element works the same way, one element at a time).
step = 1e-6
worst = 0.0
for key in params:
    direction = rng.standard_normal(params[key].shape)
    plus = {**params, key: params[key] + step * direction}
    minus = {**params, key: params[key] - step * direction}
    numeric = (loss(plus, x) - loss(minus, x)) / (2 * step)
    analytic = np.sum(grads[key] * direction)
    error = abs(numeric - analytic) / max(abs(analytic), 1e-12)
    worst = max(worst, error)
    print(f"{key:22s} backprop {analytic:+.10f}  finite differences {numeric:+.10f}")
direction = rng.standard_normal(x.shape)
numeric = (loss(params, x + step * direction) - loss(params, x - step * direction)) / (
    2 * step
)
print(
    f"{'x':22s} backprop {np.sum(d_x * direction):+.10f}  "
    f"finite differences {numeric:+.10f}"
)
print(f"worst relative error over the parameters: {worst:.1e}")
assert worst < 1e-6
