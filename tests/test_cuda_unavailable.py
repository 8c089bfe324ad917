"""Without a usable GPU, ``device="cuda"`` raises a ``RuntimeError`` saying why,
and importing rnntools never needs CUDA."""

import subprocess
import sys

import numpy as np
import pytest

import rnntools
from rnntools import RNNClassifier, _devices
from rnntools.functional import rnn_forward


def cuda_usable():
    try:
        from numba import cuda
    except ImportError:
        return False
    return cuda.is_available()


needs_no_gpu = pytest.mark.skipif(
    cuda_usable(), reason="a GPU (or the CUDA simulator) is usable here"
)


def small_call():
    params = rnntools.init_params("lstm", 3, 4, random_state=0)
    return {"x": np.zeros((2, 3, 3), np.float32), "params": params, "cell": "lstm"}


def test_import_does_not_load_numba_cuda():
    code = "import sys, rnntools; print('numba.cuda' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_without_numba_cuda_raises_with_install_hint(monkeypatch):
    _devices.cuda_kernels.cache_clear()  # forget a CUDA found earlier
    monkeypatch.setitem(sys.modules, "numba.cuda", None)  # import now fails
    try:
        with pytest.raises(RuntimeError, match=r"needs numba-cuda.*rnntools\[cuda\]"):
            rnn_forward(**small_call(), device="cuda")
    finally:
        _devices.cuda_kernels.cache_clear()


@pytest.mark.parametrize("failing_module", ["numba.cuda", "numba.cuda.np.arrayobj"])
def test_broken_numba_cuda_raises_saying_so(monkeypatch, failing_module):
    """An install that fails on import (numba-cuda 0.30.4 under NumPy 2.5
    raises AttributeError for np.row_stack) is named, not passed through.

    On an H200 machine ``numba.cuda`` itself imported and the error came from
    the NumPy support that numba-cuda loads at the first compilation
    (``numba.cuda.np.arrayobj``): that must be caught before any launch too.
    """
    real_import = _devices.importlib.import_module

    def broken(name, *args):
        if name == failing_module:
            raise AttributeError("module 'numpy' has no attribute 'row_stack'")
        return real_import(name, *args)

    _devices.cuda_kernels.cache_clear()
    monkeypatch.setattr(_devices.importlib, "import_module", broken)
    try:
        message = r"could not import numba.cuda.*row_stack"
        with pytest.raises(RuntimeError, match=message):
            rnn_forward(**small_call(), device="cuda")
    finally:
        _devices.cuda_kernels.cache_clear()


@needs_no_gpu
def test_without_gpu_raises_saying_so():
    with pytest.raises(RuntimeError, match="found no usable GPU"):
        rnn_forward(**small_call(), device="cuda")


@needs_no_gpu
def test_estimator_without_gpu_raises_saying_so():
    X = np.zeros((4, 3, 2), np.float32)
    with pytest.raises(RuntimeError, match="found no usable GPU"):
        RNNClassifier(device="cuda", max_iter=1).fit(X, [0, 1, 0, 1])
