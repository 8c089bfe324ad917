"""
Sequence classification: digits read row by row
================================================

Each 8x8 image of scikit-learn's handwritten digits is read as a sequence of
8 rows of 8 pixels; a recurrent network reads the rows top to bottom and
classifies the digit from its final state. We compare the LSTM, GRU and plain
(Elman) RNN cells, plus a bidirectional LSTM that also reads the rows bottom
to top, and plot their training loss and validation accuracy per epoch.

Run: ``python examples/sequence_classification.py [--quick]``
(writes ``sequence_classification.png``)
"""

import argparse
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from rnntools import RNNClassifier

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--quick", action="store_true", help="less data, fewer epochs")
quick = parser.parse_args().quick

# %%
# The data: 1797 images, scaled to [0, 1], as sequences of 8 rows.
digits = load_digits()
X = (digits.images / 16.0).reshape(-1, 8, 8).astype("float32")
y = digits.target
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
if quick:
    X_train, y_train = X_train[:600], y_train[:600]
print(f"{len(X_train)} training and {len(X_test)} test sequences of 8 rows x 8 pixels")

# %%
# Four models, identical but for the cell and the direction. Early stopping
# holds out 10% of the training set and records its accuracy every epoch.
models = {
    "lstm": dict(cell="lstm"),
    "gru": dict(cell="gru"),
    "rnn": dict(cell="rnn"),
    "bidirectional lstm": dict(cell="lstm", bidirectional=True),
}
common = dict(
    hidden_size=32 if quick else 64,
    learning_rate_init=5e-3,
    max_iter=10 if quick else 60,
    early_stopping=True,
    n_iter_no_change=10,
    random_state=0,
)
fitted = {}
if quick:  # quick mode stops before convergence on purpose
    warnings.simplefilter("ignore", ConvergenceWarning)
for name, cell in models.items():
    start = time.perf_counter()
    model = RNNClassifier(**cell, **common).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    fitted[name] = model
    print(
        f"{name:20s} test accuracy {model.score(X_test, y_test):.4f}  "
        f"({model.n_iter_} epochs, {seconds:.1f} s)"
    )

# %%
# Loss curves and validation accuracy per epoch.
fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
for name, model in fitted.items():
    epochs = range(1, len(model.loss_curve_) + 1)
    ax_loss.plot(epochs, model.loss_curve_, label=name)
    ax_val.plot(epochs, model.validation_scores_, label=name)
ax_loss.set(
    xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log", title="Loss"
)
ax_val.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy")
ax_loss.legend()
ax_val.legend(loc="lower right")
fig.suptitle("Digits read row by row: LSTM vs GRU vs RNN")
fig.tight_layout()
fig.savefig("sequence_classification.png", dpi=100)
print("wrote sequence_classification.png")
