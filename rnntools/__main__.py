"""Demo: ``python -m rnntools``.

Trains an LSTM classifier on scikit-learn's handwritten digits, each 8x8
image read row by row as a sequence of 8 steps of 8 features, with a progress
line per epoch, then prints the test accuracy, the fit time and a summary.
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from . import RNNClassifier
from ._threads import num_threads


def main():
    images, labels = load_digits(return_X_y=True)
    sequences = (images / 16.0).reshape(-1, 8, 8).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        sequences, labels, test_size=0.25, stratify=labels, random_state=0
    )
    print(
        f"digits as sequences: {len(X_train)} training and {len(X_test)} test "
        "images, each read row by row as 8 steps x 8 features"
    )
    model = RNNClassifier(
        cell="lstm",
        hidden_size=64,
        learning_rate_init=5e-3,
        max_iter=30,
        n_iter_no_change=30,
        random_state=0,
        verbose=True,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():  # a fixed budget of epochs, on purpose
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    accuracy = model.score(X_test, y_test)
    n_params = sum(p.size for p in model.params_.values())
    print()
    print(f"test accuracy : {accuracy:.4f}")
    print(
        f"fit time      : {fit_time:.2f} s for {model.n_iter_} epochs "
        f"(includes JIT compilation on the first run; cached afterwards)"
    )
    print(
        f"model         : LSTM, 1 layer, hidden_size=64, {n_params} parameters, "
        f"float32, {num_threads()} threads"
    )
    print(f"final loss    : {model.loss_curve_[-1]:.4f}")


if __name__ == "__main__":
    main()
