"""Compilation options shared by every kernel, and the on-disk cache.

``cache=True`` makes Numba write compiled code next to the sources, or, when
the package is read-only, under ``NUMBA_CACHE_DIR`` or the user's cache
directory. When none of these is writable Numba raises at decoration time,
which would make ``import rnntools`` fail; we probe once and compile without
a cache instead (each process then pays the compile time again).

Numba checks a cached kernel against its own source file only: a kernel in
``cpu.py`` cached before an edit to a helper in ``activations.py`` would
keep running the old helper (we hit exactly this: a stale kernel wrote past a
scratch buffer whose size had changed). So a digest of all kernel sources is
kept next to the cache, and the cache is emptied when it changes. The digest
also covers :data:`L2_CACHE_BYTES`, which the kernels compile in as a
constant; the SIMD width they also compile in (:data:`SIMD_VECTOR_BYTES`)
follows the CPU features, by which Numba keys every cached kernel. (A cache
outside the package, under ``NUMBA_CACHE_DIR``, is keyed by Numba with the
CPU's name and features only: a machine of the same CPU name but another L2
would reuse its kernels, tuned for the other L2: slower at worst, never
different numbers.)
"""

import hashlib
from pathlib import Path

import llvmlite.binding as llvm
from numba import config, njit, types
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic

_KERNEL_DIR = Path(__file__).parent
_CACHE_DIR = _KERNEL_DIR / "__pycache__"
_STAMP = _CACHE_DIR / "rnntools-kernels.sha256"
_SYSFS_CACHES = Path("/sys/devices/system/cpu/cpu0/cache")


def _l2_cache_bytes(caches=_SYSFS_CACHES, default=2**20):
    """Bytes of the first CPU's L2 cache, as Linux's sysfs describes it
    (``index*/level``, ``type``, ``size`` such as ``2048K``); ``default``
    where it does not (other systems, containers that hide it)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    try:
        for index in sorted(caches.glob("index*")):
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            if level == "2" and kind in ("Unified", "Data"):
                size = (index / "size").read_text().strip()
                if size[-1:] in units:
                    return int(size[:-1]) * units[size[-1]]
                return int(size)
    except (OSError, ValueError):
        pass
    return default


#: One core's L2 cache in bytes (see :func:`_l2_cache_bytes`).
L2_CACHE_BYTES = _l2_cache_bytes()


def _simd(features=None):
    """``(vector bytes, vector registers)`` of the SIMD unit the kernels are
    compiled for: AVX-512 ``(64, 32)``, AVX2 with FMA ``(32, 16)``, anything
    else ``(16, 16)``.

    ``features`` is LLVM's comma-separated list (``+avx2,-avx512f,...``); by
    default the one Numba compiles for: ``NUMBA_CPU_FEATURES`` if set, else
    the host's. The register tiles of :mod:`.row_invariant` are sized by it:
    tiles sized for AVX-512's 32 ``zmm`` registers spill on a CPU with 16
    ``ymm`` ones (AVX2 only: one thread of a Zen 3 EPYC ran float32 products
    at 23-28 GFLOP/s against OpenBLAS's 36-80).
    """
    if features is None:
        features = config.CPU_FEATURES
        if features is None:
            features = llvm.get_host_cpu_features().flatten()
    flags = set(features.split(","))
    if "+avx512f" in flags:
        return 64, 32
    if "+avx2" in flags and "+fma" in flags:
        return 32, 16
    return 16, 16


#: Bytes of one SIMD vector and the number of vector registers (see
#: :func:`_simd`).
SIMD_VECTOR_BYTES, SIMD_REGISTERS = _simd()


def _clear_stale_cache():
    """Delete the in-tree Numba cache if any kernel source changed since."""
    sha = hashlib.sha256()
    for source in sorted(_KERNEL_DIR.glob("*.py")):
        sha.update(source.name.encode())
        sha.update(source.read_bytes())
    sha.update(f"L2 {L2_CACHE_BYTES}".encode())
    digest = sha.hexdigest()
    try:
        if _STAMP.read_text() == digest:
            return
    except OSError:
        pass
    try:
        _CACHE_DIR.mkdir(exist_ok=True)
        for stale in (*_CACHE_DIR.glob("*.nbi"), *_CACHE_DIR.glob("*.nbc")):
            stale.unlink()
        _STAMP.write_text(digest)
    except OSError:  # read-only install: sources cannot change under us
        pass


def _cache_available():
    def probe():
        return 0

    try:
        njit(cache=True)(probe)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return False
    return True


_clear_stale_cache()

#: Whether compiled kernels are cached on disk.
CACHE = _cache_available()

#: Options of every ``@njit`` kernel. ``error_model="numpy"``: a float division
#: does not test for zero (that branch blocks vectorisation);
#: ``fastmath={"contract"}``: fused multiply-add only (no reassociation, no
#: finite-math assumptions, so results stay IEEE-faithful); ``nogil``: blocks
#: of sequences run on several threads at once; ``no_cfunc_wrapper``: Numba
#: makes, optimises and compiles a C-callable wrapper of every function for
#: its use as a first-class function value, which no kernel is (first LSTM
#: fit + predict with an empty cache, five alternated rounds: 5.53-5.89 s
#: with the wrappers, 5.27-5.54 s without).
KERNEL_OPTIONS = {
    "cache": CACHE,
    "fastmath": {"contract"},
    "error_model": "numpy",
    "nogil": True,
    "no_cfunc_wrapper": True,
}

#: Options of the ``@overload`` helpers compiled into the kernels.
OVERLOAD_OPTIONS = {"cache": CACHE, "no_cfunc_wrapper": True}


class _HelperDispatcher(CPUDispatcher):
    """The dispatcher of a :func:`helper`: compiled into the kernels that call
    it, never called from Python."""

    def __call__(self, *args, **kwargs):
        # Compiled without a Python wrapper: Numba's own call from Python
        # would jump to a null entry point.
        raise TypeError(
            f"{self.py_func.__module__}.{self.py_func.__qualname__} is compiled "
            "only into rnntools' kernels (it has no Python entry point); call "
            "it from an @njit function."
        )


def helper(function):
    """``@njit(**KERNEL_OPTIONS)`` for a function only kernels call, compiled
    without the wrapper that lets Python call it.

    Numba compiles a Python wrapper (argument unboxing, return boxing) for
    every ``@njit`` function, and optimises and compiles it to machine code,
    although a kernel calls its callees directly. Without those wrappers,
    the first LSTM classifier ``fit`` + ``predict`` with an empty cache took
    4.71-4.87 s against 4.96-5.14 s (Xeon VM, four alternated rounds; about
    25 ms a function), and a language model's first ``fit``, ``predict`` and
    ``generate`` 12.5-13.2 s against 13.3-13.5 s. Called from Python, the
    function raises ``TypeError``.
    """
    if config.DISABLE_JIT:
        return function
    options = {key: value for key, value in KERNEL_OPTIONS.items() if key != "cache"}
    dispatcher = _HelperDispatcher(
        py_func=function,
        locals={},
        targetoptions={
            **options,
            "no_cpython_wrapper": True,
            "nopython": True,
            "boundscheck": None,
        },
    )
    if CACHE:
        dispatcher.enable_caching()
    return dispatcher


#: The LLVM function attribute that :func:`wide_vectors` sets.
WIDE_VECTORS_ATTRIBUTE = '"prefer-vector-width"="512"'


@intrinsic
def wide_vectors(typingctx):
    """Let LLVM vectorise the calling kernel's loops with 512-bit vectors.

    Call it first in a kernel (``wide_vectors()``): it adds the function
    attribute ``"prefer-vector-width"="512"`` (clang's
    ``-mprefer-vector-width=512``) to the function being compiled. LLVM's
    tuning for Intel's AVX-512 cores (``rocketlake`` here, Skylake-SP,
    Ice Lake, Sapphire Rapids) prefers 256-bit vectors, so the activations'
    loops ran on ``ymm`` registers even though the register tiles already run
    on ``zmm``. Where 512-bit vectors are not legal (AVX2 only) LLVM keeps the
    widest legal ones, and the per-lane arithmetic is the same at any width:
    the bits do not change. Measured on one thread of the Xeon VM of
    2026-11-30: the per-element pass of an LSTM decoding step, 250 rows x 128
    cells, 3.1 -> 2.4 ns per cell; LSTM inference (``rnn_forward``, one
    thread, four alternated rounds) 32x50x32x64 1.16-1.18 -> 1.05-1.10 ms,
    64x100x64x128 12.0-12.9 -> 10.8-11.7 ms, 128x100x128x256 77.8-86.8 ->
    74.0-83.3 ms.

    llvmlite only lets known attribute names into a function's attribute
    set, and string attributes are not among them: the attribute goes in
    through the set itself. Should a later llvmlite refuse that, the kernel
    compiles without it (slower, same results).
    """

    def codegen(context, builder, signature, args):
        try:
            set.add(builder.function.attributes, WIDE_VECTORS_ATTRIBUTE)
        except TypeError:  # not a set any more: compile without it
            pass
        return context.get_dummy_value()

    return types.void(), codegen
