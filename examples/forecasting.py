"""
Forecasting a chaotic time series
=================================

The Mackey–Glass series is the solution of a delay differential equation
from physiology (the regulation of blood cell production),

    dx/dt = 0.2 x(t - 17) / (1 + x(t - 17)^10) - 0.1 x(t),

chaotic for the delay tau = 17: a classic benchmark for forecasting. We
integrate it here (no download), train an :class:`~rnntools.RNNRegressor`
(LSTM) to predict the next value from the last 20, and compare it with the
naive forecast "the next value equals the last one", both one step ahead and
over a multi-step rollout where the model's predictions are fed back as input.

Run: ``python examples/forecasting.py [--quick]`` (writes ``forecasting.png``)
"""

import argparse
import warnings

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning

from rnntools import RNNRegressor

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--quick", action="store_true", help="less data, fewer epochs")
quick = parser.parse_args().quick


# %%
# Integrate the delay equation with fourth-order Runge–Kutta (step 0.1, the
# delayed value interpolated linearly between stored points), from a constant
# history, and sample it once per time unit.
def mackey_glass(n_samples, tau=17.0, dt=0.1, beta=0.2, gamma=0.1, power=10):
    def f(x, x_delayed):
        return beta * x_delayed / (1.0 + x_delayed**power) - gamma * x

    per_unit = round(1 / dt)
    lag = round(tau / dt)
    warmup = 500 * per_unit  # let the transient die out
    n_steps = warmup + n_samples * per_unit
    x = np.full(n_steps + lag + 1, 1.2)
    for i in range(lag, n_steps + lag):
        delayed, delayed_next = x[i - lag], x[i - lag + 1]
        delayed_mid = 0.5 * (delayed + delayed_next)
        k1 = f(x[i], delayed)
        k2 = f(x[i] + 0.5 * dt * k1, delayed_mid)
        k3 = f(x[i] + 0.5 * dt * k2, delayed_mid)
        k4 = f(x[i] + dt * k3, delayed_next)
        x[i + 1] = x[i] + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[lag + warmup + 1 :: per_unit][:n_samples]


series = mackey_glass(1200 if quick else 3000)
mean, std = series.mean(), series.std()
z = (series - mean) / std  # the network sees a standardized series

# %%
# Sliding windows: 20 past values (a 2-D array is read as univariate
# sequences) and the next value. The first 2/3 train, the rest tests.
window = 20
X = np.lib.stride_tricks.sliding_window_view(z[:-1], window).astype("float32")
y = z[window:]
split = 2 * len(z) // 3
X_train, y_train = X[:split], y[:split]
X_test, y_test = X[split:], y[split:]

# %%
# A one-layer LSTM; early stopping on a held-out tenth of the windows.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    model = RNNRegressor(
        cell="lstm",
        hidden_size=32,
        learning_rate_init=5e-3,
        max_iter=15 if quick else 150,
        early_stopping=True,
        tol=1e-6,  # the validation R² creeps towards 1: keep going while it does
        n_iter_no_change=15,
        random_state=0,
    ).fit(X_train, y_train)


def rmse(prediction, truth):
    return float(np.sqrt(np.mean((prediction - truth) ** 2)))


one_step = model.predict(X_test) * std + mean
truth = y_test * std + mean
naive = X_test[:, -1] * std + mean
print(f"trained {model.n_iter_} epochs on {len(X_train)} windows")
print(
    f"one-step RMSE: LSTM {rmse(one_step, truth):.4f}, naive {rmse(naive, truth):.4f}"
)

# %%
# Multi-step rollout: start from a test window, predict one value, append it
# to the window, drop the oldest value, and repeat. Many rollouts (one from
# every 10th test window) run at once, as one batch.
horizon = 50
starts = np.arange(0, len(X_test) - horizon, 10)
windows = X_test[starts].copy()
rollout = np.empty((len(starts), horizon))
for step in range(horizon):
    rollout[:, step] = model.predict(windows)
    windows = np.concatenate([windows[:, 1:], rollout[:, step : step + 1]], axis=1)
rollout = rollout * std + mean
targets = np.stack([y_test[s : s + horizon] for s in starts]) * std + mean
last_value = (X_test[starts, -1] * std + mean)[:, None]
rollout_error = np.sqrt(np.mean((rollout - targets) ** 2, axis=0))
naive_error = np.sqrt(np.mean((last_value - targets) ** 2, axis=0))
print(
    f"{horizon}-step rollout RMSE: LSTM {rmse(rollout, targets):.4f}, "
    f"naive {rmse(np.broadcast_to(last_value, targets.shape), targets):.4f}"
)
for h in (1, 10, 25, 50):
    print(
        f"  at step {h:2d}: LSTM {rollout_error[h - 1]:.4f}, "
        f"naive {naive_error[h - 1]:.4f}"
    )
assert rmse(one_step, truth) < rmse(naive, truth)

# %%
# Plot: one rollout against the truth, and the error by horizon.
fig, (ax_series, ax_error) = plt.subplots(
    1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]}
)
first = len(starts) // 2
t0 = split + window + starts[first]  # index in ``series`` of the first forecast
history = np.arange(t0 - 100, t0)
ax_series.plot(history, series[history], color="0.4", label="history")
future = np.arange(t0, t0 + horizon)
ax_series.plot(future, series[future], color="k", label="truth")
ax_series.plot(future, rollout[first], "C1--", label=f"LSTM, {horizon}-step rollout")
ax_series.axhline(series[t0 - 1], color="C2", ls=":", label="naive (last value)")
ax_series.axvline(t0 - 0.5, color="0.7", lw=0.8)
ax_series.set(xlabel="time", ylabel="x(t)", title="Mackey-Glass (tau = 17)")
ax_series.legend(loc="lower left", fontsize=8)
steps = np.arange(1, horizon + 1)
ax_error.plot(steps, rollout_error, "C1", label="LSTM rollout")
ax_error.plot(steps, naive_error, "C2", label="naive (last value)")
ax_error.set(xlabel="steps ahead", ylabel="RMSE", title="Error by horizon")
ax_error.legend()
fig.tight_layout()
fig.savefig("forecasting.png", dpi=100)
print("wrote forecasting.png")
