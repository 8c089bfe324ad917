"""Benchmarks of sequence generation: greedy and beam-search decoding of the
three generating estimators, on fixed, seeded data.

Every ``setup`` fits the estimator for one epoch (the decoding speed does not
depend on how well it learned) and decodes once, which compiles the kernels,
so no timed call compiles. Decoding always writes ``STEPS`` tokens
(``min_length = max_length``), so the work does not depend on the weights.
Tiny with ``RNNTOOLS_BENCH_SMOKE=1``. ``compare_torch_lm.py`` and
``compare_torch_seq2seq.py`` time the same kinds of calls against PyTorch.
"""

import warnings

import numpy as np

from .common import CELLS, SMOKE, Benchmark

if SMOKE:
    PROBLEM = {"pairs": 24, "inputs": 6, "steps": 4, "hidden_size": 8}
else:
    PROBLEM = {"pairs": 1000, "inputs": 500, "steps": 30, "hidden_size": 64}

WORDS = "the of and to in is was that for on with as by at from".split()
BEAM_WIDTH = 5


def _fitted(estimator, *data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch does not converge
        return estimator.fit(*data)


def _texts(count, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(3, 8))) for _ in range(count)]


class _Decoding(Benchmark):
    """Decoding of ``self.model`` on ``self.inputs``; each suite times
    ``greedy`` and ``beam`` (the base class has no benchmark of its own)."""

    param_names = ("cell",)
    params = (CELLS,)

    def greedy(self):
        self._decode(1)

    def beam(self):
        self._decode(BEAM_WIDTH)

    def _decode(self, beam_width):
        steps = PROBLEM["steps"]
        self.model.generate(
            self.inputs, beam_width=beam_width, max_length=steps, min_length=steps
        )

    def _warm_up(self):
        self.greedy()
        self.beam()


class LanguageModelDecodingSuite(_Decoding):
    """``RNNLanguageModel`` (characters, embedding 32): completions of prompts."""

    def setup(self, cell):
        from rnntools import RNNLanguageModel

        model = RNNLanguageModel(
            cell=cell, hidden_size=PROBLEM["hidden_size"], embedding_dim=32,
            max_iter=1, random_state=0,
        )  # fmt: skip
        self.model = _fitted(model, _texts(PROBLEM["pairs"], seed=0))
        self.inputs = [text[:8] for text in _texts(PROBLEM["inputs"], seed=1)]
        self._warm_up()

    def time_greedy(self, cell):
        self.greedy()

    def time_beam(self, cell):
        self.beam()


class TranslationDecodingSuite(_Decoding):
    """``RNNSeq2Seq`` (bidirectional encoder, "general" attention): each
    sentence written backwards, word by word."""

    def setup(self, cell):
        from rnntools import RNNSeq2Seq

        sources = [text.split() for text in _texts(PROBLEM["pairs"], seed=2)]
        model = RNNSeq2Seq(
            cell=cell, hidden_size=PROBLEM["hidden_size"], embedding_dim=32,
            max_iter=1, random_state=0,
        )  # fmt: skip
        self.model = _fitted(model, sources, [source[::-1] for source in sources])
        self.inputs = [text.split() for text in _texts(PROBLEM["inputs"], seed=3)]
        self._warm_up()

    def time_greedy(self, cell):
        self.greedy()

    def time_beam(self, cell):
        self.beam()


class CaptioningDecodingSuite(_Decoding):
    """``RNNCaptioner`` ("init" conditioning) on 64 features per input."""

    def setup(self, cell):
        from rnntools import RNNCaptioner

        rng = np.random.default_rng(4)
        features = rng.standard_normal((PROBLEM["pairs"], 64)).astype(np.float32)
        captions = [text.split() for text in _texts(PROBLEM["pairs"], seed=5)]
        model = RNNCaptioner(
            cell=cell, hidden_size=PROBLEM["hidden_size"], embedding_dim=32,
            max_iter=1, random_state=0,
        )  # fmt: skip
        self.model = _fitted(model, features, captions)
        self.inputs = rng.standard_normal((PROBLEM["inputs"], 64)).astype(np.float32)
        self._warm_up()

    def time_greedy(self, cell):
        self.greedy()

    def time_beam(self, cell):
        self.beam()
