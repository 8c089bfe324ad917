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


@needs_no_gpu
def test_without_gpu_raises_saying_so():
    with pytest.raises(RuntimeError, match="found no usable GPU"):
        rnn_forward(**small_call(), device="cuda")


@needs_no_gpu
def test_estimator_without_gpu_raises_saying_so():
    X = np.zeros((4, 3, 2), np.float32)
    with pytest.raises(RuntimeError, match="found no usable GPU"):
        RNNClassifier(device="cuda", max_iter=1).fit(X, [0, 1, 0, 1])
