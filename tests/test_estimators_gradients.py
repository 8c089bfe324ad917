"""The estimators' training gradients are the derivatives of their losses.

Every estimator trains through one seam,
``loss, grads, total_weight = est._loss_and_grads(X, lengths, targets,
weights, class_weights, params)``, whose loss is the weighted mean data loss
plus ``alpha / 2 * sum ||W||^2 / total_weight`` over the parameters whose key
contains ``"weight"``. The arguments are captured from a real one-epoch,
one-minibatch ``fit`` (``dtype="float64"``, a spy on the seam), so that they
are prepared exactly as training prepares them (padding, label encoding,
``class_weight``, sample weights with a zero among them); the parameters are
the fitted ``params_``.

* The gradient of the whole loss with respect to every parameter array is
  checked in float64 against central differences of the loss itself, for one
  random unit direction per array (JAX's check: ``<grad, v>`` against
  ``(L(p + h v) - L(p - h v)) / 2h``), on problems drawn by hypothesis:
  cell, layers, directions, sizes, a ragged batch, ``alpha`` (0 or not),
  ``class_weight`` and a seed. The loss value is checked too: its total
  weight, and its penalty term against ``alpha`` set to 0.
* :class:`~rnntools.estimators.language_model.RNNLanguageModel`'s loss and
  gradients equal those of ``nn.Embedding`` + ``nn.LSTM/GRU/RNN`` +
  ``nn.Linear`` in PyTorch, with the same weights and a masked, weighted
  cross-entropy.
"""

from dataclasses import replace

import numpy as np
import pytest
from helpers import scaled_error
from hypothesis import example, given
from sklearn.exceptions import ConvergenceWarning
from strategies import EstimatorProblem, estimator_problems

from rnntools import RNNClassifier, RNNRegressor, RNNTagger
from rnntools.estimators.language_model import RNNLanguageModel

pytestmark = pytest.mark.filterwarnings(
    f"ignore::{ConvergenceWarning.__module__}.{ConvergenceWarning.__name__}"
)

# Central differences with step h err by h**2 * |L'''| / 6 ~ 1e-12 * |L'''|
# (truncation) plus ~u * |L| / h ~ 1e-10 * |L| (rounding of the two loss
# values, u = 1.1e-16). The check allows FD_RTOL of the array's gradient norm
# (truncation, with a wide margin) plus FD_ROUNDING * max(|L|, 1): the rounding
# term with a margin of 100 for the many terms each loss value sums. A wrong
# term is off by a sizeable fraction of <grad, v>, which for a random unit v
# is ~||grad|| / sqrt(size) >= 1e-2 * ||grad|| here: halving the L2 gradient,
# a regression gradient k times too large or a gradient that ignores the
# sample weights is orders of magnitude over the tolerance. Measured with the
# "thorough" profile (200 problems per estimator): at most 0.016 of it.
FD_STEP = 1e-6
FD_RTOL = 1e-6
FD_ROUNDING = 1e-8
# Loss values computed two ways (the penalty, the total weight) agree to
# rounding: a few u per term over at most a few hundred terms.
VALUE_RTOL = 1e-12
ALPHABET = "abc"


# ------------------------------------------------------------------ helpers
def captured_arguments(estimator, X, y=None, sample_weight=None):
    """Fit ``estimator`` for one epoch and record the arguments of its seam.

    Returns
    -------
    arguments : tuple
        ``(X, lengths, targets, weights, class_weights)`` of the only minibatch.
    params : dict of str to ndarray
        Copies of the fitted ``params_``.
    """
    calls = []
    seam = estimator._loss_and_grads

    def spy(*arguments):
        calls.append(arguments[:5])
        return seam(*arguments)

    estimator._loss_and_grads = spy
    try:
        if y is None:
            estimator.fit(X, sample_weight=sample_weight)
        else:
            estimator.fit(X, y, sample_weight=sample_weight)
    finally:
        del estimator._loss_and_grads
    assert len(calls) == 1, "the data set must be one minibatch"
    params = {key: value.copy() for key, value in estimator.params_.items()}
    assert all(value.dtype == np.float64 for value in params.values())
    return calls[0], params


def check_loss_and_gradients(estimator, arguments, params, total_weight, seed):
    """Assert the seam's loss value and its gradient against central differences.

    Parameters
    ----------
    estimator : fitted estimator
    arguments : tuple
        From :func:`captured_arguments`.
    params : dict of str to ndarray
        The point where the gradient is checked.
    total_weight : float
        The summed weight of the minibatch's items, computed by the test.
    seed : int
        Seed of the random directions.
    """
    loss, grads, returned_weight = estimator._loss_and_grads(*arguments, params)
    assert returned_weight == pytest.approx(total_weight, rel=VALUE_RTOL)
    assert grads.keys() == params.keys()

    alpha = estimator.alpha
    estimator.alpha = 0.0
    try:
        data_loss, _, _ = estimator._loss_and_grads(*arguments, params)
    finally:
        estimator.alpha = alpha
    penalty = sum(np.sum(value**2) for key, value in params.items() if "weight" in key)
    expected_loss = data_loss + alpha / 2 * penalty / total_weight
    assert loss == pytest.approx(expected_loss, rel=VALUE_RTOL)

    def loss_at(key, value):
        return estimator._loss_and_grads(*arguments, {**params, key: value})[0]

    rng = np.random.default_rng([seed, 1])
    errors = []
    for key, value in params.items():
        gradient = grads[key]
        assert gradient.shape == value.shape, key
        direction = rng.standard_normal(value.shape)
        direction /= np.linalg.norm(direction)
        step = FD_STEP * direction
        numerical = (loss_at(key, value + step) - loss_at(key, value - step)) / (
            2 * FD_STEP
        )
        expected = np.vdot(gradient, direction)
        tolerance = FD_RTOL * np.linalg.norm(gradient) + FD_ROUNDING * max(
            abs(loss), 1.0
        )
        if not abs(numerical - expected) <= tolerance:
            errors.append(
                f"{key}: <grad, v> = {expected!r}, finite difference {numerical!r}"
            )
    assert not errors, "\n".join(errors)


def network_kwargs(problem):
    """Constructor arguments shared by every estimator of the tests."""
    return {
        "cell": problem.cell,
        "hidden_size": problem.hidden_size,
        "num_layers": problem.num_layers,
        "alpha": problem.alpha,
        "max_iter": 1,
        "random_state": problem.seed,
        "dtype": "float64",
    }


def sequences_and_weights(problem, rng):
    """Standard normal ``(T_i, F)`` sequences and sample weights with a zero."""
    X = [
        rng.standard_normal((length, problem.n_features)) for length in problem.lengths
    ]
    weights = rng.uniform(0.5, 2.0, len(problem.lengths))
    weights[problem.zero_weight_index] = 0.0
    return X, weights


def class_weight_of(problem, labels, rng):
    """The ``class_weight`` parameter the problem asks for."""
    if problem.class_weight != "dict":
        return problem.class_weight
    return {
        int(label): float(rng.uniform(0.2, 3.0))
        for label in np.unique(labels)
        if rng.random() < 0.7
    }


def item_weight(weights, class_weights, labels):
    """Sample weight times class weight of every item (sequence or step)."""
    if class_weights is None:
        return weights
    return weights * class_weights[labels]


# ------------------------------------------------- finite-difference checks
LABEL_EXAMPLE = EstimatorProblem(
    cell="lstm",
    num_layers=2,
    bidirectional=True,
    hidden_size=3,
    n_features=2,
    lengths=(4, 2, 3),
    n_outputs=3,
    alpha=0.5,
    class_weight="dict",
    zero_weight_index=1,
    seed=0,
)
REGRESSION_EXAMPLE = EstimatorProblem(
    cell="gru",
    num_layers=2,
    bidirectional=True,
    hidden_size=2,
    n_features=3,
    lengths=(3, 1, 2, 3),
    n_outputs=3,
    alpha=1.0,
    class_weight=None,
    zero_weight_index=0,
    seed=1,
)


@given(
    problem=estimator_problems(
        class_weights=(None, "balanced", "dict"), min_outputs=2, max_outputs=3
    )
)
@example(problem=LABEL_EXAMPLE)
def test_classifier_gradients_match_finite_differences(problem):
    """One label per sequence; each weighs its sample weight times class weight."""
    rng = np.random.default_rng(problem.seed)
    X, weights = sequences_and_weights(problem, rng)
    y = rng.integers(0, problem.n_outputs, len(X))
    y[:2] = (0, 1)
    estimator = RNNClassifier(
        bidirectional=problem.bidirectional,
        class_weight=class_weight_of(problem, y, rng),
        **network_kwargs(problem),
    )
    arguments, params = captured_arguments(estimator, X, y, weights)
    _, _, targets, batch_weights, class_weights = arguments
    total_weight = item_weight(batch_weights, class_weights, targets).sum()
    check_loss_and_gradients(estimator, arguments, params, total_weight, problem.seed)


def check_regressor(problem, y_ndim):
    """The finite-difference check of an :class:`RNNRegressor` problem."""
    rng = np.random.default_rng(problem.seed)
    X, weights = sequences_and_weights(problem, rng)
    y = rng.standard_normal((len(X), problem.n_outputs))
    if y_ndim == 1:
        y = y[:, 0]
    estimator = RNNRegressor(
        bidirectional=problem.bidirectional, **network_kwargs(problem)
    )
    arguments, params = captured_arguments(estimator, X, y, weights)
    assert arguments[2].shape == (len(X), problem.n_outputs)
    check_loss_and_gradients(
        estimator, arguments, params, arguments[3].sum(), problem.seed
    )


@given(problem=estimator_problems(min_outputs=1, max_outputs=1))
@example(problem=replace(REGRESSION_EXAMPLE, n_outputs=1))
def test_regressor_1d_gradients_match_finite_differences(problem):
    """A 1-D ``y``: one target per sequence."""
    check_regressor(problem, y_ndim=1)


@given(problem=estimator_problems(min_outputs=2, max_outputs=4))
@example(problem=REGRESSION_EXAMPLE)
def test_regressor_2d_gradients_match_finite_differences(problem):
    """k >= 2 targets: the loss is the mean over them, and so is the gradient."""
    check_regressor(problem, y_ndim=2)


@given(
    problem=estimator_problems(
        class_weights=(None, "balanced", "dict"), min_outputs=2, max_outputs=3
    )
)
@example(problem=LABEL_EXAMPLE)
def test_tagger_gradients_match_finite_differences(problem):
    """One label per step; each weighs its sequence's weight times class weight."""
    rng = np.random.default_rng(problem.seed)
    X, weights = sequences_and_weights(problem, rng)
    y = [rng.integers(0, problem.n_outputs, len(sequence)) for sequence in X]
    y[0][:2] = (0, 1)
    estimator = RNNTagger(
        bidirectional=problem.bidirectional,
        class_weight=class_weight_of(problem, np.concatenate(y), rng),
        **network_kwargs(problem),
    )
    arguments, params = captured_arguments(estimator, X, y, weights)
    _, _, targets, batch_weights, class_weights = arguments
    total_weight = sum(
        item_weight(np.full(len(labels), weight), class_weights, labels).sum()
        for labels, weight in zip(targets, batch_weights, strict=True)
    )
    check_loss_and_gradients(estimator, arguments, params, total_weight, problem.seed)


def language_model_data(problem, rng):
    """``str`` sequences over the first ``n_outputs`` letters, and sample weights."""
    letters = list(ALPHABET[: problem.n_outputs])
    X = ["".join(rng.choice(letters, size=length)) for length in problem.lengths]
    weights = rng.uniform(0.5, 2.0, len(X))
    weights[problem.zero_weight_index] = 0.0
    return X, weights


@given(problem=estimator_problems(bidirectional=False, max_outputs=len(ALPHABET)))
@example(problem=replace(LABEL_EXAMPLE, bidirectional=False, class_weight=None))
def test_language_model_gradients_match_finite_differences(problem):
    """Every token of a sequence, ``<eos>`` included, weighs its sample weight."""
    rng = np.random.default_rng(problem.seed)
    X, weights = language_model_data(problem, rng)
    estimator = RNNLanguageModel(
        embedding_dim=problem.n_features, dropout=0.0, **network_kwargs(problem)
    )
    arguments, params = captured_arguments(estimator, X, sample_weight=weights)
    _, lengths, _, batch_weights, class_weights = arguments
    assert class_weights is None
    np.testing.assert_array_equal(np.sort(lengths), np.sort(problem.lengths) + 1)
    total_weight = np.dot(batch_weights, lengths)
    check_loss_and_gradients(estimator, arguments, params, total_weight, problem.seed)


# ----------------------------------------------------------- PyTorch parity
# Both sides compute in float64 and differ only in rounding (summation order
# of the products, equivalent but different exp/tanh/sigmoid/log-softmax
# formulas): ~1e-16 per operation over the few hundred dependent operations of
# these tiny problems stays near 1e-14 (measured: 7e-16 for the loss, 6e-17
# for the gradients). 1e-10 is a wide margin, while a
# semantic difference (a gate order, the padding, the weighting or the mean
# over tokens) is off by 1e-3 or more. Errors are measured against
# max(scale of the array, 1), as in test_functional_torch.py: an array small
# because its terms cancelled keeps their absolute rounding error.
TORCH_RTOL = 1e-10
TORCH_FLOOR = 1.0
TORCH_SEQUENCES = ["abcab", "b", "cabc", "ba", "ccab"]
TORCH_WEIGHTS = [1.0, 0.0, 2.5, 0.5, 1.5]


def torch_loss_and_grads(torch, cell, num_layers, arguments, params):
    """Loss and gradients of the same model in PyTorch (float64, autograd)."""
    pairs, lengths, targets, weights, _ = arguments
    inputs = pairs.inputs  # the decoder inputs <bos> t_1 ... t_n
    vocabulary_size, embedding_dim = params["embedding.weight"].shape
    hidden_size = params["head.weight"].shape[1]
    embedding = torch.nn.Embedding(vocabulary_size, embedding_dim).double()
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = module(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True)
    rnn = rnn.double()
    head = torch.nn.Linear(hidden_size, vocabulary_size).double()
    modules = {"embedding.": embedding, "": rnn, "head.": head}
    for prefix, layer in modules.items():
        layer.load_state_dict(
            {
                name: torch.from_numpy(params[prefix + name])
                for name in layer.state_dict()
            }
        )

    steps = inputs.shape[1]
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        embedding(torch.from_numpy(inputs)),
        torch.from_numpy(lengths),
        batch_first=True,
        enforce_sorted=False,
    )
    output, _ = rnn(packed)
    output, _ = torch.nn.utils.rnn.pad_packed_sequence(
        output, batch_first=True, total_length=steps
    )
    logits = head(output)
    token_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, vocabulary_size),
        torch.from_numpy(targets[:, :steps]).reshape(-1),
        reduction="none",
    ).reshape(inputs.shape)
    valid = torch.arange(steps)[None, :] < torch.from_numpy(lengths)[:, None]
    step_weights = valid * torch.from_numpy(weights)[:, None]
    loss = (token_loss * step_weights).sum() / step_weights.sum()
    loss.backward()
    grads = {
        prefix + name: parameter.grad.numpy()
        for prefix, layer in modules.items()
        for name, parameter in layer.named_parameters()
    }
    return loss.item(), grads


@pytest.mark.torch
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_matches_torch(cell, num_layers):
    torch = pytest.importorskip("torch")
    estimator = RNNLanguageModel(
        cell,
        hidden_size=3,
        num_layers=num_layers,
        embedding_dim=2,
        max_iter=1,
        random_state=0,
        dtype="float64",
    )
    arguments, params = captured_arguments(
        estimator, TORCH_SEQUENCES, sample_weight=TORCH_WEIGHTS
    )
    loss, grads, _ = estimator._loss_and_grads(*arguments, params)
    torch_loss, torch_grads = torch_loss_and_grads(
        torch, cell, num_layers, arguments, params
    )

    assert abs(loss - torch_loss) <= TORCH_RTOL * max(abs(torch_loss), TORCH_FLOOR)
    assert grads.keys() == torch_grads.keys() == params.keys()
    errors = []
    for key, expected in torch_grads.items():
        assert grads[key].shape == expected.shape, key
        error = scaled_error(grads[key], expected, TORCH_FLOOR)
        if not error <= TORCH_RTOL:
            errors.append(f"{key}: scaled error {error:.3g} > {TORCH_RTOL:.3g}")
    assert not errors, "\n".join(errors)
