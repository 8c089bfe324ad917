"""Where an array lives: host (NumPy) or a CUDA device, without importing CUDA.

The estimators keep the network's parameters, gradients and optimizer state on
the GPU while ``fit`` runs with ``device="cuda"``; the few array operations
their training loop needs (copy, assign, sum of squares, scale, finiteness)
dispatch here on where each array lives. ``numba.cuda`` is imported only when
a device array is actually met, so ``import rnntools`` never needs CUDA.
"""

import functools
import importlib

import numpy as np


def on_device(value):
    """Whether ``value`` is a CUDA device array (not a NumPy array).

    Numba's device arrays, CuPy's and others expose
    ``__cuda_array_interface__``; the CUDA simulator's fake device arrays
    expose only ``copy_to_host``.
    """
    if isinstance(value, np.ndarray):
        return False
    return hasattr(value, "__cuda_array_interface__") or hasattr(value, "copy_to_host")


@functools.cache
def cuda_kernels():
    """:mod:`rnntools.kernels.cuda`, or a ``RuntimeError`` saying why CUDA
    cannot be used (numba-cuda missing or broken, or no driver or GPU)."""
    try:
        cuda = importlib.import_module("numba.cuda")
        # numba-cuda loads its NumPy support lazily, at the first kernel
        # compilation; loading it now turns an install that cannot run here
        # into the error below rather than a failure inside the first launch.
        importlib.import_module("numba.cuda.np.arrayobj")
    except ImportError as exc:
        raise RuntimeError(
            "device='cuda' needs numba-cuda, which is not installed: "
            "pip install 'rnntools[cuda]' (or numba-cuda[cu12])."
        ) from exc
    except Exception as exc:  # an install that fails on import
        # Seen: numba-cuda 0.30.4 under NumPy 2.5, which removed np.row_stack
        # (on a GPU machine, numba.cuda imported and failed in arrayobj).
        raise RuntimeError(
            f"device='cuda' could not import numba.cuda ({type(exc).__name__}: "
            f"{exc}); the installed numba-cuda may not support NumPy "
            f"{np.__version__}. Install a numba-cuda release that does, or use "
            "device='cpu'."
        ) from exc
    if not cuda.is_available():
        raise RuntimeError(
            "device='cuda' found no usable GPU: numba-cuda is installed, but "
            "numba.cuda.is_available() is False (no NVIDIA driver or no CUDA "
            "device; numba.cuda.detect() prints details). Use device='cpu'."
        )
    from .kernels import cuda as kernels

    return kernels


def to_device(array):
    """A device copy of a host array."""
    return cuda_kernels().to_device(array)


def to_host(value):
    """``value`` as a host array: copied from the device, or itself."""
    return value.copy_to_host() if on_device(value) else value


def copy(array):
    """A copy on the same side."""
    return cuda_kernels().copy(array) if on_device(array) else array.copy()


def assign(destination, source):
    """``destination[...] = source`` on the same side."""
    if on_device(destination):
        destination.copy_to_device(source)
    else:
        destination[...] = source


def sum_squares(array):
    """``float(sum(array ** 2))`` (float64 accumulation on the device).

    On the host a BLAS dot product of the flattened array with itself: no
    temporary (``np.sum(array * array)`` took 13 us for 512 x 128 float32
    gradients, this 2.5).
    """
    if on_device(array):
        return cuda_kernels().sum_squares(array)
    flat = array.reshape(-1)
    return float(np.dot(flat, flat))


def scale(array, factor):
    """``array *= factor`` in place."""
    if on_device(array):
        cuda_kernels().scale(array, factor)
    else:
        array *= factor


def all_finite(arrays):
    """Whether no array holds NaN or infinity."""
    for array in arrays:
        if on_device(array):
            if not cuda_kernels().all_finite(array):
                return False
        elif not np.isfinite(array).all():
            return False
    return True
