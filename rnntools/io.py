"""Save and load fitted estimators as arrays and JSON only — never pickle.

A model file is a NumPy ``.npz`` archive holding arrays and one JSON
document: the format's header (format name and version, estimator class,
hyperparameters), the estimator's own arrays and JSON (parameters, fitted
attributes, ``classes_`` or a vocabulary: each estimator hands over and takes
back its state through ``_to_model_file`` / ``_from_model_file``), and a
SHA-256 digest of everything else. This module keeps only the format and its
safety checks: loading uses ``np.load(..., allow_pickle=False)`` and builds
only the rnntools estimator classes of a fixed table, so opening a file
received from someone else cannot run code. A truncated, garbled or edited
file is rejected with a ``ValueError``.
"""

import contextlib
import errno
import hashlib
import json
import os
import secrets

import numpy as np

from ._json import from_json_value, to_json_value
from .estimators import (
    RNNCaptioner,
    RNNClassifier,
    RNNLanguageModel,
    RNNRegressor,
    RNNSeq2Seq,
    RNNTagger,
)

FORMAT_NAME = "rnntools-model"
FORMAT_VERSION = 1

_CLASSES = {
    cls.__name__: cls
    for cls in (
        RNNClassifier,
        RNNRegressor,
        RNNTagger,
        RNNLanguageModel,
        RNNSeq2Seq,
        RNNCaptioner,
    )
}
_META = "__meta__"
# The keys of the JSON document that belong to the format; the estimator's
# own document (fitted attributes, classes, vocabulary) fills the rest.
_HEADER = ("format", "version", "estimator", "params", "sha256")


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
        raise TypeError(
            f"save_model saves rnntools estimators, not {name}. A Pipeline (with "
            "a SequenceScaler, say) or any other estimator cannot be written "
            "without pickle: use pickle or joblib.dump, and load such files only "
            "from sources you trust."
        )
    if not hasattr(estimator, "params_"):
        raise ValueError(f"This {name} is not fitted yet: nothing to save.")
    arrays, document = estimator._to_model_file()
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "estimator": name,
        "params": {k: to_json_value(v) for k, v in estimator.get_params().items()},
        **document,
    }
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
    params = {k: from_json_value(v) for k, v in meta["params"].items()}
    estimator = cls(**params)
    estimator._validate_params()
    estimator._from_model_file(
        arrays, {key: value for key, value in meta.items() if key not in _HEADER}
    )
    return estimator
