"""
Autocomplete: a character-level language model
==============================================

An :class:`~rnntools.RNNTagger` reads text one character at a time (one-hot
encoded) and, at every step, predicts the next character: the label of step
``t`` is the character at ``t + 1``. The text is documentation that ships with
Python itself: the docstrings of a few standard library modules. A
``complete(model, prompt)`` function then writes text by sampling the next
character from the predicted probabilities (sharpened by a temperature),
appending it, and repeating.

Run: ``python examples/autocomplete.py [--quick]`` (writes ``autocomplete.png``)
"""

import argparse
import importlib
import inspect
import re
import time
import warnings

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning

from rnntools import RNNTagger

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--quick", action="store_true", help="less text, fewer epochs")
quick = parser.parse_args().quick

# %%
# The text: docstrings of standard library modules and of their public
# functions and classes, lower-cased, with runs of whitespace as one space and
# characters outside a small alphabet dropped.
MODULES = ["collections", "json", "textwrap", "random", "heapq", "statistics"]
if not quick:
    MODULES += ["re", "argparse", "itertools", "string", "pickle", "functools"]
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:'\"()[]-_=+*/<>!?"


def docstrings(module_name):
    module = importlib.import_module(module_name)
    yield inspect.getdoc(module) or ""
    for name, member in sorted(vars(module).items()):
        if not name.startswith("_") and callable(member):
            if getattr(member, "__module__", None) == module.__name__:
                yield inspect.getdoc(member) or ""


text = " ".join(doc for name in MODULES for doc in docstrings(name)).lower()
text = re.sub(r"\s+", " ", text)
text = "".join(c for c in text if c in ALPHABET)
print(f"{len(text)} characters of docstrings from {len(MODULES)} modules")

# %%
# Sequences: overlapping chunks of 65 characters; the first 64 are the
# input, the last 64 (shifted by one) the labels. The last tenth of the
# text is kept for testing.
index = {c: i for i, c in enumerate(ALPHABET)}


def one_hot(s):
    x = np.zeros((len(s), len(ALPHABET)), dtype=np.float32)
    x[np.arange(len(s)), [index[c] for c in s]] = 1.0
    return x


def chunks(s, length=64, stride=32):
    starts = range(0, len(s) - length - 1, stride)
    X = np.stack([one_hot(s[i : i + length]) for i in starts])
    y = np.array([list(s[i + 1 : i + length + 1]) for i in starts])
    return X, y  # X: (n, 64, alphabet size); y: (n, 64) characters


split = int(0.9 * len(text))
X_train, y_train = chunks(text[:split])
X_test, y_test = chunks(text[split:], stride=64)
print(f"{len(X_train)} training and {len(X_test)} test sequences of 64 characters")

# %%
# An LSTM tagger: the labels are the characters themselves, so ``classes_``
# is the set of characters seen as a next character.
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    model = RNNTagger(
        cell="lstm",
        hidden_size=96 if quick else 128,
        learning_rate_init=5e-3,
        batch_size=32,
        max_iter=6 if quick else 30,
        random_state=0,
    ).fit(X_train, y_train)
print(f"trained {model.n_iter_} epochs in {time.perf_counter() - start:.1f} s")

# %%
# Next-character accuracy on the held-out text, against always predicting
# the most frequent character (the space).
accuracy = model.score(X_test, y_test)
characters, counts = np.unique(y_test, return_counts=True)
baseline = counts.max() / counts.sum()
print(
    f"next-character accuracy: {accuracy:.3f} "
    f"(most frequent character {str(characters[counts.argmax()])!r}: {baseline:.3f})"
)


# %%
# Sampling: feed the prompt, draw the next character from the last step's
# probabilities raised to the power 1 / temperature, append it, repeat.
sampler = np.random.default_rng(0)


def complete(model, prompt, n=40, temperature=0.5, rng=sampler):
    out = prompt.lower()
    for _ in range(n):
        proba = model.predict_proba([one_hot(out)])[0][-1].astype(np.float64)
        logits = np.log(proba + 1e-12) / temperature
        proba = np.exp(logits - logits.max())
        out += str(model.classes_[rng.choice(len(proba), p=proba / proba.sum())])
    return out


for prompt in ["return the ", "this module ", "if the ", "a list of "]:
    print(f"{prompt!r:16s} -> {complete(model, prompt)!r}")

# %%
# The training loss per epoch.
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(range(1, len(model.loss_curve_) + 1), model.loss_curve_, marker="o")
ax.axhline(
    np.log(len(model.classes_)), color="0.6", ls=":", label="uniform guess, log(K)"
)
ax.set(
    xlabel="epoch",
    ylabel="cross-entropy per character (nats)",
    title=f"Next-character LSTM: accuracy {accuracy:.2f} (baseline {baseline:.2f})",
)
ax.legend()
fig.tight_layout()
fig.savefig("autocomplete.png", dpi=100)
print("wrote autocomplete.png")
