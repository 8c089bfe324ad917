"""Save and load fitted estimators as arrays and JSON only — never pickle.

A model file is a NumPy ``.npz`` archive holding the parameters, ``classes_``
or a language model's vocabulary,
and one JSON document (format version, estimator class, hyperparameters,
fitted attributes and a SHA-256 digest of everything else). Loading uses
``np.load(..., allow_pickle=False)`` and builds only the four rnntools
estimator classes from a fixed table, so opening a file received from someone
else cannot run code. A truncated, garbled or edited file is rejected with a
``ValueError``.
"""

import contextlib
import errno
import hashlib
import json
import os
import secrets

import numpy as np
from sklearn.preprocessing import LabelEncoder

from .estimators import RNNClassifier, RNNLanguageModel, RNNRegressor, RNNTagger
from .vocabulary import Vocabulary

FORMAT_NAME = "rnntools-model"
FORMAT_VERSION = 1

_CLASSES = {
    cls.__name__: cls
    for cls in (RNNClassifier, RNNRegressor, RNNTagger, RNNLanguageModel)
}
# A language model's classes_ is its vocabulary, saved as such.
_VOCABULARY_PREFIX = "vocabulary/"
_META = "__meta__"
_PARAM_PREFIX = "param/"
# Fitted attributes kept in the JSON, each with the check its value must pass.
_FITTED_SCALARS = {
    "n_features_in_": lambda v: _is_int(v) and v >= 1,
    "n_iter_": lambda v: _is_int(v) and v >= 0,
    "t_": lambda v: _is_int(v) and v >= 0,
    "best_loss_": lambda v: v is None or _is_number(v),
    "best_validation_score_": lambda v: v is None or _is_number(v),
    "_y_ndim": lambda v: v in (1, 2) and _is_int(v),
    "_n_targets": lambda v: _is_int(v) and v >= 1,
    "_train_steps": lambda v: v is None or (_is_int(v) and v >= 1),
}
_FITTED_LISTS = ("loss_curve_", "validation_scores_")
_REQUIRED = ("n_features_in_", "n_iter_", "t_", "loss_curve_")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _to_json_value(value):
    """Plain JSON for a hyperparameter or fitted scalar, or raise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, dict):  # class_weight: labels may not be strings
        return {
            "__pairs__": [
                [_to_json_value(k), _to_json_value(v)] for k, v in value.items()
            ]
        }
    raise TypeError(
        f"cannot save {type(value).__name__} {value!r} as JSON; for example, pass "
        "random_state as an int or None rather than a RandomState instance."
    )


def _from_json_value(value):
    if isinstance(value, dict) and set(value) == {"__pairs__"}:
        return {k: v for k, v in value["__pairs__"]}
    return value


def _digest(arrays, meta_without_digest):
    sha = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        sha.update(array.tobytes())
    sha.update(json.dumps(meta_without_digest, sort_keys=True).encode())
    return sha.hexdigest()


def save_model(estimator, path):
    """Write a fitted rnntools estimator to ``path`` (arrays and JSON only).

    Parameters
    ----------
    estimator : RNNClassifier, RNNRegressor, RNNTagger or RNNLanguageModel
        A fitted estimator.
    path : str, path-like or binary file object
        Destination. A path is written exactly as given, whatever its suffix
        (no ``.npz`` is appended), through a temporary file in the same
        directory that then replaces it: an existing file is either left
        intact or replaced whole, never left half-written. A file object
        opened for binary writing (``io.BytesIO``, ``open(..., "wb")``) is
        written at its current position and left open.

    Raises
    ------
    IsADirectoryError
        If ``path`` names a directory.
    OSError
        If the file cannot be created there (a missing directory, a parent
        that is not a directory, no permission); the message names ``path``.
    """
    name = type(estimator).__name__
    if name not in _CLASSES or not isinstance(estimator, _CLASSES[name]):
        raise TypeError(f"save_model saves rnntools estimators, not {name}.")
    if not hasattr(estimator, "params_"):
        raise ValueError(f"This {name} is not fitted yet: nothing to save.")
    arrays = {_PARAM_PREFIX + k: v for k, v in estimator.params_.items()}
    vocabulary_meta = None
    if hasattr(estimator, "vocabulary_"):
        vocabulary_arrays, vocabulary_meta = estimator.vocabulary_.to_arrays()
        for key, value in vocabulary_arrays.items():
            arrays[_VOCABULARY_PREFIX + key] = value
    elif hasattr(estimator, "classes_"):
        classes = np.asarray(estimator.classes_)
        if classes.dtype.kind == "O":
            if not all(isinstance(c, str) for c in classes):
                raise TypeError(
                    "classes_ of mixed types cannot be saved without pickle."
                )
            classes = classes.astype(str)
        arrays["classes_"] = classes
    fitted = {
        key: _to_json_value(getattr(estimator, key))
        for key in _FITTED_SCALARS
        if hasattr(estimator, key)
    }
    for key in _FITTED_LISTS:
        value = getattr(estimator, key, None)
        fitted[key] = None if value is None else [float(v) for v in value]
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "estimator": name,
        "params": {k: _to_json_value(v) for k, v in estimator.get_params().items()},
        "fitted": fitted,
        "object_classes": "classes_" in arrays
        and np.asarray(estimator.classes_).dtype.kind == "O",
    }
    if vocabulary_meta is not None:
        meta["vocabulary"] = vocabulary_meta
    meta["sha256"] = _digest(arrays, meta)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    if hasattr(path, "write"):
        np.savez(path, **arrays)
    else:
        _replace_atomically(os.fspath(path), lambda stream: np.savez(stream, **arrays))


def _replace_atomically(path, write):
    """Call ``write(stream)`` on a new temporary file next to ``path``, then
    rename it to ``path``; on any error, remove it and leave ``path`` as it was.

    The temporary file is created with ``os.open(..., 0o666)``, so the model
    file gets the permissions that ``open(path, "wb")`` would give a new file.
    A symbolic link at ``path`` keeps pointing where it did; its target is
    replaced.
    """
    if os.path.isdir(path) or not os.path.basename(path):
        raise IsADirectoryError(
            errno.EISDIR, "cannot save a model file over a directory", path
        )
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(temporary, flags, 0o666)
    except OSError as exc:
        raise type(exc)(
            exc.errno, f"cannot write a model file there ({exc.strerror})", path
        ) from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _invalid(path, why):
    return ValueError(f"{path!s} is not a valid rnntools model file: {why}")


def load_model(path):
    """Read an estimator written by :func:`save_model`.

    Parameters
    ----------
    path : str, path-like or binary file object
        A path, read exactly as given, or a file object opened for binary
        reading, read from its current position.

    Returns
    -------
    estimator : RNNClassifier, RNNRegressor, RNNTagger or RNNLanguageModel
        Predicts exactly as the saved estimator did.

    Raises
    ------
    ValueError
        If the file is truncated, garbled, edited, of another format or of an
        unsupported version.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it is a single .npy array, not an .npz archive")
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:
        # Garbled bytes can make zipfile and numpy raise almost anything
        # (BadZipFile, NotImplementedError for a compression method,
        # RuntimeError for an "encrypted" flag, zlib or lzma errors, EOFError,
        # ValueError from a header...): all of it means "not a model file".
        raise _invalid(
            path, f"it cannot be read as an archive ({type(exc).__name__}: {exc})"
        ) from None
    if _META not in arrays:
        raise _invalid(path, "it has no metadata")
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"its metadata is not JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise _invalid(path, "it is not an rnntools model")
    if meta.get("version") != FORMAT_VERSION:
        raise _invalid(
            path,
            f"format version {meta.get('version')!r} is not supported "
            f"(this rnntools reads version {FORMAT_VERSION})",
        )
    digest = meta.pop("sha256", None)
    if digest != _digest(arrays, meta):
        raise _invalid(path, "its checksum does not match (the file was altered)")
    try:
        return _build(meta, arrays)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise _invalid(path, f"its content is inconsistent ({exc!r})") from None


def _build(meta, arrays):
    """The estimator described by a verified file; raises on any inconsistency."""
    cls = _CLASSES.get(meta.get("estimator"))
    if cls is None:
        raise ValueError(f"unknown estimator {meta.get('estimator')!r}")
    params = {k: _from_json_value(v) for k, v in meta["params"].items()}
    estimator = cls(**params)
    estimator._validate_params()
    estimator.params_ = {
        name[len(_PARAM_PREFIX) :]: value
        for name, value in arrays.items()
        if name.startswith(_PARAM_PREFIX)
    }
    fitted = meta["fitted"]
    required = _REQUIRED
    if cls is RNNLanguageModel:  # reads tokens, not feature vectors
        required = [key for key in _REQUIRED if key != "n_features_in_"]
        estimator.vocabulary_ = Vocabulary.from_arrays(
            {
                name[len(_VOCABULARY_PREFIX) :]: value
                for name, value in arrays.items()
                if name.startswith(_VOCABULARY_PREFIX)
            },
            meta["vocabulary"],
        )
    missing = [key for key in required if key not in fitted]
    if missing:
        raise ValueError(f"fitted attributes {missing} are missing")
    for key, value in fitted.items():
        if key in _FITTED_SCALARS:
            if not _FITTED_SCALARS[key](value):
                raise ValueError(f"{key}={value!r} is not valid")
        elif key in _FITTED_LISTS:
            if value is not None and not (
                isinstance(value, list) and all(_is_number(v) for v in value)
            ):
                raise ValueError(f"{key} must be a list of numbers")
        else:
            raise ValueError(f"unknown fitted attribute {key!r}")
        setattr(estimator, key, value)
    if "classes_" in arrays:
        classes = arrays["classes_"]
        if (
            classes.ndim != 1
            or classes.dtype.kind not in "biufU"
            or not np.array_equal(np.unique(classes), classes)
        ):
            raise ValueError("classes_ must be a sorted 1-D array of unique labels")
        estimator.classes_ = (
            classes.astype(object) if meta.get("object_classes") else classes
        )
        estimator._label_encoder = LabelEncoder()
        estimator._label_encoder.classes_ = estimator.classes_
    elif hasattr(estimator, "class_weight"):
        raise ValueError("classes_ is missing")
    estimator._check_loaded_params()
    return estimator
