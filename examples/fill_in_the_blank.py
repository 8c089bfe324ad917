"""
Fill in the blank with a bidirectional RNN
==========================================

"I am ___ hungry": the missing word is often given away only by what comes
*after* it ("... so I will eat" or "... so I will wait"). A unidirectional
RNN reading left to right has not seen that yet when it reaches the blank; a
bidirectional one also reads the sentence right to left, so it has.

We generate simple sentences from two templates, replace one word of each
with a blank symbol, and train two :class:`~rnntools.RNNTagger` models, one
unidirectional and one bidirectional, to output the original word at every
step (ragged sequences: the sentences have 5 or 8 words). Accuracy is
measured at the blanks only, and broken down by where the missing word's
clue lies: to its left, to its right, nowhere (a word drawn at random), or a
word that is always the same.

Run: ``python examples/fill_in_the_blank.py [--quick]``
(writes ``fill_in_the_blank.png``)
"""

import argparse
import warnings

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning

from rnntools import RNNTagger

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--quick", action="store_true", help="less data, fewer epochs")
quick = parser.parse_args().quick
rng = np.random.default_rng(0)

# %%
# Two templates. Each word comes with where its clue lies.
SOUNDS = {"dog": "barks", "cat": "meows", "cow": "moos", "bird": "sings"}
SOUNDS |= {"duck": "quacks", "lion": "roars", "owl": "hoots", "horse": "neighs"}
ADJECTIVES = ["big", "small", "old", "young", "happy", "sleepy"]
ADVERBS = ["loudly", "softly", "today", "again", "outside"]
BE = {"i": "am", "you": "are", "we": "are", "they": "are", "he": "is", "she": "is"}
ACTIONS = {
    ("very", "hungry"): "eat",
    ("very", "tired"): "sleep",
    ("very", "cold"): "shiver",
    ("not", "hungry"): "wait",
    ("not", "tired"): "work",
    ("not", "cold"): "swim",
}


def animal_sentence():
    """the big dog barks loudly"""
    animal = rng.choice(list(SOUNDS))
    words = ["the", rng.choice(ADJECTIVES), animal, SOUNDS[animal]]
    words.append(rng.choice(ADVERBS))
    return words, ["fixed", "random", "right", "left", "random"]


def feeling_sentence():
    """i am very hungry so i will eat"""
    pronoun = rng.choice(list(BE))
    intensity, feeling = list(ACTIONS)[rng.integers(len(ACTIONS))]
    action = ACTIONS[intensity, feeling]
    words = [pronoun, BE[pronoun], intensity, feeling, "so", pronoun, "will", action]
    clues = ["right", "left", "right", "right", "fixed", "left", "fixed", "left"]
    return words, clues


BLANK = "___"
VOCABULARY = sorted(
    {BLANK, "the", "so", "will", *SOUNDS, *SOUNDS.values(), *ADJECTIVES, *ADVERBS}
    | {*BE, *BE.values(), "very", "not", *(f for _, f in ACTIONS), *ACTIONS.values()}
)
index = {word: i for i, word in enumerate(VOCABULARY)}


def make_data(n):
    """n sentences, one word of each blanked out."""
    X, y, blanks, clues = [], [], [], []
    for _ in range(n):
        words, clue = animal_sentence() if rng.random() < 0.5 else feeling_sentence()
        blank = rng.integers(len(words))
        x = np.zeros((len(words), len(VOCABULARY)), dtype=np.float32)
        x[np.arange(len(words)), [index[w] for w in words]] = 1.0
        x[blank] = 0.0
        x[blank, index[BLANK]] = 1.0
        X.append(x)
        y.append(np.array(words))  # the label at every step: the original word
        blanks.append(blank)
        clues.append(clue[blank])
    return X, y, np.array(blanks), np.array(clues)


X_train, y_train, _, _ = make_data(2000 if quick else 6000)
X_test, y_test, test_blanks, test_clues = make_data(1000 if quick else 2000)
print(f"{len(X_train)} training and {len(X_test)} test sentences")

# %%
# Two taggers, identical but for ``bidirectional``.
predictions = {}
for name, bidirectional in [("unidirectional", False), ("bidirectional", True)]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNTagger(
            cell="gru",
            hidden_size=32,
            bidirectional=bidirectional,
            learning_rate_init=1e-2,
            max_iter=12 if quick else 30,
            random_state=0,
        ).fit(X_train, y_train)
    per_step = model.predict(X_test)  # a list: one array of words per sentence
    predictions[name] = np.array(
        [p[b] for p, b in zip(per_step, test_blanks, strict=True)]
    )

truth = np.array([words[b] for words, b in zip(y_test, test_blanks, strict=True)])
groups = ["left", "right", "random", "fixed"]
accuracy = {
    name: {
        "all": np.mean(guess == truth),
        **{
            g: np.mean(guess[test_clues == g] == truth[test_clues == g]) for g in groups
        },
    }
    for name, guess in predictions.items()
}
print(f"{'accuracy at the blanks':24s}" + "".join(f"{g:>9s}" for g in ["all", *groups]))
for name, scores in accuracy.items():
    print(f"{name:24s}" + "".join(f"{scores[g]:9.3f}" for g in ["all", *groups]))

# %%
# A few filled-in test sentences, whose clue lies right of the blank.
print()
for i in np.flatnonzero(test_clues == "right")[:8]:
    words = list(y_test[i])
    words[test_blanks[i]] = BLANK
    print(
        f"{' '.join(words):40s} unidirectional: {predictions['unidirectional'][i]:7s}"
        f" bidirectional: {predictions['bidirectional'][i]}"
    )

# %%
# Bar plot of the accuracies, overall and by where the clue is.
fig, ax = plt.subplots(figsize=(7, 4))
labels = ["all", *groups]
positions = np.arange(len(labels))
for offset, name in [(-0.2, "unidirectional"), (0.2, "bidirectional")]:
    bars = ax.bar(
        positions + offset, [accuracy[name][g] for g in labels], width=0.4, label=name
    )
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
ax.set_xticks(positions, ["all blanks", *(f"clue: {g}" for g in groups)])
ax.set(ylabel="accuracy at the blank", ylim=(0, 1.25), title="Fill in the blank")
ax.legend(loc="upper center", ncol=2)
fig.tight_layout()
fig.savefig("fill_in_the_blank.png", dpi=100)
print("wrote fill_in_the_blank.png")
