"""
Sequence classification: digits read row by row
================================================

Each 8x8 image of scikit-learn's handwritten digits is read as a sequence of
8 rows of 8 pixels; a recurrent network reads the rows top to bottom and
classifies the digit from its final state. We compare the LSTM, GRU and plain
(Elman) RNN cells, plus a bidirectional LSTM that also reads the rows bottom
to top, and plot their training loss and validation accuracy per epoch.

The digits need no scaling (every pixel lies in [0, 1]), but many sequence
data sets mix features of very different scales. A second, synthetic data set
of sensor logs shows what that costs: the same RNNClassifier, cross-validated
with the same seeds, on the raw features and behind a ``SequenceScaler`` in a
``Pipeline``.

Run: ``python examples/sequence_classification.py [--quick]``
(writes ``sequence_classification.png``)
"""

import argparse
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline

from rnntools import RNNClassifier, SequenceScaler

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
# Features on very different scales: sensor logs of 20 to 40 steps, each in one
# of four operating modes, (low or high vibration) x (falling or rising
# pressure). Vibration is of order 1; pressure is in pascals, about 1e4 with
# changes of about 1e3; two more channels, unrelated to the mode, are of order
# 1e-2 and 1e2. The sequences have different lengths, so they form a list, which
# scikit-learn's StandardScaler cannot take; SequenceScaler standardises each
# feature over every step of every sequence.
def make_sensor_logs(n_sequences, rng):
    modes = rng.integers(0, 4, n_sequences)
    logs = []
    for mode in modes:
        n_steps = rng.integers(20, 41)
        progress = np.arange(n_steps) / n_steps
        vibration = 0.8 * (mode % 2) + rng.standard_normal(n_steps)
        trend = progress if mode // 2 else -progress
        pressure = 1e4 + 1e3 * (trend + 0.5 * rng.standard_normal(n_steps))
        unrelated = rng.standard_normal((n_steps, 2)) * [1e-2, 1e2]
        logs.append(np.column_stack([vibration, pressure, unrelated]))
    return logs, modes


logs, modes = make_sensor_logs(400 if quick else 1000, np.random.default_rng(0))
sensor_model = RNNClassifier(
    hidden_size=16 if quick else 32,
    learning_rate_init=5e-3,
    max_iter=20 if quick else 60,
    random_state=0,
)
folds = StratifiedKFold(5, shuffle=True, random_state=0)
sensor_scores = {
    "raw features": cross_val_score(sensor_model, logs, modes, cv=folds),
    "SequenceScaler": cross_val_score(
        make_pipeline(SequenceScaler(), sensor_model), logs, modes, cv=folds
    ),
}
majority = np.bincount(modes).max() / len(modes)
print(f"\n{len(logs)} sensor logs, 4 modes, 5-fold cross-validated accuracy")
print(f"(always predicting the most frequent mode scores {majority:.3f}):")
for name, scores in sensor_scores.items():
    print(f"{name:20s} {scores.mean():.3f} (folds {np.round(scores, 3).tolist()})")

# %%
# Loss curves and validation accuracy per epoch on the digits, and the sensor
# logs' accuracy with and without scaling.
fig, (ax_loss, ax_val, ax_scale) = plt.subplots(1, 3, figsize=(16, 4))
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
for position, scores in enumerate(sensor_scores.values()):
    ax_scale.bar(position, scores.mean(), color=f"C{position}", alpha=0.6)
    ax_scale.plot([position] * len(scores), scores, "k.")
ax_scale.axhline(majority, color="gray", linestyle="--", label="most frequent mode")
ax_scale.legend(loc="upper left")
ax_scale.set(
    xticks=range(len(sensor_scores)),
    xticklabels=list(sensor_scores),
    ylim=(0, 1),
    ylabel="accuracy (bars: mean; dots: folds)",
    title="Sensor logs: scaled vs raw features",
)
fig.suptitle("Digits read row by row: LSTM vs GRU vs RNN; sensor logs: scaling")
fig.tight_layout()
fig.savefig("sequence_classification.png", dpi=100)
print("wrote sequence_classification.png")
