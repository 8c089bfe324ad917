"""Write model files and pickles with rnntools as of c5a1466 (before the
estimators became a package), with the predictions they made.

Usage (see README.md here)::

    PYTHONPATH=/tmp/oldtree python tests/data/make_old_files.py tests/data
"""

import pickle
import sys
import warnings

import numpy as np

from rnntools import RNNClassifier, RNNRegressor, RNNTagger, save_model


def main(out):
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((rng.integers(3, 7), 2)) for _ in range(30)]
    labels = np.array(["a" if s[:, 0].mean() > 0 else "b" for s in X])
    targets = np.c_[[s.sum() for s in X], [len(s) for s in X]]
    tags = [(s[:, 1] > 0).astype(int) for s in X]
    settings = {"hidden_size": 4, "max_iter": 3, "random_state": 0}
    models = {
        "classifier": RNNClassifier(**settings).fit(X, labels),
        "regressor": RNNRegressor(cell="gru", **settings).fit(X, targets),
        "tagger": RNNTagger(cell="rnn", **settings).fit(X, tags),
    }
    expected = {}
    for name, model in models.items():
        save_model(model, f"{out}/{name}-c5a1466.npz")
        with open(f"{out}/{name}-c5a1466.pkl", "wb") as file:
            pickle.dump(model, file)
        predicted = model.predict(X)
        expected[f"pred_{name}"] = (
            np.concatenate(predicted) if name == "tagger" else np.asarray(predicted)
        )
    np.savez(f"{out}/inputs-predictions-c5a1466.npz", *X, **expected)


if __name__ == "__main__":
    main(sys.argv[1])
