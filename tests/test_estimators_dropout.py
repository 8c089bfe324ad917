"""Dropout of the estimators (``dropout=p``): PyTorch's ``nn.LSTM(dropout=p)``
between the recurrent layers plus ``nn.Dropout(p)`` on the output layer's input.

* Gradients: with the masks held fixed (:class:`FixedMasks` stands in for
  ``_dropout_mask``), the loss is a smooth function of the parameters, and
  the seam's gradient is checked against central differences in float64 as in
  ``test_estimators_gradients.py`` (whose helpers and tolerances are reused).
* PyTorch parity in train mode: the same network built in PyTorch one layer
  at a time, fed the very masks the estimator drew, gives the same loss and
  gradients.
* Determinism: the masks come from ``random_state`` (same seed, same model),
  ``dropout=0`` draws nothing, and prediction never drops anything.
* Effect: on digits read row by row, with few training images, dropout
  fits the training set less tightly (asserted: a robust effect); its effect
  on held-out accuracy is measured, not asserted.
"""

import copy
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import scaled_error
from hypothesis import example, given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.utils._param_validation import InvalidParameterError
from strategies import EstimatorProblem, estimator_problems
from test_estimators_gradients import (
    TORCH_FLOOR,
    TORCH_RTOL,
    captured_arguments,
    check_loss_and_gradients,
    class_weight_of,
    item_weight,
    language_model_data,
    network_kwargs,
    sequences_and_weights,
)

from rnntools import RNNClassifier, RNNRegressor, RNNTagger, load_model, save_model
from rnntools.estimators.language_model import RNNLanguageModel
from rnntools.functional import rnn_forward
from rnntools.losses import log_softmax

pytestmark = pytest.mark.filterwarnings(
    f"ignore::{ConvergenceWarning.__module__}.{ConvergenceWarning.__name__}"
)

LABEL_ESTIMATORS = [RNNClassifier, RNNRegressor, RNNTagger]


class FixedMasks:
    """Stands in for an estimator's ``_dropout_mask``: the first forward pass
    draws real masks, every later pass gets the same masks in the same order.

    A pass draws ``per_pass`` masks (``num_layers - 1`` between the layers,
    then one for the output layer's input).
    """

    def __init__(self, estimator, per_pass):
        self.draw = estimator._dropout_mask
        self.per_pass = per_pass
        self.masks = []
        self.calls = 0

    def __call__(self, shape, dtype):
        index = self.calls % self.per_pass
        self.calls += 1
        if index == len(self.masks):
            self.masks.append(self.draw(shape, dtype))
        mask = self.masks[index]
        assert mask.shape == shape and mask.dtype == dtype
        return mask


def fix_masks(estimator):
    """Install :class:`FixedMasks` on ``estimator``; return it."""
    masks = FixedMasks(estimator, per_pass=estimator.num_layers)
    estimator._dropout_mask = masks
    return masks


# ------------------------------------------------- finite-difference checks
DROPOUTS = st.sampled_from([0.3, 0.6])
# Three layers, both directions, a ragged batch: every kind of mask, and masks
# that drop some entries (asserted for these examples).
LABEL_EXAMPLE = EstimatorProblem(
    cell="lstm",
    num_layers=3,
    bidirectional=True,
    hidden_size=3,
    n_features=2,
    lengths=(5, 2, 4),
    n_outputs=3,
    alpha=0.5,
    class_weight="dict",
    zero_weight_index=1,
    seed=0,
)
LM_EXAMPLE = replace(LABEL_EXAMPLE, bidirectional=False, class_weight=None)


def check_with_fixed_masks(estimator, arguments, params, total_weight, seed):
    """The finite-difference check of the seam with the masks held fixed."""
    masks = fix_masks(estimator)
    check_loss_and_gradients(estimator, arguments, params, total_weight, seed)
    assert len(masks.masks) == estimator.num_layers
    assert masks.calls % estimator.num_layers == 0
    return masks


def assert_some_dropped(masks):
    assert all((mask == 0).any() for mask in masks.masks)


@given(
    problem=estimator_problems(
        class_weights=(None, "dict"), min_outputs=2, max_outputs=3, max_layers=3
    ),
    dropout=DROPOUTS,
)
@example(problem=LABEL_EXAMPLE, dropout=0.5)
def test_classifier_gradients_with_fixed_masks(problem, dropout):
    rng = np.random.default_rng(problem.seed)
    X, weights = sequences_and_weights(problem, rng)
    y = rng.integers(0, problem.n_outputs, len(X))
    y[:2] = (0, 1)
    estimator = RNNClassifier(
        bidirectional=problem.bidirectional,
        class_weight=class_weight_of(problem, y, rng),
        dropout=dropout,
        **network_kwargs(problem),
    )
    arguments, params = captured_arguments(estimator, X, y, weights)
    _, _, targets, batch_weights, class_weights = arguments
    total_weight = item_weight(batch_weights, class_weights, targets).sum()
    masks = check_with_fixed_masks(
        estimator, arguments, params, total_weight, problem.seed
    )
    if problem == LABEL_EXAMPLE:
        assert_some_dropped(masks)


@given(
    problem=estimator_problems(min_outputs=1, max_outputs=3, max_layers=3),
    dropout=DROPOUTS,
)
@example(problem=LABEL_EXAMPLE, dropout=0.5)
def test_regressor_gradients_with_fixed_masks(problem, dropout):
    rng = np.random.default_rng(problem.seed)
    X, weights = sequences_and_weights(problem, rng)
    y = rng.standard_normal((len(X), problem.n_outputs))
    estimator = RNNRegressor(
        bidirectional=problem.bidirectional,
        dropout=dropout,
        **network_kwargs(problem),
    )
    arguments, params = captured_arguments(estimator, X, y, weights)
    masks = check_with_fixed_masks(
        estimator, arguments, params, arguments[3].sum(), problem.seed
    )
    if problem == LABEL_EXAMPLE:
        assert_some_dropped(masks)


@given(
    problem=estimator_problems(
        class_weights=(None, "dict"), min_outputs=2, max_outputs=3, max_layers=3
    ),
    dropout=DROPOUTS,
)
@example(problem=LABEL_EXAMPLE, dropout=0.5)
def test_tagger_gradients_with_fixed_masks(problem, dropout):
    rng = np.random.default_rng(problem.seed)
    X, weights = sequences_and_weights(problem, rng)
    y = [rng.integers(0, problem.n_outputs, len(sequence)) for sequence in X]
    y[0][:2] = (0, 1)
    estimator = RNNTagger(
        bidirectional=problem.bidirectional,
        class_weight=class_weight_of(problem, np.concatenate(y), rng),
        dropout=dropout,
        **network_kwargs(problem),
    )
    arguments, params = captured_arguments(estimator, X, y, weights)
    _, _, targets, batch_weights, class_weights = arguments
    total_weight = sum(
        item_weight(np.full(len(labels), weight), class_weights, labels).sum()
        for labels, weight in zip(targets, batch_weights, strict=True)
    )
    masks = check_with_fixed_masks(
        estimator, arguments, params, total_weight, problem.seed
    )
    if problem == LABEL_EXAMPLE:
        assert_some_dropped(masks)


@given(
    problem=estimator_problems(bidirectional=False, max_outputs=3, max_layers=3),
    dropout=DROPOUTS,
)
@example(problem=LM_EXAMPLE, dropout=0.5)
def test_language_model_gradients_with_fixed_masks(problem, dropout):
    rng = np.random.default_rng(problem.seed)
    X, weights = language_model_data(problem, rng)
    kwargs = {**network_kwargs(problem), "embedding_dim": problem.n_features}
    estimator = RNNLanguageModel(dropout=dropout, **kwargs)
    arguments, params = captured_arguments(estimator, X, sample_weight=weights)
    _, lengths, _, batch_weights, _ = arguments
    masks = check_with_fixed_masks(
        estimator, arguments, params, np.dot(batch_weights, lengths), problem.seed
    )
    if problem == LM_EXAMPLE:
        assert_some_dropped(masks)


# ----------------------------------------------------------- PyTorch parity
# The tolerances and their reasons are test_estimators_gradients.py's: both
# sides compute in float64 and differ by rounding only, while a mask left out
# of the forward or the backward pass, or applied to the wrong tensor, is off
# by far more than 1e-10.
TORCH_CONFIGS = {
    "2-layers-bidirectional": {"num_layers": 2, "bidirectional": True},
    "3-layers": {"num_layers": 3, "bidirectional": False},
}


class RecordedMasks:
    """Stands in for ``_dropout_mask``: draws real masks and keeps them."""

    def __init__(self, estimator):
        self.draw = estimator._dropout_mask
        self.masks = []

    def __call__(self, shape, dtype):
        self.masks.append(self.draw(shape, dtype))
        return self.masks[-1]


def torch_layers(torch, cell, params, bidirectional, inputs, lengths, masks):
    """The recurrent layers in PyTorch, one ``nn.RNN/LSTM/GRU`` per layer,
    with ``masks[k - 1]`` multiplying the input of layer ``k >= 1``.

    Returns
    -------
    output : tensor of shape (B, T, D*H)
    h_n : tensor of shape (D, B, H)
        The last layer's final hidden state.
    parameters : dict of str to tensor
        Under the estimator's keys.
    """
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    hidden_size = params["weight_hh_l0"].shape[1]
    steps = inputs.shape[1]
    parameters = {}
    layer_input = inputs
    for layer in range(len(masks) + 1):
        if layer > 0:
            layer_input = layer_input * torch.from_numpy(masks[layer - 1])
        rnn = module(
            layer_input.shape[2],
            hidden_size,
            batch_first=True,
            bidirectional=bidirectional,
        ).double()
        names = {name: name.replace("_l0", f"_l{layer}") for name in rnn.state_dict()}
        rnn.load_state_dict(
            {name: torch.from_numpy(params[key]) for name, key in names.items()}
        )
        parameters.update(
            {names[name]: value for name, value in rnn.named_parameters()}
        )
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            layer_input, torch.from_numpy(lengths), batch_first=True,
            enforce_sorted=False,
        )  # fmt: skip
        output, state = rnn(packed)
        layer_input, _ = torch.nn.utils.rnn.pad_packed_sequence(
            output, batch_first=True, total_length=steps
        )
    h_n = state[0] if cell == "lstm" else state
    return layer_input, h_n, parameters


def torch_head(torch, params, features, parameters):
    head = torch.nn.Linear(*params["head.weight"].shape[::-1]).double()
    head.load_state_dict(
        {name: torch.from_numpy(params["head." + name]) for name in head.state_dict()}
    )
    parameters.update({"head." + name: p for name, p in head.named_parameters()})
    return head(features)


def weighted_cross_entropy(torch, logits, targets, weights):
    """``sum(w * -log softmax(logits)[target]) / sum(w)`` over the last axis."""
    token_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    )
    weights = weights.reshape(-1)
    return (token_loss * weights).sum() / weights.sum()


def torch_loss(torch, estimator, arguments, params, masks):
    """The estimator's loss in PyTorch with the given masks, and the
    parameters (tensors) it was computed from."""
    X, lengths, targets, weights, _ = arguments
    if isinstance(estimator, RNNLanguageModel):
        X = X.inputs  # the decoder inputs <bos> t_1 ... t_n
    weights = torch.from_numpy(weights)
    valid = torch.arange(X.shape[1])[None, :] < torch.from_numpy(lengths)[:, None]
    between, feature_mask = masks[:-1], torch.from_numpy(masks[-1])
    if isinstance(estimator, RNNLanguageModel):
        embedding = torch.nn.Embedding(*params["embedding.weight"].shape).double()
        embedding.weight.data = torch.from_numpy(params["embedding.weight"].copy())
        inputs = embedding(torch.from_numpy(X))
    else:
        inputs = torch.from_numpy(X)
    output, h_n, parameters = torch_layers(
        torch, estimator.cell, params, estimator.bidirectional, inputs, lengths,
        between,
    )  # fmt: skip
    if isinstance(estimator, RNNLanguageModel):
        parameters["embedding.weight"] = embedding.weight
    if isinstance(estimator, (RNNTagger, RNNLanguageModel)):
        logits = torch_head(torch, params, output * feature_mask, parameters)
        if isinstance(estimator, RNNTagger):
            labels = np.zeros(X.shape[:2], dtype=np.int64)
            for row, sequence in enumerate(targets):
                labels[row, : len(sequence)] = sequence
        else:
            labels = targets[:, : X.shape[1]]
        step_weights = valid * weights[:, None]
        loss = weighted_cross_entropy(
            torch, logits, torch.from_numpy(labels), step_weights
        )
        return loss, parameters
    features = torch.cat(list(h_n), dim=1) * feature_mask  # forward first
    prediction = torch_head(torch, params, features, parameters)
    if isinstance(estimator, RNNClassifier):
        loss = weighted_cross_entropy(
            torch, prediction, torch.from_numpy(targets), weights
        )
    else:
        squared = ((prediction - torch.from_numpy(targets)) ** 2).mean(dim=1)
        loss = 0.5 * (weights * squared).sum() / weights.sum()
    return loss, parameters


def torch_problem(Estimator, rng):
    """Ragged float64 sequences (one of weight 0) and their targets."""
    X = [rng.standard_normal((length, 2)) for length in (5, 3, 1, 4, 5, 2)]
    weights = np.array([1.0, 0.0, 2.5, 0.5, 1.5, 1.0])
    if Estimator is RNNClassifier:
        y = np.array([0, 1, 2, 1, 0, 2])
    elif Estimator is RNNRegressor:
        y = rng.standard_normal((len(X), 2))
    else:
        y = [rng.integers(0, 3, len(x)) for x in X]
    return X, y, weights


@pytest.mark.torch
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(
    ("Estimator", "config"),
    [
        *[(E, config) for E in LABEL_ESTIMATORS for config in TORCH_CONFIGS],
        (RNNLanguageModel, "3-layers"),  # reads left to right only
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_dropout_matches_torch_in_train_mode(Estimator, config, cell):
    torch = pytest.importorskip("torch")
    settings = {
        "cell": cell,
        "hidden_size": 3,
        "dropout": 0.4,
        "max_iter": 1,
        "random_state": 0,
        "dtype": "float64",
        **TORCH_CONFIGS[config],
    }
    rng = np.random.default_rng(0)
    if Estimator is RNNLanguageModel:
        del settings["bidirectional"]
        estimator = Estimator(embedding_dim=2, **settings)
        X = ["abcab", "b", "cabc", "ba", "ccab"]
        arguments, params = captured_arguments(
            estimator, X, sample_weight=[1.0, 0.0, 2.5, 0.5, 1.5]
        )
    else:
        estimator = Estimator(**settings)
        X, y, weights = torch_problem(Estimator, rng)
        arguments, params = captured_arguments(estimator, X, y, weights)

    masks = RecordedMasks(estimator)
    estimator._dropout_mask = masks
    loss, grads, _ = estimator._loss_and_grads(*arguments, params)
    assert len(masks.masks) == estimator.num_layers
    assert all((mask == 0).any() for mask in masks.masks)
    expected_loss, parameters = torch_loss(
        torch, estimator, arguments, params, masks.masks
    )
    expected_loss.backward()

    assert abs(loss - expected_loss.item()) <= TORCH_RTOL * max(
        abs(expected_loss.item()), TORCH_FLOOR
    )
    assert grads.keys() == parameters.keys() == params.keys()
    errors = []
    for key, parameter in parameters.items():
        error = scaled_error(grads[key], parameter.grad.numpy(), TORCH_FLOOR)
        if not error <= TORCH_RTOL:
            errors.append(f"{key}: scaled error {error:.3g} > {TORCH_RTOL:.3g}")
    assert not errors, "\n".join(errors)


# -------------------------------------------------------------- determinism
def labelled_problem(Estimator, n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((length, 2)) for length in rng.integers(2, 8, n)]
    if Estimator is RNNTagger:
        y = [(x[:, 0] > 0).astype(int) for x in X]
    elif Estimator is RNNRegressor:
        y = np.array([x[:, 0].sum() for x in X])
    else:
        y = np.array([int(x[:, 0].sum() > 0) for x in X])
    return X, y


SETTINGS = {
    "hidden_size": 6,
    "num_layers": 2,
    "bidirectional": True,
    "max_iter": 3,
    "batch_size": 16,
}


def assert_same_params(first, second):
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def count_draws(estimator):
    """Wrap ``estimator._dropout_mask`` to count its calls; return the list
    of the shapes it was called with."""
    shapes = []
    draw = estimator._dropout_mask

    def counting(shape, dtype):
        shapes.append(shape)
        return draw(shape, dtype)

    estimator._dropout_mask = counting
    return shapes


@pytest.mark.parametrize("Estimator", LABEL_ESTIMATORS)
def test_same_seed_same_model(Estimator):
    X, y = labelled_problem(Estimator)
    fit = [
        Estimator(dropout=0.3, random_state=seed, **SETTINGS).fit(X, y)
        for seed in (0, 0, 1)
    ]
    assert_same_params(fit[0].params_, fit[1].params_)
    assert fit[0].loss_curve_ == fit[1].loss_curve_
    assert not np.array_equal(
        fit[0].params_["head.weight"], fit[2].params_["head.weight"]
    )
    # The masks are in use: the same seed without dropout ends elsewhere.
    plain = Estimator(dropout=0.0, random_state=0, **SETTINGS).fit(X, y)
    assert not np.array_equal(
        fit[0].params_["head.weight"], plain.params_["head.weight"]
    )


@pytest.mark.parametrize("Estimator", LABEL_ESTIMATORS)
def test_masks_drawn_per_minibatch_and_none_without_dropout(Estimator):
    """``num_layers - 1`` masks between the layers, then one on the head's
    input, for every minibatch; ``dropout=0`` draws none, so a seed gives the
    model it gave before dropout existed."""
    X, y = labelled_problem(Estimator)
    n_batches = -(-len(X) // SETTINGS["batch_size"])
    settings = {**SETTINGS, "num_layers": 3, "max_iter": 2}
    estimator = Estimator(dropout=0.3, random_state=0, **settings)
    shapes = count_draws(estimator)
    estimator.fit(X, y)
    assert len(shapes) == settings["max_iter"] * n_batches * 3
    width = 2 * settings["hidden_size"]
    for between_1, between_2, features in zip(*[iter(shapes)] * 3, strict=True):
        batch, steps, _ = between_1
        assert between_1 == between_2 == (batch, steps, width)
        if Estimator is RNNTagger:
            assert features == (batch, steps, width)
        else:
            assert features == (batch, width)

    estimator = Estimator(dropout=0.0, random_state=0, **settings)
    shapes = count_draws(estimator)
    estimator.fit(X, y)
    assert shapes == []


def test_mask_is_inverted_dropout():
    """Zero with probability ``dropout``, else ``1 / (1 - dropout)``: the
    expected value of a dropped-out input is the input."""
    estimator = RNNClassifier(dropout=0.3)
    estimator._rng = np.random.RandomState(0)
    n = 200_000
    mask = estimator._dropout_mask((n,), np.float32)
    assert mask.dtype == np.float32
    kept = mask != 0
    np.testing.assert_array_equal(mask[kept], np.float32(1 / 0.7))
    # Binomial(n, 0.3) zeros: 5 standard deviations of their fraction.
    assert abs((~kept).mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / n)


def predicted_by_hand(estimator, X):
    """The classifier's probabilities computed from ``params_`` by
    :func:`rnn_forward` and the head, with no dropout anywhere."""
    params = estimator.params_
    rnn_params = {k: v for k, v in params.items() if not k.startswith("head.")}
    lengths = np.array([len(x) for x in X])
    padded = np.zeros((len(X), lengths.max(), X[0].shape[1]))
    for row, sequence in enumerate(X):
        padded[row, : len(sequence)] = sequence
    _, final_state, _ = rnn_forward(
        padded,
        rnn_params,
        estimator.cell,
        bidirectional=estimator.bidirectional,
        lengths=lengths,
    )
    h_n = final_state[0] if estimator.cell == "lstm" else final_state
    features = np.concatenate(list(h_n[-2:]), axis=1)
    logits = features @ params["head.weight"].T + params["head.bias"]
    return np.exp(log_softmax(logits))


@pytest.mark.parametrize("Estimator", LABEL_ESTIMATORS)
def test_dropout_only_during_fit(Estimator):
    """Prediction and early stopping's validation score draw no mask, leave
    the random stream alone, and give what the same parameters give with
    ``dropout=0``."""
    X, y = labelled_problem(Estimator)
    estimator = Estimator(
        dropout=0.5,
        random_state=0,
        early_stopping=True,
        validation_fraction=0.25,
        dtype="float64",
        **SETTINGS,
    )
    shapes = count_draws(estimator)
    estimator.fit(X, y)
    n_train = len(X) - int(np.ceil(0.25 * len(X)))
    n_batches = -(-n_train // SETTINGS["batch_size"])
    expected_draws = estimator.n_iter_ * n_batches * SETTINGS["num_layers"]
    assert len(shapes) == expected_draws  # none for the validation scores

    stream = copy.deepcopy(estimator._rng)
    predict = "predict" if Estimator is RNNRegressor else "predict_proba"
    first = getattr(estimator, predict)(X)
    second = getattr(estimator, predict)(X)
    score = estimator.score(X, y)
    assert len(shapes) == expected_draws
    np.testing.assert_array_equal(
        estimator._rng.random_sample(4), stream.random_sample(4)
    )
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert estimator.score(X, y) == score

    without = copy.deepcopy(estimator).set_params(dropout=0.0)
    for a, b in zip(first, getattr(without, predict)(X), strict=True):
        np.testing.assert_array_equal(a, b)
    if Estimator is RNNClassifier:
        np.testing.assert_allclose(
            first, predicted_by_hand(estimator, X), rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize("Estimator", [*LABEL_ESTIMATORS, RNNLanguageModel])
@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5, "0.5"])
def test_dropout_out_of_range_is_refused(Estimator, dropout):
    X, y = (["ab", "ba"], None) if Estimator is RNNLanguageModel else ([[0.0]], [1])
    with pytest.raises(InvalidParameterError, match="dropout"):
        Estimator(dropout=dropout).fit(X, y)


@pytest.mark.parametrize("name", ["classifier", "regressor", "tagger"])
def test_pickles_from_before_dropout_get_its_default(name):
    """Unpickling fills in a hyperparameter the pickle predates, so that
    ``get_params``, ``clone`` and refitting work."""
    path = Path(__file__).parent / "data" / f"{name}-c5a1466.pkl"
    assert b"dropout" not in path.read_bytes()
    with open(path, "rb") as file:
        model = pickle.load(file)  # our own test file: trusted
    assert model.get_params()["dropout"] == 0.0
    assert clone(model).dropout == 0.0


def test_dropout_is_kept_by_pickle_and_model_files(tmp_path):
    X, y = labelled_problem(RNNClassifier)
    model = RNNClassifier(dropout=0.3, random_state=0, **SETTINGS).fit(X, y)
    path = tmp_path / "model.npz"
    save_model(model, path)
    for restored in (pickle.loads(pickle.dumps(model)), load_model(path)):
        assert restored.dropout == 0.3
        np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


# ------------------------------------------------------------------- effect
def test_dropout_regularises():
    """Digits read row by row (8 steps of 8 pixels), 150 training images, a
    two-layer LSTM trained 60 epochs without stopping: ``dropout=0.5`` fits the
    training images less tightly (their log-loss, without dropout, was 2.3 to
    6 times that of the plain model over four seeds). Whether that buys
    held-out accuracy depends on the problem and the training schedule, so it
    is measured and reported, not asserted here."""
    digits = load_digits()
    X, y = digits.images / 16.0, digits.target
    train = np.random.default_rng(0).permutation(len(X))[:150]
    settings = {
        "hidden_size": 32,
        "num_layers": 2,
        "max_iter": 60,
        "n_iter_no_change": 60,
        "learning_rate_init": 3e-3,
        "random_state": 0,
    }
    training_loss = {}
    for dropout in (0.0, 0.5):
        model = RNNClassifier(dropout=dropout, **settings).fit(X[train], y[train])
        training_loss[dropout] = log_loss(
            y[train], model.predict_proba(X[train]), labels=model.classes_
        )
    assert training_loss[0.5] > 1.5 * training_loss[0.0]
