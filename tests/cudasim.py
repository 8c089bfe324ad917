"""Numba's CUDA simulator, made safe for finely interleaved threads and quicker.

The simulator runs every GPU thread of a block as an OS thread, and its block
manager polls them in a loop that holds the GIL. Under CPython's default
switch interval (5 ms) the simulated threads mostly wait for that loop: a
test that trains a 2-layer bidirectional GRU classifier with dropout on the
simulator took 82 s, and the whole simulator run of tests/test_cuda.py 12.7
minutes on 2 cores. :func:`prepare` shortens the interval to
:data:`SWITCH_INTERVAL`: 24 s and 4.8 minutes. That also interleaves the
simulated threads far more finely, so a kernel that reads shared or global
memory before another thread has written it is more likely to be caught.

Finer interleaving exposes a race in the simulator itself (numba-cuda 0.30):
``cuda.shared.array`` looks the block's array up by the calling line and
creates it if it is missing, in two steps, so two threads reaching the line
together can each create their own "shared" array and never see each
other's writes. At a 50 µs interval that failed 5 of 71 CUDA tests in one
run, none with the lookup under a lock (:func:`_atomic_shared_array`), which
:func:`prepare` installs first. Where the simulator's internals are not the
expected ones, nothing is changed.
"""

import sys
import threading

import numpy as np

#: Seconds between the interpreter's thread switches during simulator runs:
#: 0.2-0.5 ms ran three of the slowest simulator tests in 47-49 s, against
#: 52 s at 1 ms or 0.1 ms, 59 s at 20 µs, 64 s at 2 ms and 130 s at CPython's
#: default 5 ms.
SWITCH_INTERVAL = 2e-4

_lock = threading.Lock()


def _atomic_shared_array(self, shape, dtype, alignment=None):
    """``FakeCUDAShared.array`` with the look-up and the creation of the
    block's array as one step under a lock (as in numba-cuda 0.30, the array
    is identified by the calling line: see that class's docstring)."""
    from numba.core import types
    from numba.np import numpy_support

    if shape == 0 or alignment is not None:  # dynamic shared memory; errors
        return _original_shared_array(self, shape, dtype, alignment)
    if isinstance(dtype, types.Type):
        dtype = numpy_support.as_dtype(dtype)
    frame = sys._getframe(1)
    caller = (frame.f_code.co_filename, frame.f_lineno)
    with _lock:
        array = self._allocations.get(caller)
        if array is None:
            array = self._allocations[caller] = np.empty(shape, dtype)
    return array


_original_shared_array = None


def prepare():
    """Install :func:`_atomic_shared_array` and the shorter switch interval.

    Returns
    -------
    prepared : bool
        False where the simulator is not the one this module knows (then
        neither is changed).
    """
    global _original_shared_array
    from numba.cuda.simulator import kernelapi

    shared = getattr(kernelapi, "FakeCUDAShared", None)
    if shared is None or not hasattr(shared, "array"):
        return False
    if _original_shared_array is None:
        _original_shared_array = shared.array
        shared.array = _atomic_shared_array
    sys.setswitchinterval(SWITCH_INTERVAL)
    return True
