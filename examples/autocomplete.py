"""
Autocomplete: a character-level language model
==============================================

An :class:`~rnntools.RNNLanguageModel` learns the next character of text from
the characters before it, then writes continuations of prompts one character
at a time, carrying its recurrent state from step to step (the cost grows
linearly with the output). The text is documentation that ships with Python
itself: the docstrings of a few standard library modules, split into
sentences. We compare its held-out perplexity with a smoothed character
n-gram model, then complete prompts greedily, by beam search and by sampling
at several temperatures.

Run: ``python examples/autocomplete.py [--quick]`` (writes ``autocomplete.png``)
"""

import argparse
import importlib
import inspect
import re
import time
import warnings
from collections import Counter

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from rnntools import RNNLanguageModel

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--quick", action="store_true", help="less text, fewer epochs")
quick = parser.parse_args().quick

# %%
# The text: docstrings of standard library modules and of their public
# functions and classes, lower-cased, whitespace collapsed, characters outside
# a small alphabet dropped, and cut into sentences of 20 to 200 characters.
MODULES = ["collections", "json", "textwrap", "random", "heapq", "statistics"]
if not quick:  # about 230,000 characters: enough for the LSTM to beat the n-gram
    MODULES += ["re", "argparse", "itertools", "string", "pickle", "functools"]
    MODULES += ["os", "typing", "inspect", "logging", "subprocess", "shutil"]
    MODULES += ["difflib", "urllib.parse", "doctest", "pdb", "configparser"]
    MODULES += ["optparse"]
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:'\"()[]-_=+*/<>!?"


def docstrings(module_name):
    module = importlib.import_module(module_name)
    yield inspect.getdoc(module) or ""
    for name, member in sorted(vars(module).items()):
        if not name.startswith("_") and callable(member):
            if getattr(member, "__module__", None) == module.__name__:
                yield inspect.getdoc(member) or ""


text = " ".join(doc for name in MODULES for doc in docstrings(name)).lower()
text = "".join(c for c in re.sub(r"\s+", " ", text) if c in ALPHABET)
sentences = [s.strip() + "." for s in text.split(". ") if 20 <= len(s.strip()) < 200]
train, test = train_test_split(sentences, test_size=0.1, random_state=0)
print(
    f"{len(sentences)} sentences ({len(text)} characters) from {len(MODULES)} modules"
)

# %%
# The baseline: an interpolated character n-gram model (orders 0 to 4, with
# add-one smoothing at order 0), a strong classic for character text.
ORDER = 4


class CharNGram:
    def __init__(self, sentences, order, weights=(0.05, 0.1, 0.15, 0.3, 0.4)):
        self.order, self.weights = order, weights
        self.counts = [Counter() for _ in range(order + 1)]
        self.context_counts = [Counter() for _ in range(order + 1)]
        self.alphabet = sorted({c for s in sentences for c in s} | {"$"})
        for sentence in sentences:
            padded = "^" * order + sentence + "$"
            for i in range(order, len(padded)):
                for n in range(order + 1):
                    context = padded[i - n : i]
                    self.counts[n][context, padded[i]] += 1
                    self.context_counts[n][context] += 1

    def probability(self, context, character):
        total = 0.0
        for n, weight in enumerate(self.weights):
            seen = self.context_counts[n][context[len(context) - n :]]
            count = self.counts[n][context[len(context) - n :], character]
            if n == 0:
                total += weight * (count + 1) / (seen + len(self.alphabet))
            elif seen:
                total += weight * count / seen
            else:  # unseen context: fall back on the unigram share
                total += weight / len(self.alphabet)
        return total

    def perplexity(self, sentences):
        log_likelihood, tokens = 0.0, 0
        for sentence in sentences:
            padded = "^" * self.order + sentence + "$"
            for i in range(self.order, len(padded)):
                log_likelihood += np.log(self.probability(padded[:i], padded[i]))
                tokens += 1
        return float(np.exp(-log_likelihood / tokens))


ngram = CharNGram(train, ORDER)

# %%
# The language model: a 2-layer LSTM over 24-dimensional character embeddings,
# with dropout between the layers, stopped early on held-out log-likelihood.
model = RNNLanguageModel(
    cell="lstm",
    hidden_size=64 if quick else 192,
    num_layers=2,
    embedding_dim=24,
    dropout=0.1,
    learning_rate_init=5e-3,
    batch_size=32,
    max_iter=4 if quick else 40,
    early_stopping=True,
    n_iter_no_change=3,
    max_length=60,
    random_state=0,
)
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    model.fit(train)
print(f"fit: {model.n_iter_} epochs in {time.perf_counter() - start:.1f} s")

print("held-out perplexity per character:")
print(f"  RNNLanguageModel   {model.perplexity(test):.2f}")
print(f"  {ORDER}-gram baseline    {ngram.perplexity(test):.2f}")

# %%
# Completions: greedy, beam search (the 3 best of 5 beams) and samples at
# several temperatures (low: safe and repetitive; high: varied, less sensible).
prompts = ["return the ", "if the ", "a list of "]
for prompt, completion in zip(prompts, model.predict(prompts), strict=True):
    print(f"greedy    {prompt!r} -> {completion!r}")
best, scores = model.generate(
    prompts[:1], beam_width=5, n_best=3, length_penalty=0.6, return_scores=True
)
for completion, score in zip(best[0], scores[0], strict=True):
    print(f"beam      {prompts[0]!r} -> {completion!r} (score {score:.2f})")
for temperature in (0.5, 1.0, 1.5):
    sample = model.generate(prompts[:1], temperature=temperature, random_state=0)
    print(f"T={temperature:<4}    {prompts[0]!r} -> {sample[0]!r}")

# %%
# The learning curve: training loss (negative log-likelihood per character)
# and the held-out log-likelihood that early stopping watched.
fig, ax = plt.subplots(figsize=(6, 3.5))
epochs = np.arange(1, model.n_iter_ + 1)
ax.plot(epochs, model.loss_curve_, marker="o", label="training loss")
ax.plot(epochs, -np.array(model.validation_scores_), marker="s", label="held-out NLL")
ax.axhline(np.log(ngram.perplexity(test)), color="gray", ls="--", label="4-gram NLL")
ax.set_xlabel("epoch")
ax.set_ylabel("nats per character")
ax.legend()
fig.tight_layout()
fig.savefig("autocomplete.png", dpi=100)
print("wrote autocomplete.png")
