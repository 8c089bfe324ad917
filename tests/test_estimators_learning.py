"""The estimators learn: digits as sequences, a noisy sine continuation, and a
tagging task that only a bidirectional network can solve."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from rnntools import RNNClassifier, RNNRegressor, RNNTagger

# A fixed budget of epochs, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_lstm_classifies_digits_read_row_by_row():
    """Each 8x8 digit image is a sequence of 8 rows of 8 pixels; an LSTM reaches
    at least 0.95 test accuracy (0.98 when this test was written)."""
    images, labels = load_digits(return_X_y=True)
    sequences = (images / 16.0).reshape(-1, 8, 8).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        sequences, labels, test_size=0.25, stratify=labels, random_state=0
    )
    model = RNNClassifier(
        cell="lstm",
        hidden_size=64,
        learning_rate_init=5e-3,
        max_iter=15,
        random_state=0,
    ).fit(X_train, y_train)
    assert model.params_["weight_ih_l0"].dtype == np.float32
    assert model.score(X_test, y_test) >= 0.95


def _sine_windows(n, steps, horizon, rng):
    """Noisy windows of sine waves of random frequency and phase; the target
    is the noise-free value ``horizon`` steps after the window's last step."""
    frequency = rng.uniform(0.1, 0.4, (n, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    wave = np.sin(frequency * np.arange(steps + horizon) + phase)
    noisy = wave[:, :steps] + rng.normal(0, 0.05, (n, steps))
    return noisy.astype(np.float32), wave[:, -1]


def test_regressor_continues_a_noisy_sine():
    """R² >= 0.9 on held-out windows (0.98 when this test was written), where
    repeating the window's last value scores about 0.2: the network must infer
    frequency and phase."""
    rng = np.random.RandomState(0)
    X_train, y_train = _sine_windows(600, 20, 3, rng)
    X_test, y_test = _sine_windows(200, 20, 3, rng)
    model = RNNRegressor(
        cell="lstm",
        hidden_size=16,
        learning_rate_init=1e-2,
        max_iter=20,
        random_state=0,
    ).fit(X_train, y_train)  # 2-D input: univariate sequences
    assert model.score(X_test, y_test) >= 0.9
    last_value_r2 = 1 - np.sum((X_test[:, -1] - y_test) ** 2) / np.sum(
        (y_test - y_test.mean()) ** 2
    )
    assert last_value_r2 < 0.5


def _next_symbol_task(n, rng, n_symbols=4):
    """Random one-hot symbol sequences; each step is labelled with the next
    step's symbol (the last step with an extra "end" label). Only a network
    that reads the future can do better than chance."""
    sequences = [rng.randint(0, n_symbols, length) for length in rng.randint(5, 15, n)]
    X = [np.eye(n_symbols, dtype=np.float32)[s] for s in sequences]
    y = [np.append(s[1:], n_symbols) for s in sequences]
    return X, y


def test_bidirectional_tagger_reads_the_future():
    rng = np.random.RandomState(0)
    X_train, y_train = _next_symbol_task(400, rng)
    X_test, y_test = _next_symbol_task(100, rng)
    scores = {}
    for bidirectional in (False, True):
        tagger = RNNTagger(
            cell="gru",
            hidden_size=16,
            bidirectional=bidirectional,
            learning_rate_init=1e-2,
            max_iter=15,
            random_state=0,
        ).fit(X_train, y_train)
        scores[bidirectional] = tagger.score(X_test, y_test)
    # Chance is about 1/4; the bidirectional tagger is near perfect.
    assert scores[False] < 0.4
    assert scores[True] > 0.95
