"""
Image captioning: describing handwritten digits
===============================================

An :class:`~rnntools.RNNCaptioner` writes a sentence for each 8x8 image of
scikit-learn's handwritten digits: which digit it is, whether its strokes are
thick or thin, and which way it leans, e.g. "a thin handwritten seven leaning
right" or "the digit seven written in thin strokes , leaning right". The
captions are generated from the images themselves (stroke weight: the ink
against the median image of the same digit; slant: the slope of the rows'
centres of ink), each training image with one of three phrasings drawn at
random, each test image with all three as references, as captioning data
sets give several captions per image.

The image conditions the recurrent decoder in one of the two ways Tanti et
al. (2017) compare: ``conditioning="init"`` (a projection of the pixels is
the decoder's initial state) or ``"merge"`` (the decoder reads the words
only, and a projection of the pixels joins its output before the softmax).
We compare both with a retrieval baseline (the caption of the nearest
training image), by held-out corpus BLEU over words, exact match, and how
often each part of the caption is right, and show a few test images with
their captions.

Run: ``python examples/image_captioning.py [--quick]`` (writes
``image_captioning.png``)
"""

import argparse
import textwrap
import time
import warnings

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors

from rnntools import RNNCaptioner
from rnntools.metrics import corpus_bleu

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--quick", action="store_true", help="fewer epochs")
quick = parser.parse_args().quick
rng = np.random.default_rng(0)

# %%
# The attributes of each image. Both are relative to the images of the same
# digit, so each is true of half of every digit's images.
digits = load_digits()
images = digits.images / 16  # (n, 8, 8) in [0, 1]
labels = digits.target
ink = images.sum(axis=(1, 2))
row_ink = images.sum(axis=2)  # (n, 8)
row_centres = (images * np.arange(8)).sum(axis=2) / np.maximum(row_ink, 1e-9)
# Slope of the centre of ink against the row, rows weighted by their ink;
# negative: the top is further right than the bottom.
slopes = np.array(
    [
        np.polyfit(np.arange(8), centres, 1, w=np.sqrt(weights))[0]
        for centres, weights in zip(row_centres, row_ink, strict=True)
    ]
)
thick = np.zeros(len(images), dtype=bool)
leans_right = np.zeros(len(images), dtype=bool)
for digit in range(10):
    same = labels == digit
    thick[same] = ink[same] > np.median(ink[same])
    leans_right[same] = slopes[same] < np.median(slopes[same])

# %%
# The captions: three phrasings of the same three facts, 6 to 10 words.
NAMES = "zero one two three four five six seven eight nine".split()
TEMPLATES = [
    "a {weight} handwritten {digit} leaning {side}",
    "the digit {digit} written in {weight} strokes , leaning {side}",
    "a {digit} that leans {side} , in {weight} strokes",
]


def facts(i):
    return {
        "digit": NAMES[labels[i]],
        "weight": "thick" if thick[i] else "thin",
        "side": "right" if leans_right[i] else "left",
    }


def captions(i):
    return [template.format(**facts(i)).split() for template in TEMPLATES]


X = images.reshape(len(images), -1)  # (n, 64) pixels
train, test = train_test_split(
    np.arange(len(X)), test_size=0.25, stratify=labels, random_state=0
)
y_train = [captions(i)[rng.integers(len(TEMPLATES))] for i in train]
references = [captions(i) for i in test]  # 3 references per test image
print(f"{len(train)} training images, {len(test)} test images, e.g.")
for caption in y_train[:3]:
    print("  " + " ".join(caption))

# %%
# The two conditionings, same decoder (an LSTM over 32-dimensional word
# embeddings, dropout on its output), and the retrieval baseline. Beam search
# of width 3 writes the captions.
models = {
    conditioning: RNNCaptioner(
        cell="lstm",
        hidden_size=64,
        embedding_dim=32,
        conditioning=conditioning,
        dropout=0.3,
        learning_rate_init=5e-3,
        max_iter=30 if quick else 100,
        max_length=12,
        beam_width=3,
        random_state=0,
    )
    for conditioning in ("init", "merge")
}
predictions, fit_seconds = {}, {}
for conditioning, model in models.items():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[train], y_train)
    fit_seconds[conditioning] = time.perf_counter() - start
    predictions[conditioning] = model.predict(X[test])
nearest = NearestNeighbors(n_neighbors=1).fit(X[train])
neighbours = nearest.kneighbors(X[test], return_distance=False)[:, 0]
predictions["nearest image"] = [y_train[j] for j in neighbours]

# %%
# Held-out scores: corpus BLEU against the three references (what ``score``
# computes), exact match (the caption is one of the references), and how
# often the caption states each fact rightly.


def states(caption, i):
    return [word in caption for word in facts(i).values()]


print(
    f"\n{'held-out':<15}{'fit':>7}{'params':>8}{'BLEU':>7}{'exact':>7}"
    f"{'digit':>7}{'weight':>8}{'slant':>7}"
)
for name, captions_written in predictions.items():
    exact = np.mean([c in r for c, r in zip(captions_written, references, strict=True)])
    right = np.mean(
        [states(c, i) for c, i in zip(captions_written, test, strict=True)], axis=0
    )
    fit, size = "-", "-"
    if name in models:
        fit = f"{fit_seconds[name]:.1f}s"
        size = sum(p.size for p in models[name].params_.values())
    print(
        f"{name:<15}{fit:>7}{size:>8}"
        f"{corpus_bleu(references, captions_written):7.1f}{exact:7.3f}"
        + "".join(f"{v:{w}.3f}" for v, w in zip(right, (7, 8, 7), strict=True))
    )
print(f"score() of init (BLEU): {models['init'].score(X[test], references):.1f}")

# %%
# The 2 best captions of one test image by beam search, with their
# log-probabilities.
best, scores = models["init"].generate(X[test[:1]], n_best=2, return_scores=True)
for caption, score in zip(best[0], scores[0], strict=True):
    print(f"  {' '.join(caption)!r}: log-probability {score:.3f}")

# %%
# A few test images with their facts and the captions of both models.
shown = test[:10]
fig, axes = plt.subplots(2, 5, figsize=(13, 8))
for ax, position, i in zip(axes.flat, range(len(shown)), shown, strict=True):
    ax.imshow(images[i], cmap="gray_r")
    ax.set_axis_off()
    truth = ", ".join(facts(i).values())
    lines = [f"(truth: {truth})"] + [
        textwrap.fill(f"{name}: {' '.join(predictions[name][position])}", 32)
        for name in models
    ]
    ax.set_title("\n".join(lines), fontsize=8, loc="left")
fig.tight_layout()
fig.savefig("image_captioning.png", dpi=100)
print("wrote image_captioning.png")
