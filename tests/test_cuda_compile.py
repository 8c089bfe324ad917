"""Every CUDA kernel compiles to PTX for a real GPU, with no GPU present.

The simulator runs kernels as plain Python and accepts code that the GPU
compiler rejects (untyped shared arrays, Python objects, float64 creeping into
float32 code); ``cuda.compile_ptx`` runs the real compiler. It needs
``numba-cuda[cu12]`` (the NVVM toolkit wheels), which the ``test`` extra
installs. :data:`rnntools.kernels.cuda.SIGNATURES` lists the argument types of
every launch; ``test_cuda.py`` checks under the simulator that the drivers
launch with exactly those.
"""

import os
import re
import types as pytypes

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
    reason="the simulator has no compiler",
)

cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

from rnntools.kernels import cuda as cuda_kernels  # noqa: E402

# The H100/H200 that the project's device machines lend.
COMPUTE_CAPABILITY = (9, 0)
# Kernels that compute in float64 on purpose: the sum of squares behind
# gradient clipping and weight decay accumulates in float64, so a norm over
# millions of float32 values keeps its accuracy.
FLOAT64_BY_DESIGN = {"_reduce_flat"}
CASES = [
    pytest.param(dtype, name, signature, id=f"{name}-{dtype}-{index}")
    for dtype, table in cuda_kernels.SIGNATURES.items()
    for name, signatures in table.items()
    for index, signature in enumerate(signatures)
]


@pytest.fixture
def no_device_query(monkeypatch):
    """Device functions called by a kernel compile for the current device's
    compute capability, which asks the driver; answer for the target GPU."""
    from numba.cuda import dispatcher

    device = pytypes.SimpleNamespace(compute_capability=COMPUTE_CAPABILITY)
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: device)


@pytest.mark.parametrize("dtype, name, signature", CASES)
def test_kernel_compiles_to_ptx(dtype, name, signature, no_device_query):
    kernel = getattr(cuda_kernels, name).py_func
    try:
        ptx, _ = cuda.compile_ptx(kernel, signature, cc=COMPUTE_CAPABILITY)
    except Exception as exc:  # NVVM missing is an environment problem
        if "libNVVM" in str(exc) or "NVVM" in type(exc).__name__:
            pytest.skip(f"CUDA toolkit wheels not installed: {exc}")
        raise
    assert ".visible .entry" in ptx
    if dtype == "float32" and name not in FLOAT64_BY_DESIGN:
        # No instruction in double precision: typed constants kept float32.
        assert not re.search(r"\.f64\b", ptx), "float64 arithmetic in float32 code"


def test_every_kernel_has_signatures():
    kernels = {
        name
        for name in dir(cuda_kernels)
        if type(getattr(cuda_kernels, name)).__name__ == "CUDADispatcher"
        and not getattr(cuda_kernels, name).targetoptions.get("device")
    }
    assert kernels == set(cuda_kernels.SIGNATURES["float32"])
    assert kernels == set(cuda_kernels.SIGNATURES["float64"])
