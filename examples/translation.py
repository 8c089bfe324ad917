"""
Translation with attention: English number words to digits
==========================================================

"seventy nine million ninety three thousand and five" -> "79093005". The
source language is English number words (one token per word), the target
language the decimal digits (one token per character). It is a small but real
translation problem: the output is not a word-for-word substitution (every
"thousand" and "million" becomes a position, zeros appear where no word says
so, "and" is written but never read out), and the sources run from one word
to more than twenty.

An :class:`~rnntools.RNNSeq2Seq` learns it from pairs generated in the script:
a bidirectional LSTM encoder reads the words, and an LSTM decoder writes the
digits while attending to the encoder's outputs (Luong's "general" attention).
The baseline is the same encoder-decoder without attention, which must squeeze
the whole number into the decoder's initial state. We report held-out exact
match and corpus BLEU (over characters) for greedy and beam search, exact
match by length of the number, and plot where the decoder looks: its
attention weights over the source words for each digit it writes.

Run: ``python examples/translation.py [--quick]`` (writes ``translation.png``)
"""

import argparse
import time
import warnings

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning

from rnntools import RNNSeq2Seq
from rnntools.metrics import corpus_bleu

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--quick", action="store_true", help="less data, fewer epochs")
quick = parser.parse_args().quick

# %%
# The data: numbers below a billion, as many of each length (1 to 9 digits),
# spelled out in British English ("one hundred and five"). The test numbers
# are all unseen in training (so few of them are short: training holds most
# of the 100 numbers below 100).
UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ((10**6, "million"), (10**3, "thousand"))


def below_hundred(n):
    tens, units = divmod(n, 10)
    if n < 20:
        return [UNITS[n]]
    return [TENS[tens]] + ([UNITS[units]] if units else [])


def below_thousand(n, and_first):
    hundreds, rest = divmod(n, 100)
    words = [UNITS[hundreds], "hundred"] if hundreds else []
    if rest and (hundreds or and_first):
        words.append("and")
    return words + (below_hundred(rest) if rest else [])


def spell(n):
    """``312`` -> ``["three", "hundred", "and", "twelve"]``."""
    if n == 0:
        return ["zero"]
    words = []
    for scale, name in SCALES:
        count, n = divmod(n, scale)
        if count:
            words += [*below_thousand(count, and_first=False), name]
    return words + (below_thousand(n, and_first=bool(words)) if n else [])


rng = np.random.default_rng(0)
n_train, n_test = (1500, 300) if quick else (4000, 600)


def draw(count):
    digits = rng.integers(1, 10, size=count)
    return rng.integers(np.where(digits == 1, 0, 10 ** (digits - 1)), 10**digits)


train_numbers = draw(n_train).tolist()
seen = set(train_numbers)
test_numbers = [n for n in dict.fromkeys(draw(3 * n_test).tolist()) if n not in seen]
test_numbers = test_numbers[:n_test]
X_train = [spell(n) for n in train_numbers]  # sources: lists of words
y_train = [str(n) for n in train_numbers]  # targets: str, one token per digit
X_test = [spell(n) for n in test_numbers]
y_test = [str(n) for n in test_numbers]
print(f"{n_train} training pairs, {n_test} test pairs, e.g.")
for source, target in zip(X_test[:3], y_test[:3], strict=True):
    print(f"  {' '.join(source)!r} -> {target!r}")
print(
    f"source vocabulary: {len({w for s in X_train for w in s})} words; "
    f"sources of {min(map(len, X_train))} to {max(map(len, X_train))} words"
)

# %%
# Two models, identical except for attention. 12 tokens at most per output
# (9 digits and room for mistakes).
common = dict(
    cell="lstm",
    hidden_size=64,
    embedding_dim=32,
    bidirectional_encoder=True,
    learning_rate_init=5e-3,
    batch_size=32,
    max_iter=8 if quick else 20,
    max_length=12,
    beam_width=5,
    random_state=0,
)
models = {
    "attention": RNNSeq2Seq(attention="general", **common),
    "no attention": RNNSeq2Seq(attention=None, **common),
}
for name, model in models.items():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    print(
        f"fit {name:<13} {model.n_iter_} epochs in {time.perf_counter() - start:5.1f} s"
        f" (final loss {model.loss_curve_[-1]:.4f})"
    )

# %%
# Held-out exact match and corpus BLEU (sacrebleu's, over the digits: a
# number is a sentence of characters), for greedy search (beam width 1) and
# beam search (width 5, what ``predict`` and ``score`` use).


def exact_match(predictions, references):
    return float(
        np.mean([p == r for p, r in zip(predictions, references, strict=True)])
    )


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
# Exact match by length of the number: without attention, long numbers are
# where the fixed-size summary of the source runs out.
lengths = np.array([len(target) for target in y_test])
digit_counts = np.unique(lengths)
by_length = {
    name: [
        exact_match(
            [p for p, n in zip(predictions, lengths, strict=True) if n == digits],
            [t for t, n in zip(y_test, lengths, strict=True) if n == digits],
        )
        for digits in digit_counts
    ]
    for name, predictions in beam_predictions.items()
}
print("\nexact match by digits: " + " ".join(f"{d:>5}" for d in digit_counts))
for name, values in by_length.items():
    print(f"  {name:<20}" + " ".join(f"{v:5.2f}" for v in values))

# %%
# The 3 best translations of the longest test source by beam search, with
# their log-probabilities, and a few mistakes of the attention model.
model = models["attention"]
source = X_test[int(np.argmax([len(s) for s in X_test]))]
best, scores = model.generate([source], n_best=3, return_scores=True)
print(f"\n{' '.join(source)!r}:")
for candidate, score in zip(best[0], scores[0], strict=True):
    print(f"  {candidate:>10}  log-probability {score:.3f}")
mistakes = [
    (" ".join(s), t, p)
    for s, t, p in zip(X_test, y_test, beam_predictions["attention"], strict=True)
    if p != t
]
print(f"{len(mistakes)} mistakes of the attention model, e.g.")
for source_text, target, prediction in mistakes[:3]:
    print(f"  {source_text!r}: {prediction!r} instead of {target!r}")

# %%
# Where the decoder looks: for each digit written (rows), its attention
# weights over the source words (columns), for two correctly translated
# numbers with zeros in them. No word spells out a zero: each is written
# while the decoder looks at the word that implies it (an "and" with no tens
# after "hundred", a "thousand" with no hundreds after it). The alignment is
# sharp and monotonic, sometimes one word early: the bidirectional encoder's
# output at a word also describes its neighbours.
examples = [
    i
    for i, (s, t, p) in enumerate(
        zip(X_test, y_test, beam_predictions["attention"], strict=True)
    )
    if p == t and "0" in t and len(s) >= 9
][:2]
outputs, attention = model.generate(
    [X_test[i] for i in examples], return_attention=True
)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), width_ratios=[1, 1, 0.8])
for ax, i, output, weights in zip(axes, examples, outputs, attention, strict=False):
    ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(X_test[i])), X_test[i], rotation=60, ha="right")
    ax.set_yticks(range(len(output)), list(output))
    ax.set_title(f"attention while writing {output!r}", fontsize=10)
    ax.set_ylabel("digit written")
for (name, values), marker in zip(by_length.items(), "os", strict=True):
    axes[2].plot(digit_counts, values, marker=marker, label=name)
axes[2].set_xlabel("digits in the number")
axes[2].set_ylabel("held-out exact match (beam 5)")
axes[2].set_ylim(0, 1.02)
axes[2].legend()
fig.tight_layout()
fig.savefig("translation.png", dpi=100)
print("wrote translation.png")
