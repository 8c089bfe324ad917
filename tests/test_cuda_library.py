"""Which library runs the CUDA backend's large products and bias sums.

``rnntools.kernels.cuda._cupy`` picks cuBLAS (through CuPy) where CuPy can use
the GPU, else the Numba GEMM; these tests fake CuPy, so they run without a GPU
(the real cuBLAS path is compared with the Numba GEMM in ``test_cuda.py`` on a
GPU).
"""

import sys
from types import SimpleNamespace

import pytest

pytest.importorskip("numba.cuda")
from rnntools.kernels import cuda as cuda_kernels


def fake_cupy(device_count):
    """A stand-in for the ``cupy`` module: ``getDeviceCount`` returns
    ``device_count`` or raises it."""

    def get_device_count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count

    runtime = SimpleNamespace(getDeviceCount=get_device_count)
    device = SimpleNamespace(get_cublas_handle=lambda: 1)
    return SimpleNamespace(
        __version__="99.0", cuda=SimpleNamespace(runtime=runtime, device=device)
    )


@pytest.fixture
def selection(monkeypatch):
    """A fresh choice (``_cupy`` is cached), outside the simulator."""
    monkeypatch.setattr(cuda_kernels.config, "ENABLE_CUDASIM", False)
    monkeypatch.delenv("RNNTOOLS_CUBLAS", raising=False)
    cuda_kernels._cupy.cache_clear()
    yield monkeypatch
    cuda_kernels._cupy.cache_clear()


def test_cupy_that_can_use_the_gpu_runs_the_products(selection):
    cupy = fake_cupy(1)
    selection.setitem(sys.modules, "cupy", cupy)
    assert cuda_kernels._cupy() is cupy
    assert cuda_kernels.products_library() == "cuBLAS (CuPy 99.0)"


def test_environment_switch_turns_cublas_off(selection):
    selection.setitem(sys.modules, "cupy", fake_cupy(1))
    selection.setenv("RNNTOOLS_CUBLAS", "0")
    assert cuda_kernels._cupy() is None
    assert cuda_kernels.products_library() == "Numba GEMM"


def test_simulator_never_uses_cupy(selection):
    selection.setitem(sys.modules, "cupy", fake_cupy(1))
    selection.setattr(cuda_kernels.config, "ENABLE_CUDASIM", True)
    assert cuda_kernels._cupy() is None


def test_without_cupy_the_numba_gemm_runs_silently(selection, recwarn):
    selection.setitem(sys.modules, "cupy", None)  # import cupy now fails
    assert cuda_kernels._cupy() is None
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_cupy_that_cannot_use_the_gpu_warns_and_falls_back(selection):
    broken = fake_cupy(RuntimeError("cudaErrorInsufficientDriver"))
    selection.setitem(sys.modules, "cupy", broken)
    with pytest.warns(RuntimeWarning, match=r"CuPy 99.0 cannot run cuBLAS.*Driver"):
        assert cuda_kernels._cupy() is None
