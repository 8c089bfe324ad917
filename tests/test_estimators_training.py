"""Training: stopping, optimizers, regularisation, weights, warm starts,
partial_fit, verbosity, determinism and divergence."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.class_weight import compute_sample_weight

from rnntools import RNNClassifier, RNNRegressor, RNNTagger
from rnntools.optim import AdamOptimizer, SGDOptimizer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ALL_ESTIMATORS = [RNNClassifier, RNNRegressor, RNNTagger]


def _small(estimator_class, **params):
    params = {"hidden_size": 4, "max_iter": 2, "random_state": 0, **params}
    return estimator_class(**params)


def _problem(estimator_class, n=24, seed=0, dtype=np.float64):
    """Ragged sequences with a learnable target of the estimator's kind."""
    rng = np.random.RandomState(seed)
    X = [rng.normal(size=(length, 2)).astype(dtype) for length in rng.randint(2, 8, n)]
    if estimator_class is RNNTagger:
        y = [(x[:, 0] > 0).astype(int) for x in X]
    elif estimator_class is RNNRegressor:
        y = np.array([x[:, 0].sum() for x in X])
    else:
        y = np.array([int(x[:, 0].sum() > 0) for x in X])
    return X, y


def _assert_same_params(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _params_copy(estimator):
    return {k: v.copy() for k, v in estimator.params_.items()}


# ----------------------------------------------------------------- stopping
def test_early_stopping_restores_the_best_weights():
    """Training past the best validation score and restoring gives the very
    parameters of a run that stops at the best epoch."""
    X, y = _problem(RNNRegressor, n=60)
    config = dict(
        hidden_size=8,
        early_stopping=True,
        validation_fraction=0.25,
        learning_rate_init=0.05,
        n_iter_no_change=100,
        random_state=0,
    )
    long_run = RNNRegressor(max_iter=25, **config).fit(X, y)
    scores = long_run.validation_scores_
    assert len(scores) == long_run.n_iter_ == 25
    best = int(np.argmax(scores))
    assert best < len(scores) - 1, "precondition: training went past its best"
    assert long_run.best_validation_score_ == max(scores)

    to_best = RNNRegressor(max_iter=best + 1, **config).fit(X, y)
    assert to_best.validation_scores_ == scores[: best + 1]
    _assert_same_params(long_run.params_, to_best.params_)


def test_early_stopping_stops_n_iter_no_change_after_the_best_epoch():
    """With tol=0 an epoch counts as "no improvement" when its score is below
    the best (a tie resets the count, as in MLPClassifier; R² never ties)."""
    X, y = _problem(RNNRegressor, n=60)
    regressor = RNNRegressor(
        hidden_size=8,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=3,
        tol=0.0,
        learning_rate_init=0.05,
        max_iter=200,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        regressor.fit(X, y)
    scores = regressor.validation_scores_
    assert regressor.n_iter_ < 200
    assert regressor.n_iter_ == int(np.argmax(scores)) + 1 + 3
    assert regressor.best_loss_ is None


@pytest.mark.parametrize(
    ("estimator_class", "metric"),
    [(RNNClassifier, accuracy_score), (RNNRegressor, r2_score)],
)
def test_validation_scores_weigh_the_held_out_sequences(
    estimator_class, metric, monkeypatch
):
    """Each epoch's validation score is accuracy_score / r2_score of the
    model's predictions on the held-out sequences, given their sample_weight.

    A spy on ``_validation_score`` finds which sequences were held out (by
    their values) and predicts them with the public ``predict`` at that epoch.
    """
    X, y = _problem(estimator_class, n=60)
    sample_weight = np.random.RandomState(1).uniform(0.1, 10.0, len(X))
    weighted, unweighted = [], []
    validation_score = estimator_class._validation_score

    def spy(estimator, X_valid, lengths, targets, weights):
        held_out = [
            next(
                i
                for i, x in enumerate(X)
                if len(x) == length and np.array_equal(x, X_valid[row, :length])
            )
            for row, length in enumerate(lengths)
        ]
        predicted = estimator.predict([X[i] for i in held_out])
        weighted.append(
            metric(y[held_out], predicted, sample_weight=sample_weight[held_out])
        )
        unweighted.append(metric(y[held_out], predicted))
        return validation_score(estimator, X_valid, lengths, targets, weights)

    monkeypatch.setattr(estimator_class, "_validation_score", spy)
    estimator = estimator_class(
        hidden_size=4,
        max_iter=6,
        early_stopping=True,
        validation_fraction=0.3,
        n_iter_no_change=100,
        dtype="float64",
        random_state=0,
    ).fit(X, y, sample_weight=sample_weight)
    assert len(estimator.validation_scores_) == 6
    np.testing.assert_allclose(estimator.validation_scores_, weighted, rtol=1e-12)
    assert not np.allclose(weighted, unweighted), "precondition: weights matter"


def test_tol_and_n_iter_no_change_stop_training():
    """With a huge tol no epoch counts as an improvement after the first."""
    X, y = _problem(RNNClassifier)
    classifier = _small(RNNClassifier, tol=1e9, n_iter_no_change=4, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        classifier.fit(X, y)
    assert classifier.n_iter_ == 5
    assert classifier.best_loss_ == min(classifier.loss_curve_)
    assert classifier.validation_scores_ is None


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_convergence_warning_at_max_iter(estimator_class):
    X, y = _problem(estimator_class)
    estimator = _small(estimator_class, max_iter=3, tol=0.0)
    with pytest.warns(ConvergenceWarning, match=r"maximum iterations \(3\)"):
        estimator.fit(X, y)
    assert estimator.n_iter_ == 3 == len(estimator.loss_curve_)


# --------------------------------------------------------------- optimizers
@pytest.mark.torch
@pytest.mark.parametrize(
    ("momentum", "nesterov"), [(0.0, False), (0.9, False), (0.9, True)]
)
def test_sgd_matches_torch(momentum, nesterov):
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    start = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(5)]
    ours = start.copy()
    optimizer = SGDOptimizer([ours], 0.1, momentum, nesterov)
    theirs = torch.tensor(start, requires_grad=True)
    reference = torch.optim.SGD([theirs], lr=0.1, momentum=momentum, nesterov=nesterov)
    for grad in grads:
        optimizer.update_params([ours], [grad])
        theirs.grad = torch.tensor(grad)
        reference.step()
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.torch
def test_adam_matches_torch():
    """Same updates up to where epsilon enters: sklearn's and Kingma & Ba's
    efficient form add it to sqrt(v), torch to the bias-corrected sqrt(v).
    That changes a step of size lr by about lr * eps / sqrt(v_t), under 1e-7
    for these gradients (we measured 2.3e-8)."""
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    start = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(5)]
    ours = start.copy()
    optimizer = AdamOptimizer([ours], 0.01)
    theirs = torch.tensor(start, requires_grad=True)
    reference = torch.optim.Adam([theirs], lr=0.01)
    for grad in grads:
        optimizer.update_params([ours], [grad])
        theirs.grad = torch.tensor(grad)
        reference.step()
    np.testing.assert_allclose(
        ours - start, theirs.detach().numpy() - start, rtol=0, atol=1e-7
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_rounds_as_the_numpy_expressions(dtype):
    """The fused step (rnntools.kernels.cpu.adam_update) gives the bits of
    the numpy form it replaced, gradients of 1e-8 to 1e2 included: the
    float64 step, ``1 - beta`` rounded from float64, no fused multiply-add.
    A non-contiguous parameter takes the numpy form itself."""
    rng = np.random.default_rng(0)
    shapes = [(7, 5), (5,), (3, 4, 2)]
    params = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    expected = [p.copy() for p in params]
    strided = np.ones((4, 6), dtype=dtype)[:, ::2]  # not C-contiguous
    strided_expected = strided.copy()
    optimizer = AdamOptimizer([*params, strided], 0.01)
    m = [np.zeros_like(p) for p in [*expected, strided_expected]]
    v = [np.zeros_like(p) for p in [*expected, strided_expected]]
    for t in range(1, 51):
        grads = [
            (rng.standard_normal(p.shape) * 10.0 ** rng.integers(-8, 3)).astype(dtype)
            for p in [*params, strided]
        ]
        optimizer.update_params([*params, strided], grads)
        step = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        for p, g, m_p, v_p in zip(
            [*expected, strided_expected], grads, m, v, strict=True
        ):
            m_p *= 0.9
            m_p += (1 - 0.9) * g
            v_p *= 0.999
            v_p += (1 - 0.999) * g * g
            p -= (step * m_p / (np.sqrt(v_p) + 1e-8)).astype(dtype)
    for got, want in zip(
        [*params, strided], [*expected, strided_expected], strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_optimizers_keep_float32_params_float32():
    params = [np.ones((2, 2), dtype=np.float32)]
    for optimizer in (AdamOptimizer(params, 0.1), SGDOptimizer(params, 0.1)):
        optimizer.update_params(params, [np.full((2, 2), 0.5, dtype=np.float32)])
        assert params[0].dtype == np.float32


@pytest.mark.parametrize(
    ("momentum", "nesterov", "learning_rate"),
    [(0.0, False, 0.5), (0.9, False, 0.1), (0.9, True, 0.1)],
)
def test_sgd_solver_trains(momentum, nesterov, learning_rate):
    X, y = _problem(RNNClassifier, n=40)
    classifier = _small(
        RNNClassifier,
        solver="sgd",
        momentum=momentum,
        nesterovs_momentum=nesterov,
        learning_rate_init=learning_rate,
        max_iter=15,
        hidden_size=8,
    ).fit(X, y)
    assert classifier.loss_curve_[-1] < 0.8 * classifier.loss_curve_[0]


def test_sgd_momentum_variants_differ():
    X, y = _problem(RNNClassifier)
    params = [
        _small(
            RNNClassifier, solver="sgd", momentum=m, nesterovs_momentum=n, max_iter=3
        )
        .fit(X, y)
        .params_["head.weight"]
        for m, n in [(0.0, False), (0.9, False), (0.9, True)]
    ]
    assert not np.array_equal(params[0], params[1])
    assert not np.array_equal(params[1], params[2])


# ------------------------------------------------------ weights, L2, clipping
# learning_rate_init=1e-30 leaves the float64 parameters exactly where they
# were initialised, so loss_curve_[0] is the loss of the initial model, which
# predict_log_proba evaluates independently.
_FROZEN = dict(learning_rate_init=1e-30, max_iter=1, dtype="float64")


def test_alpha_adds_the_l2_penalty_to_the_loss():
    X, y = _problem(RNNClassifier, n=20)
    plain = _small(RNNClassifier, batch_size=20, **_FROZEN).fit(X, y)
    penalised = _small(RNNClassifier, alpha=0.5, batch_size=20, **_FROZEN).fit(X, y)
    _assert_same_params(plain.params_, penalised.params_)
    squared_norm = sum(
        float(np.sum(v * v)) for k, v in plain.params_.items() if "weight" in k
    )
    expected = 0.5 * 0.5 * squared_norm / len(X)
    np.testing.assert_allclose(
        penalised.loss_curve_[0] - plain.loss_curve_[0], expected, rtol=1e-10
    )


def test_alpha_shrinks_the_weights():
    X, y = _problem(RNNClassifier)
    norms = []
    for alpha in (0.0, 1.0):
        classifier = _small(
            RNNClassifier,
            alpha=alpha,
            max_iter=20,
            hidden_size=8,
            learning_rate_init=0.05,
        ).fit(X, y)
        norms.append(
            sum(
                float(np.sum(v * v))
                for k, v in classifier.params_.items()
                if "weight" in k
            )
        )
    assert norms[1] < 0.5 * norms[0]


def test_clip_grad_norm_bounds_each_update():
    """With plain SGD (lr=1, no momentum) and one batch per epoch, an update is
    exactly the clipped gradient, of norm clip_grad_norm."""
    X, y = _problem(RNNClassifier)
    config = dict(
        solver="sgd",
        momentum=0.0,
        learning_rate_init=1.0,
        batch_size=len(X),
        max_iter=1,
        warm_start=True,
        dtype="float64",
    )
    step_norms = {}
    for clip in (1e-3, None):
        classifier = _small(RNNClassifier, clip_grad_norm=clip, **config).fit(X, y)
        before = _params_copy(classifier)
        classifier.partial_fit(X, y)
        step_norms[clip] = np.sqrt(
            sum(np.sum((classifier.params_[k] - before[k]) ** 2) for k in before)
        )
    assert step_norms[None] > 1e-2  # precondition: the raw gradient is larger
    np.testing.assert_allclose(step_norms[1e-3], 1e-3, rtol=1e-9)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5}])
def test_class_weight_equals_the_matching_sample_weight(class_weight):
    X, y = _problem(RNNClassifier, n=30)
    y[:20] = 0  # imbalanced
    by_class = _small(RNNClassifier, class_weight=class_weight, max_iter=3).fit(X, y)
    by_sample = _small(RNNClassifier, max_iter=3).fit(
        X, y, sample_weight=compute_sample_weight(class_weight, y)
    )
    _assert_same_params(by_class.params_, by_sample.params_)
    assert by_class.loss_curve_ == by_sample.loss_curve_


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5}])
def test_tagger_weighs_each_step_by_its_class(class_weight):
    """loss_curve_[0] is the class-weighted mean of the per-step log-losses."""
    X, y = _problem(RNNTagger, n=15)
    y = [np.where(np.arange(len(s)) < 4, 0, s) for s in y]  # more zeros
    tagger = _small(RNNTagger, class_weight=class_weight, **_FROZEN).fit(X, y)
    labels = np.concatenate(y)
    step_weights = compute_sample_weight(class_weight, labels)
    log_proba = np.concatenate(tagger.predict_log_proba(X))
    picked = log_proba[np.arange(len(labels)), labels]
    expected = -np.sum(step_weights * picked) / np.sum(step_weights)
    np.testing.assert_allclose(tagger.loss_curve_[0], expected, rtol=1e-10)


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_zero_sample_weight_is_dropping_the_sample(estimator_class):
    """With the zero-weight sequences filling whole batches, training skips
    those batches and is bit for bit the training without them."""
    X, y = _problem(estimator_class, n=20)
    config = dict(batch_size=4, shuffle=False, max_iter=3)
    weights = np.r_[np.zeros(8), np.ones(12)]
    weighted = _small(estimator_class, **config).fit(X, y, sample_weight=weights)
    dropped = _small(estimator_class, **config).fit(X[8:], y[8:])
    _assert_same_params(weighted.params_, dropped.params_)
    assert weighted.loss_curve_ == dropped.loss_curve_


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_integer_sample_weight_is_repeating_the_sample(estimator_class):
    """In one full batch per epoch, weight k is k copies (up to the rounding of
    the different summation orders, hence float64 and a tolerance)."""
    X, y = _problem(estimator_class, n=12)
    weights = np.random.RandomState(1).randint(0, 4, len(X))
    weights[0] = 2
    repeated = np.repeat(np.arange(len(X)), weights)
    config = dict(batch_size=100, dtype="float64", max_iter=5)
    weighted = _small(estimator_class, **config).fit(X, y, sample_weight=weights)
    copies = _small(estimator_class, **config).fit(
        [X[i] for i in repeated], [y[i] for i in repeated]
    )
    np.testing.assert_allclose(weighted.loss_curve_, copies.loss_curve_, rtol=1e-10)
    for key, value in copies.params_.items():
        np.testing.assert_allclose(weighted.params_[key], value, rtol=1e-8, atol=1e-10)


# ------------------------------------------------ warm start and partial_fit
@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_warm_start_continues_training(estimator_class):
    """Two warm-started fits of 3 epochs are one fit of 6: parameters,
    optimizer state and the shuffling stream all carry over."""
    X, y = _problem(estimator_class)
    config = dict(tol=0.0, n_iter_no_change=100, batch_size=8)
    warm = _small(estimator_class, warm_start=True, max_iter=3, **config)
    warm.fit(X, y).fit(X, y)
    single = _small(estimator_class, max_iter=6, **config).fit(X, y)
    _assert_same_params(warm.params_, single.params_)
    assert warm.loss_curve_ == single.loss_curve_
    assert warm.n_iter_ == 6 and warm.t_ == 6 * len(X)

    cold = _small(estimator_class, max_iter=3, **config)
    cold.fit(X, y).fit(X, y)
    _assert_same_params(
        cold.params_, _small(estimator_class, max_iter=3, **config).fit(X, y).params_
    )


def test_warm_start_can_switch_on_early_stopping():
    X, y = _problem(RNNClassifier, n=30)
    classifier = _small(RNNClassifier, warm_start=True).fit(X, y)
    classifier.set_params(early_stopping=True, validation_fraction=0.3)
    classifier.fit(X, y)
    assert len(classifier.validation_scores_) == 2
    with pytest.raises(ValueError, match="X has 3 features per step"):
        classifier.fit([np.ones((3, 3))] * 4, [0, 1, 0, 1])


@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_partial_fit_is_one_epoch_per_call(estimator_class):
    """k calls of partial_fit are fit(max_iter=k), bit for bit, shuffling
    included; each call adds one epoch and len(X) sequences."""
    X, y = _problem(estimator_class)
    extra = {} if estimator_class is RNNRegressor else {"classes": [0, 1]}
    incremental = _small(estimator_class, batch_size=8)
    for call in range(1, 4):
        incremental.partial_fit(X, y, **extra)
        assert incremental.n_iter_ == call == len(incremental.loss_curve_)
        assert incremental.t_ == call * len(X)
    batch = _small(estimator_class, batch_size=8, max_iter=3).fit(X, y)
    _assert_same_params(incremental.params_, batch.params_)
    assert incremental.loss_curve_ == batch.loss_curve_


def test_partial_fit_refuses_what_needs_the_whole_data():
    X, y = _problem(RNNClassifier)
    with pytest.raises(ValueError, match="early_stopping"):
        _small(RNNClassifier, early_stopping=True).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="'balanced' is not supported by partial_fit"):
        _small(RNNClassifier, class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    classifier = _small(RNNClassifier, class_weight={0: 2.0}).partial_fit(
        X, y, classes=[0, 1]
    )
    assert classifier.n_iter_ == 1


def test_verbose_prints_one_line_per_epoch(capsys):
    X, y = _problem(RNNClassifier, n=30)
    _small(RNNClassifier, verbose=True, max_iter=3).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "Iteration 1",
        "Iteration 2",
        "Iteration 3",
    ]
    assert all(", loss = " in line and ", time = " in line for line in lines)

    _small(
        RNNClassifier,
        verbose=True,
        early_stopping=True,
        validation_fraction=0.3,
        n_iter_no_change=1,
        tol=1e9,
        max_iter=5,
    ).fit(X, y)
    out = capsys.readouterr().out
    assert "validation score = " in out
    assert "did not improve more than tol" in out


# -------------------------------------------------------------- determinism
@pytest.mark.parametrize("estimator_class", ALL_ESTIMATORS)
def test_same_seed_same_model_bit_for_bit(estimator_class):
    X, y = _problem(estimator_class, n=30)
    config = dict(early_stopping=True, validation_fraction=0.2, max_iter=4)
    first = _small(estimator_class, **config).fit(X, y)
    second = _small(estimator_class, **config).fit(X, y)
    from_instance = _small(
        estimator_class, **{**config, "random_state": np.random.RandomState(0)}
    ).fit(X, y)
    for other in (second, from_instance):
        _assert_same_params(first.params_, other.params_)
        assert first.loss_curve_ == other.loss_curve_
        assert first.validation_scores_ == other.validation_scores_
        for a, b in zip(first.predict(X), other.predict(X), strict=True):
            np.testing.assert_array_equal(a, b)
    different = _small(estimator_class, **{**config, "random_state": 1}).fit(X, y)
    assert not np.array_equal(
        different.params_["head.weight"], first.params_["head.weight"]
    )


# --------------------------------------------------------------- divergence
def test_diverging_fit_raises_and_keeps_finite_weights():
    """SGD at learning rate 10 on large targets overflows within an epoch; the
    fit stops with a clear error and params_ holds the epoch's finite start."""
    X, y = _problem(RNNRegressor, n=16)
    regressor = _small(
        RNNRegressor,
        solver="sgd",
        learning_rate_init=10.0,
        clip_grad_norm=None,
        batch_size=2,
        max_iter=5,
    )
    with pytest.raises(ValueError, match="Training diverged"):
        regressor.fit(X, 1e6 * y)
    assert all(np.isfinite(v).all() for v in regressor.params_.values())
    assert len(regressor.loss_curve_) == regressor.n_iter_
    assert np.isfinite(regressor.predict(X)).all()


@pytest.mark.parametrize("estimator_class", [RNNClassifier, RNNTagger])
def test_relu_rnn_at_a_huge_learning_rate_never_leaves_nan_weights(estimator_class):
    """Either a clear error with finite weights, or a finite model."""
    X, y = _problem(estimator_class, n=16)
    estimator = _small(
        estimator_class,
        cell="rnn",
        nonlinearity="relu",
        learning_rate_init=10.0,
        clip_grad_norm=None,
        solver="sgd",
        hidden_size=16,
        max_iter=10,
    )
    try:
        estimator.fit([10 * x for x in X], y)
    except ValueError as exc:
        assert "Training diverged" in str(exc)
    else:
        for p in estimator.predict_proba(X):
            assert np.isfinite(p).all()
    assert all(np.isfinite(v).all() for v in estimator.params_.values())
