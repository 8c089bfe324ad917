"""Save and load fitted estimators as arrays and JSON only — never pickle.

A model file is a NumPy ``.npz`` archive holding the parameters, ``classes_``
and one JSON document (format version, estimator class, hyperparameters,
fitted attributes and a SHA-256 digest of everything else). Loading uses
``np.load(..., allow_pickle=False)`` and builds only the three rnntools
estimator classes from a fixed table, so opening a file received from someone
else cannot run code. A truncated, garbled or edited file is rejected with a
``ValueError``.
"""

import hashlib
import json
import zipfile

import numpy as np
from sklearn.preprocessing import LabelEncoder

from .estimators import RNNClassifier, RNNRegressor, RNNTagger

FORMAT_NAME = "rnntools-model"
FORMAT_VERSION = 1

_CLASSES = {cls.__name__: cls for cls in (RNNClassifier, RNNRegressor, RNNTagger)}
_META = "__meta__"
_PARAM_PREFIX = "param/"
_FITTED_SCALARS = (
    "n_features_in_",
    "n_iter_",
    "t_",
    "best_loss_",
    "best_validation_score_",
    "_y_ndim",
    "_n_targets",
)
_FITTED_LISTS = ("loss_curve_", "validation_scores_")


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
    estimator : RNNClassifier, RNNRegressor or RNNTagger
        A fitted estimator.
    path : str or path-like
        Destination; NumPy appends ``.npz`` if it has no suffix.
    """
    name = type(estimator).__name__
    if name not in _CLASSES or not isinstance(estimator, _CLASSES[name]):
        raise TypeError(f"save_model saves rnntools estimators, not {name}.")
    if not hasattr(estimator, "params_"):
        raise ValueError(f"This {name} is not fitted yet: nothing to save.")
    arrays = {_PARAM_PREFIX + k: v for k, v in estimator.params_.items()}
    if hasattr(estimator, "classes_"):
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
        "object_classes": hasattr(estimator, "classes_")
        and np.asarray(estimator.classes_).dtype.kind == "O",
    }
    meta["sha256"] = _digest(arrays, meta)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def _invalid(path, why):
    return ValueError(f"{path!s} is not a valid rnntools model file: {why}")


def load_model(path):
    """Read an estimator written by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    estimator : RNNClassifier, RNNRegressor or RNNTagger
        Predicts exactly as the saved estimator did.

    Raises
    ------
    ValueError
        If the file is truncated, garbled, edited, of another format or of an
        unsupported version.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise _invalid(path, f"it cannot be read as an archive ({exc})") from None
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
    cls = _CLASSES.get(meta.get("estimator"))
    if cls is None:
        raise _invalid(path, f"unknown estimator {meta.get('estimator')!r}")

    params = {k: _from_json_value(v) for k, v in meta["params"].items()}
    try:
        estimator = cls(**params)
        estimator._validate_params()
    except (TypeError, ValueError) as exc:
        raise _invalid(path, f"its hyperparameters are invalid ({exc})") from None
    estimator.params_ = {
        name[len(_PARAM_PREFIX) :]: value
        for name, value in arrays.items()
        if name.startswith(_PARAM_PREFIX)
    }
    for key, value in meta["fitted"].items():
        if key in _FITTED_SCALARS or key in _FITTED_LISTS:
            setattr(estimator, key, value)
    if "classes_" in arrays:
        classes = arrays["classes_"]
        estimator.classes_ = (
            classes.astype(object) if meta.get("object_classes") else classes
        )
        estimator._label_encoder = LabelEncoder()
        estimator._label_encoder.classes_ = estimator.classes_
    try:
        estimator._check_loaded_params()
    except (AttributeError, ValueError) as exc:
        raise _invalid(path, str(exc)) from None
    return estimator
