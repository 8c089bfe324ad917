"""Fit time of RNNClassifier against an idiomatic PyTorch training loop.

Same data (scikit-learn's digits read row by row: 8 steps x 8 features), same
architecture (1-layer LSTM, 64 hidden units, a linear head on the final hidden
state), same optimiser (Adam, learning rate 5e-3), batch size 32, epochs and
threads, measured in the same process. Prints both fit times, their ratio and
both test accuracies.

Run as::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python asv_benchmarks/compare_torch_fit.py
"""

import argparse
import time
import warnings

import numpy as np
from benchmarks.common import make_torch_classifier, torch_train_epoch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from rnntools import RNNClassifier


def torch_fit(X_train, y_train, X_test, y_test, *, epochs, hidden, lr, batch, seed):
    """Train the same network with PyTorch; return fit seconds and test accuracy.

    The network and the epoch loop are ``benchmarks.common``'s
    ``make_torch_classifier`` and ``torch_train_epoch``, which the asv
    benchmarks and ``compare_torch.py --estimator`` use too.
    """
    import torch

    torch.manual_seed(seed)
    model = make_torch_classifier("lstm", X_train.shape[2], hidden, 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    X = torch.from_numpy(X_train)
    y = torch.from_numpy(y_train.astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        torch_train_epoch(model, optimizer, X, y, batch_size=batch, generator=generator)
    fit_time = time.perf_counter() - start
    with torch.no_grad():
        predicted = model(torch.from_numpy(X_test)).argmax(1).numpy()
    return fit_time, float((predicted == y_test).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    images, labels = load_digits(return_X_y=True)
    X = (images / 16.0).reshape(-1, 8, 8).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, labels, test_size=0.25, stratify=labels, random_state=0
    )
    settings = {"hidden": 64, "lr": 5e-3, "batch": 32, "seed": 0}

    model = RNNClassifier(
        hidden_size=settings["hidden"],
        learning_rate_init=settings["lr"],
        batch_size=settings["batch"],
        max_iter=1,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train[:64], y_train[:64])  # JIT warm-up, not timed
        model.set_params(max_iter=args.epochs, n_iter_no_change=args.epochs + 1)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        ours = time.perf_counter() - start
    ours_accuracy = model.score(X_test, y_test)
    theirs, theirs_accuracy = torch_fit(
        X_train, y_train, X_test, y_test, epochs=args.epochs, **settings
    )
    print(
        f"digits, LSTM 64, Adam, batch 32, {args.epochs} epochs, "
        f"{args.threads} threads, torch {torch.__version__}"
    )
    print(f"rnntools fit {ours:7.2f} s   test accuracy {ours_accuracy:.4f}")
    print(f"torch    fit {theirs:7.2f} s   test accuracy {theirs_accuracy:.4f}")
    print(f"ratio rnntools / torch: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
