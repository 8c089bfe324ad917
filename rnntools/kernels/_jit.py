"""Compilation options shared by every kernel.

``cache=True`` makes Numba write compiled code next to the sources, or, when
the package is read-only, under ``NUMBA_CACHE_DIR`` or the user's cache
directory. When none of these is writable Numba raises at decoration time,
which would make ``import rnntools`` fail; we probe once and compile without
a cache instead (each process then pays the compile time again).
"""

from numba import njit


def _cache_available():
    def probe():
        return 0

    try:
        njit(cache=True)(probe)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return False
    return True


#: Whether compiled kernels are cached on disk.
CACHE = _cache_available()

#: Options of every ``@njit`` kernel. ``error_model="numpy"``: a float division
#: does not test for zero (that branch blocks vectorisation);
#: ``fastmath={"contract"}``: fused multiply-add only (no reassociation, no
#: finite-math assumptions, so results stay IEEE-faithful); ``nogil``: blocks
#: of sequences run on several threads at once.
KERNEL_OPTIONS = {
    "cache": CACHE,
    "fastmath": {"contract"},
    "error_model": "numpy",
    "nogil": True,
}

#: Options of the ``@overload`` helpers compiled into the kernels.
OVERLOAD_OPTIONS = {"cache": CACHE}
