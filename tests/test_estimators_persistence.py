"""Pickling, and save_model / load_model: arrays and JSON only, never pickle;
truncated, garbled, edited or foreign files are a ValueError."""

import io
import json
import os
import pickle
import re
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import rnntools.io
from rnntools import RNNClassifier, RNNRegressor, RNNTagger, load_model, save_model

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _sequences(n=10, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.normal(size=(length, 2)) for length in rng.randint(1, 7, n)]


def _fitted_models():
    """One fitted model per estimator and label kind, with non-default
    hyperparameters so that their round trip is checked too."""
    X = _sequences()
    labels = np.array([int(x[:, 0].sum() > 0) + (len(x) > 3) for x in X])
    names = np.array(["cat", "dog", "émeu"])[labels]
    return {
        "classifier-int": (
            RNNClassifier(
                cell="gru",
                hidden_size=5,
                max_iter=2,
                class_weight={0: 2.0, 2: 0.5},
                random_state=0,
            ).fit(X, labels),
            X,
        ),
        "classifier-str": (
            RNNClassifier(
                hidden_size=4,
                num_layers=2,
                max_iter=2,
                early_stopping=True,
                validation_fraction=0.3,
                random_state=0,
            ).fit(X, names),
            X,
        ),
        "classifier-bool": (
            RNNClassifier(hidden_size=3, max_iter=2, random_state=0).fit(X, labels > 0),
            X,
        ),
        "regressor-1d": (
            RNNRegressor(
                cell="rnn",
                nonlinearity="relu",
                hidden_size=4,
                max_iter=2,
                random_state=0,
            ).fit(X, labels.astype(float)),
            X,
        ),
        "regressor-2d": (
            RNNRegressor(
                hidden_size=4, max_iter=2, dtype="float64", random_state=0
            ).fit(X, np.c_[labels, -labels]),
            X,
        ),
        "regressor-2d-input": (
            RNNRegressor(hidden_size=4, max_iter=2, random_state=0).fit(
                np.arange(24.0).reshape(6, 4), np.arange(6.0)
            ),
            np.arange(24.0).reshape(6, 4),
        ),
        "tagger-str": (
            RNNTagger(
                hidden_size=4,
                bidirectional=True,
                max_iter=2,
                class_weight="balanced",
                random_state=0,
            ).fit(X, [np.where(x[:, 1] > 0, "up", "down") for x in X]),
            X,
        ),
        "tagger-int": (
            RNNTagger(cell="rnn", hidden_size=4, max_iter=2, random_state=0).fit(
                X, [(x[:, 1] > 0).astype(int) for x in X]
            ),
            X,
        ),
    }


with warnings.catch_warnings():  # two epochs, on purpose
    warnings.simplefilter("ignore", ConvergenceWarning)
    MODELS = _fitted_models()


def _outputs(model, X):
    """Everything the model predicts, as a flat list of arrays."""
    outputs = [model.predict(X)]
    if hasattr(model, "predict_proba"):
        outputs += [model.predict_proba(X), model.predict_log_proba(X)]
    return [np.asarray(a) for o in outputs for a in (o if isinstance(o, list) else [o])]


def _assert_same_model(loaded, original, X):
    assert type(loaded) is type(original)
    assert loaded.get_params() == original.get_params()
    assert loaded.params_.keys() == original.params_.keys()
    for key, value in original.params_.items():
        np.testing.assert_array_equal(loaded.params_[key], value)
        assert loaded.params_[key].dtype == value.dtype
    for attribute in ("n_features_in_", "n_iter_", "t_", "loss_curve_"):
        assert getattr(loaded, attribute) == getattr(original, attribute)
    if hasattr(original, "classes_"):
        np.testing.assert_array_equal(loaded.classes_, original.classes_)
        assert loaded.classes_.dtype.kind == original.classes_.dtype.kind
    for a, b in zip(_outputs(loaded, X), _outputs(original, X), strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


@pytest.mark.parametrize("name", MODELS)
def test_pickle_round_trip_predicts_bit_identically(name):
    model, X = MODELS[name]
    _assert_same_model(pickle.loads(pickle.dumps(model)), model, X)


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_predicts_bit_identically(name, tmp_path):
    model, X = MODELS[name]
    path = tmp_path / "model.npz"
    save_model(model, path)
    _assert_same_model(load_model(path), model, X)


# ------------------------------------------------------- where files go
@pytest.mark.parametrize("name", ["m", "m.rnn", "m.npz"])
@pytest.mark.parametrize("kind", [str, Path])
def test_save_writes_exactly_the_path_given(name, kind, tmp_path):
    """No suffix is appended or required, for str and pathlib.Path alike;
    nothing else (no temporary file) is left in the directory."""
    model, X = MODELS["classifier-str"]
    path = kind(tmp_path / name)
    save_model(model, path)
    assert os.listdir(tmp_path) == [name]
    _assert_same_model(load_model(path), model, X)


def test_save_to_and_load_from_binary_file_objects(tmp_path):
    """An open binary file is written and read at its current position, and
    left open, as np.save and joblib.dump do."""
    model, X = MODELS["regressor-2d"]
    buffer = io.BytesIO()
    buffer.write(b"header")
    save_model(model, buffer)
    assert not buffer.closed
    buffer.seek(len(b"header"))
    _assert_same_model(load_model(buffer), model, X)
    assert not buffer.closed

    path = tmp_path / "model"
    with open(path, "wb") as stream:
        save_model(model, stream)
    with open(path, "rb") as stream:
        _assert_same_model(load_model(stream), model, X)
    assert os.listdir(tmp_path) == ["model"]


def test_save_overwrites_an_existing_file(tmp_path):
    first, _ = MODELS["classifier-int"]
    second, X = MODELS["tagger-int"]
    path = tmp_path / "model.rnn"
    save_model(first, path)
    save_model(second, path)
    assert os.listdir(tmp_path) == ["model.rnn"]
    _assert_same_model(load_model(path), second, X)


def test_save_through_a_symbolic_link_replaces_its_target(tmp_path):
    first, _ = MODELS["classifier-int"]
    second, X = MODELS["tagger-int"]
    target = tmp_path / "target.rnn"
    save_model(first, target)
    link = tmp_path / "link.rnn"
    link.symlink_to(target)
    save_model(second, link)
    assert link.is_symlink()
    _assert_same_model(load_model(target), second, X)


def test_save_to_a_directory_or_an_impossible_place_is_a_clear_error(tmp_path):
    """The error names the path given; nothing is written anywhere. (A
    read-only directory would not do: the tests may run as root.)"""
    model, _ = MODELS["classifier-int"]
    directory = tmp_path / "models"
    directory.mkdir()
    with pytest.raises(IsADirectoryError, match=re.escape(str(directory))):
        save_model(model, directory)
    assert os.listdir(directory) == []
    regular_file = tmp_path / "notes.txt"
    regular_file.write_text("keep me")
    inside_a_file = regular_file / "model.rnn"
    with pytest.raises(NotADirectoryError, match=re.escape(str(inside_a_file))):
        save_model(model, inside_a_file)
    missing = tmp_path / "missing" / "model.rnn"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        save_model(model, missing)
    assert regular_file.read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["models", "notes.txt"]


def test_a_failed_save_leaves_the_existing_file_intact(tmp_path, monkeypatch):
    """A save that fails after writing part of the archive, or before writing
    anything, neither touches the existing file nor leaves a temporary one."""
    model, X = MODELS["classifier-str"]
    path = tmp_path / "model.rnn"
    save_model(model, path)
    original = path.read_bytes()

    def fail_midway(file, **arrays):
        file.write(b"PK\x03\x04 the first bytes of an archive")
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(rnntools.io.np, "savez", fail_midway)
        with pytest.raises(OSError, match="No space left"):
            save_model(MODELS["regressor-1d"][0], path)
    seeded = RNNClassifier(
        hidden_size=2, max_iter=1, random_state=np.random.RandomState(0)
    ).fit(X, model.predict(X))
    with pytest.raises(TypeError, match="random_state"):
        save_model(seeded, path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["model.rnn"]


def test_a_loaded_model_keeps_its_checks_and_can_train_on(tmp_path):
    model, X = MODELS["regressor-2d-input"]
    save_model(model, tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz")
    with pytest.raises(ValueError, match="X has 6 columns"):
        loaded.predict(np.ones((2, 6)))
    classifier, X = MODELS["classifier-str"]
    save_model(classifier, tmp_path / "classifier.npz")
    loaded = load_model(tmp_path / "classifier.npz")
    loaded.set_params(early_stopping=False).partial_fit(X, classifier.predict(X))
    assert loaded.n_iter_ == classifier.n_iter_ + 1


def test_save_model_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save_model(RNNClassifier(), tmp_path / "a.npz")
    with pytest.raises(TypeError, match="rnntools estimators"):
        save_model(object(), tmp_path / "a.npz")
    X = _sequences()
    seeded = RNNClassifier(
        hidden_size=2, max_iter=1, random_state=np.random.RandomState(0)
    )
    seeded.fit(X, np.arange(len(X)) % 2)
    with pytest.raises(TypeError, match="random_state"):
        save_model(seeded, tmp_path / "a.npz")


# ------------------------------------------------------------ tampered files
@pytest.fixture
def saved(tmp_path):
    model, X = MODELS["tagger-str"]
    path = tmp_path / "model.npz"
    save_model(model, path)
    return path, model, X


def _rewrite(path, edit):
    """Rewrite the npz at ``path`` after ``edit(arrays)`` changed its arrays."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    edit(arrays)
    np.savez(path, **arrays)


def _meta(arrays):
    return json.loads(arrays["__meta__"].tobytes().decode())


def _set_meta(arrays, meta, *, resign=False):
    if resign:
        meta.pop("sha256", None)
        data = {k: v for k, v in arrays.items() if k != "__meta__"}
        meta["sha256"] = rnntools.io._digest(data, meta)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def test_truncated_file(saved):
    path, _, _ = saved
    data = path.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError, match="not a valid rnntools model file"):
            load_model(path)


def _member_data_spans(path):
    """Byte ranges of the stored members' contents (arrays and metadata)."""
    spans = []
    with zipfile.ZipFile(path) as archive:
        raw = path.read_bytes()
        for info in archive.infolist():
            header = info.header_offset
            name_length, extra_length = struct.unpack(
                "<HH", raw[header + 26 : header + 30]
            )
            start = header + 30 + name_length + extra_length
            spans.append(range(start, start + info.compress_size))
    return spans


def test_every_garbled_byte_is_rejected_or_harmless(saved):
    """Flip bytes all over the file: each load is a ValueError, or the very
    same model (zipfile never reads some header fields, such as timestamps or
    the local copies of sizes); every byte of the stored arrays and metadata
    is protected."""
    path, model, X = saved
    data = path.read_bytes()
    protected = _member_data_spans(path)
    assert sum(len(span) for span in protected) > len(data) // 2
    expected = _outputs(model, X)
    positions = range(0, len(data), max(1, len(data) // 600))
    for position in positions:
        garbled = bytearray(data)
        garbled[position] ^= 0xFF
        path.write_bytes(bytes(garbled))
        try:
            loaded = load_model(path)
        except ValueError:
            continue
        assert not any(position in span for span in protected), position
        for a, b in zip(_outputs(loaded, X), expected, strict=True):
            np.testing.assert_array_equal(a, b)


def test_edited_array_fails_the_checksum(saved):
    path, _, _ = saved

    def edit(arrays):
        arrays["param/head.bias"] = arrays["param/head.bias"] + 1e-3

    _rewrite(path, edit)
    with pytest.raises(ValueError, match="checksum"):
        load_model(path)


def test_deleted_digest_and_edited_array_fail_the_checksum(saved):
    """Removing the sha256 entry does not switch the check off."""
    path, _, _ = saved

    def edit(arrays):
        meta = _meta(arrays)
        del meta["sha256"]
        _set_meta(arrays, meta)
        arrays["param/head.bias"] = arrays["param/head.bias"] + 1e-3

    _rewrite(path, edit)
    with pytest.raises(ValueError, match="checksum"):
        load_model(path)


def test_edited_hyperparameter_fails_the_checksum(saved):
    path, _, _ = saved

    def edit(arrays):
        meta = _meta(arrays)
        meta["params"]["hidden_size"] = 5
        _set_meta(arrays, meta)

    _rewrite(path, edit)
    with pytest.raises(ValueError, match="checksum"):
        load_model(path)


def test_unknown_format_version(saved):
    path, _, _ = saved

    def edit(arrays):
        meta = _meta(arrays)
        meta["version"] = rnntools.io.FORMAT_VERSION + 1
        _set_meta(arrays, meta, resign=True)

    _rewrite(path, edit)
    with pytest.raises(ValueError, match="format version 2 is not supported"):
        load_model(path)


@pytest.mark.parametrize(
    "edit",
    [
        lambda meta, arrays: meta["fitted"].update(n_features_in_="2"),
        lambda meta, arrays: meta["fitted"].update(n_features_in_=3),
        lambda meta, arrays: meta["fitted"].update(loss_curve_="x"),
        lambda meta, arrays: meta["fitted"].update(unknown_=1),
        lambda meta, arrays: meta["fitted"].pop("n_iter_"),
        lambda meta, arrays: meta["params"].update(hidden_size=-1),
        lambda meta, arrays: meta["params"].update(cell="lstm", nonlinearity="relu"),
        lambda meta, arrays: meta["params"].update(surprise=1),
        lambda meta, arrays: meta.update(params=[1, 2]),
        lambda meta, arrays: meta.update(estimator="Pipeline"),
        lambda meta, arrays: arrays.pop("classes_"),
        lambda meta, arrays: arrays.update(classes_=np.array(["z", "a"])),
        lambda meta, arrays: arrays.pop("param/head.bias"),
        lambda meta, arrays: arrays.update(
            {"param/head.bias": np.full(2, np.nan, dtype=np.float32)}
        ),
        lambda meta, arrays: arrays.update(
            {"param/head.bias": np.zeros(2, dtype=np.float64)}
        ),
    ],
    ids=[
        "n_features_in_-str",
        "n_features_in_-wrong",
        "loss_curve_-str",
        "unknown-attribute",
        "missing-n_iter_",
        "bad-hyperparameter",
        "relu-lstm",
        "unknown-hyperparameter",
        "params-not-a-dict",
        "unknown-estimator",
        "missing-classes",
        "unsorted-classes",
        "missing-parameter",
        "nan-parameter",
        "wrong-dtype",
    ],
)
def test_consistent_checksum_but_inconsistent_content(saved, edit):
    """A file re-signed after an edit (the checksum guards against accidents,
    not attackers) still cannot produce a broken model: a ValueError each."""
    path, _, _ = saved

    def rewrite(arrays):
        meta = _meta(arrays)
        edit(meta, arrays)
        _set_meta(arrays, meta, resign=True)

    _rewrite(path, rewrite)
    with pytest.raises(ValueError, match="not a valid rnntools model file"):
        load_model(path)


def test_files_that_are_not_model_files(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("hello")
    npy = tmp_path / "array.npy"
    np.save(npy, np.arange(3))
    other_npz = tmp_path / "other.npz"
    np.savez(other_npz, a=np.arange(3))
    empty_zip = tmp_path / "empty.npz"
    with zipfile.ZipFile(empty_zip, "w"):
        pass
    for path in (text, npy, other_npz, empty_zip):
        with pytest.raises(ValueError, match="not a valid rnntools model file"):
            load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


class _Payload:
    """Unpickling this would create the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_never_unpickles(tmp_path, monkeypatch):
    """A pickle, and an npz holding a pickled object array, are refused
    without being unpickled; np.load is always called with allow_pickle=False."""
    marker = tmp_path / "marker"
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(rnntools.io.np, "load", spy)

    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(_Payload(marker)))
    object_npz = tmp_path / "objects.npz"
    np.savez(object_npz, __meta__=np.array([_Payload(marker)], dtype=object))
    for path in (pickled, object_npz):
        with pytest.raises(ValueError, match="not a valid rnntools model file"):
            load_model(path)
    assert not os.path.exists(marker)
    assert calls == [False, False]


OLD_FILES = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["classifier", "regressor", "tagger"])
@pytest.mark.parametrize("kind", ["npz", "pkl"])
def test_files_written_before_the_estimators_package_still_load(name, kind):
    """Model files and pickles written by rnntools at c5a1466, when the
    estimators lived in one module ``rnntools/estimators.py``, load and
    predict what they predicted then (written by the script in
    ``tests/data/README.md``)."""
    with np.load(OLD_FILES / "inputs-predictions-c5a1466.npz") as data:
        X = [data[f"arr_{i}"] for i in range(30)]
        expected = data[f"pred_{name}"]
    path = OLD_FILES / f"{name}-c5a1466.{kind}"
    if kind == "npz":
        model = load_model(path)
    else:
        with open(path, "rb") as file:
            model = pickle.load(file)  # our own test file: trusted
    predicted = model.predict(X)
    if name == "tagger":
        predicted = np.concatenate(predicted)
    if name == "regressor":
        # float32 recomputation; another BLAS may round differently (1e-7
        # relative per product, a few products deep).
        np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(predicted, expected)
