"""Thread-pool control for the kernels.

Numba's ``np.dot`` calls SciPy's OpenBLAS, NumPy has its own OpenBLAS, and
Numba runs ``prange`` loops on its own OpenMP pool. On a machine with few
cores, two pools that both spin-wait for work fight for the same cores; we
measured 100-1000x slowdowns. So while a kernel runs, every BLAS library in
the process is limited to one thread and all parallelism comes from Numba's
pool, which partitions the batch itself. The BLAS limits are restored when the
last concurrent kernel call returns.
"""

import threading
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_active_calls = 0
_blas_limit = None
_controller = None


def _blas_controller():
    global _controller
    if _controller is None:
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


@contextmanager
def kernel_threads():
    """Limit BLAS to one thread for the duration; reentrant and thread-safe."""
    global _active_calls, _blas_limit
    with _lock:
        if _active_calls == 0:
            _blas_limit = _blas_controller().limit(limits=1)
        _active_calls += 1
    try:
        yield
    finally:
        with _lock:
            _active_calls -= 1
            if _active_calls == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None
