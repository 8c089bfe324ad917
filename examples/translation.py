"""
Translation with attention: dates in seven languages to ISO 8601
================================================================

"quinta-feira, 5 de março de 2015" -> "2015-03-05". The sources are dates
written out by `Babel <https://babel.pocoo.org>`_ from the Unicode CLDR's
locale data, in English, French, German, Spanish, Italian, Portuguese and
Dutch, in CLDR's "full", "long" and "medium" formats ("Thursday, March 5,
2015", "5. März 2015", "5 de mar. de 2015", "05.03.2015"); the targets are
the same dates in ISO 8601. Both are read and written one character at a
time. The model must learn the month names of seven languages and their
abbreviations (with and without a full stop, "sept." and "set", "mrt" and
"mei"), each language's order of day, month and year, skip the weekday
names, and reorder the digits: the year comes last in every source and first
in the target.

An :class:`~rnntools.RNNSeq2Seq` learns it: a bidirectional LSTM encoder
reads the characters, and an LSTM decoder writes the date while attending to
the encoder's outputs (Luong's "general" attention). The baseline is the
same encoder-decoder without attention, which must squeeze the whole source
into the decoder's initial state; it learns much more slowly, and is given
five times as many epochs. Every test date is absent from training. We
report held-out exact match after each epoch, exact match and corpus BLEU
(over characters) for greedy and beam search, exact match by language and
which part of the date is wrong, and plot where the decoder looks: its
attention weights over the source characters for each character it writes.

Run: ``python examples/translation.py [--quick]`` (writes ``translation.png``;
needs ``babel``, in the ``examples`` extra)
"""

import argparse
import datetime
import time

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from babel.dates import format_date

from rnntools import RNNSeq2Seq
from rnntools.metrics import corpus_bleu

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--quick", action="store_true", help="less data, fewer epochs")
quick = parser.parse_args().quick

# %%
# The data: days between 1900 and 2099, each written in one language and one
# format drawn at random. The days are split first, so no test date is in
# the training set, in any language or format.
LANGUAGES = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
}
FORMATS = ("full", "long", "medium")
rng = np.random.default_rng(0)
n_train, n_test = (1500, 300) if quick else (4000, 1000)
first = datetime.date(1900, 1, 1)
n_days = (datetime.date(2099, 12, 31) - first).days + 1
days = rng.permutation(n_days)[: n_train + n_test]
dates = [first + datetime.timedelta(days=int(day)) for day in days]


def write_out(dates):
    """Each date in a random locale and format: ``(sources, targets, locales)``."""
    locales = rng.choice(list(LANGUAGES), size=len(dates)).tolist()
    formats = rng.choice(FORMATS, size=len(dates)).tolist()
    sources = [
        format_date(date, format=fmt, locale=locale)
        for date, fmt, locale in zip(dates, formats, locales, strict=True)
    ]
    return sources, [date.isoformat() for date in dates], locales


X_train, y_train, _ = write_out(dates[:n_train])  # str: one token per character
X_test, y_test, test_locales = write_out(dates[n_train:])
print(f"{n_train} training pairs, {n_test} test pairs (unseen dates), e.g.")
for source, target in zip(X_test[:6], y_test[:6], strict=True):
    print(f"  {source!r:>36} -> {target!r}")
print(
    f"source alphabet: {len(set(''.join(X_train)))} characters; sources of "
    f"{min(map(len, X_train))} to {max(map(len, X_train))} characters"
)

# %%
# Two models, identical except for attention, trained one epoch at a time
# (``partial_fit``) with the held-out exact match (greedy) after each epoch.
# The model with attention learns the task in a few epochs; the one without
# needs several times more, so it gets five times as many (each of its
# epochs is also cheaper). Every output is 10 characters; 12 at most leaves
# room for mistakes.
common = dict(
    cell="lstm",
    hidden_size=64,
    embedding_dim=32,
    bidirectional_encoder=True,
    learning_rate_init=5e-3,
    batch_size=32,
    max_length=12,
    beam_width=5,
    random_state=0,
)
models = {
    "attention": RNNSeq2Seq(attention="general", **common),
    "no attention": RNNSeq2Seq(attention=None, **common),
}
epochs = {"attention": 4 if quick else 6, "no attention": 10 if quick else 30}


def exact_match(predictions, references):
    return float(
        np.mean([p == r for p, r in zip(predictions, references, strict=True)])
    )


curves = {}
for name, model in models.items():
    fit_seconds, curves[name] = 0.0, []
    for _ in range(epochs[name]):
        start = time.perf_counter()
        model.partial_fit(X_train, y_train)
        fit_seconds += time.perf_counter() - start
        curves[name].append(exact_match(model.generate(X_test, beam_width=1), y_test))
    print(
        f"fit {name:<13} {epochs[name]:>2} epochs in {fit_seconds:5.1f} s"
        f" (final loss {model.loss_curve_[-1]:.4f})"
    )
print("held-out exact match (greedy) after each epoch:")
for name, curve in curves.items():
    print(f"  {name:<13}" + " ".join(f"{v:.2f}" for v in curve))

# %%
# Held-out exact match and corpus BLEU (sacrebleu's, over the characters: a
# date is a sentence of characters), for greedy search (beam width 1) and
# beam search (width 5, what ``predict`` and ``score`` use).


def bleu(predictions, references):
    return corpus_bleu([list(r) for r in references], [list(p) for p in predictions])


print(f"\n{'held-out':<24}{'exact match':>12}{'BLEU':>8}")
beam_predictions = {}
for name, model in models.items():
    for search, width in (("greedy", 1), ("beam 5", 5)):
        start = time.perf_counter()
        predictions = model.generate(X_test, beam_width=width)
        seconds = time.perf_counter() - start
        print(
            f"{name + ', ' + search:<24}{exact_match(predictions, y_test):>12.3f}"
            f"{bleu(predictions, y_test):>8.1f}   ({seconds:.2f} s)"
        )
    beam_predictions[name] = predictions
print(f"score() (BLEU, beam 5): {models['attention'].score(X_test, y_test):.1f}")

# %%
# Exact match by language (beam search), and which parts of the dates each
# model gets wrong.
by_language = {
    name: [
        exact_match(
            [
                p
                for p, loc in zip(predictions, test_locales, strict=True)
                if loc == code
            ],
            [t for t, loc in zip(y_test, test_locales, strict=True) if loc == code],
        )
        for code in LANGUAGES
    ]
    for name, predictions in beam_predictions.items()
}
print("\nexact match by language: " + " ".join(f"{c:>5}" for c in LANGUAGES))
for name, values in by_language.items():
    print(f"  {name:<23}" + " ".join(f"{v:5.2f}" for v in values))
PARTS = {"year": slice(0, 4), "month": slice(5, 7), "day": slice(8, 10)}
for name, predictions in beam_predictions.items():
    pairs = list(zip(predictions, y_test, strict=True))
    wrong = {part: sum(p[at] != t[at] for p, t in pairs) for part, at in PARTS.items()}
    mistakes = [(x, p, t) for x, (p, t) in zip(X_test, pairs, strict=True) if p != t]
    print(
        f"{name}: {len(mistakes)} of {n_test} dates wrong ("
        + ", ".join(f"{part} {count}" for part, count in wrong.items())
        + ")"
    )
    for source, prediction, target in mistakes[:2]:
        print(f"  {source!r}: {prediction!r} instead of {target!r}")

# %%
# The 3 best translations of the longest test source by beam search, with
# their log-probabilities.
model = models["attention"]
source = max(X_test, key=len)
best, scores = model.generate([source], n_best=3, return_scores=True)
print(f"\n{source!r}:")
for candidate, score in zip(best[0], scores[0], strict=True):
    print(f"  {candidate}  log-probability {score:.3f}")

# %%
# Where the decoder looks: for each character written (rows), its attention
# weights over the source characters (columns), for the longest correctly
# translated test sources of three languages. The year is copied digit by
# digit from the end of the source, the day from the day's digits, the month
# is read off the letters that tell the month names apart, the hyphens are
# written while looking at the gaps around the day, and the weekday gets
# almost no weight. Next to them, the held-out exact match after each epoch
# and by language.
shown, shown_locales = [], set()
for i in np.argsort([-len(s) for s in X_test], kind="stable"):
    correct = beam_predictions["attention"][i] == y_test[i]
    if correct and test_locales[i] not in shown_locales:
        shown.append(int(i))
        shown_locales.add(test_locales[i])
    if len(shown) == 3:
        break
outputs, attention = model.generate([X_test[i] for i in shown], return_attention=True)
fig = plt.figure(figsize=(14, 9))
grid = fig.add_gridspec(3, 2, width_ratios=[2.6, 1])
for row, i, output, weights in zip(range(3), shown, outputs, attention, strict=False):
    ax = fig.add_subplot(grid[row, 0])
    ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(X_test[i])), ["␣" if c == " " else c for c in X_test[i]])
    ax.set_yticks(range(len(output)), list(output))
    ax.set_title(f"{LANGUAGES[test_locales[i]]}: {X_test[i]!r} -> {output!r}")
    ax.set_ylabel("written")
ax = fig.add_subplot(grid[0, 1])
for (name, curve), marker in zip(curves.items(), "os", strict=True):
    ax.plot(range(1, len(curve) + 1), curve, marker=marker, label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("held-out exact match (greedy)")
ax.set_ylim(-0.02, 1.02)
ax.legend()
ax = fig.add_subplot(grid[1:, 1])
positions = np.arange(len(LANGUAGES))
for offset, (name, values) in zip((-0.2, 0.2), by_language.items(), strict=True):
    ax.barh(positions + offset, values, height=0.4, label=name)
ax.set_yticks(positions, list(LANGUAGES.values()))
ax.invert_yaxis()
ax.set_xlim(0, 1)
ax.set_xlabel("held-out exact match by language (beam 5)")
fig.tight_layout()
fig.savefig("translation.png", dpi=100)
print("wrote translation.png")
