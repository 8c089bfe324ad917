"""Threads: how many, where they run, and BLAS kept out of their way.

Sequences never interact inside a network, so :mod:`rnntools.functional`
splits a batch into blocks and runs each on its own thread (the kernels
release the GIL). Numba's ``np.dot`` calls SciPy's OpenBLAS and NumPy has its
own; a BLAS pool that spin-waits next to our threads fights them for the
cores (we measured 100-1000x slowdowns on 2 cores). So while kernels run,
every BLAS library in the process is limited to one thread; the limits are
restored when the last concurrent call returns.

The number of threads is ``RNNTOOLS_NUM_THREADS`` if set, else the number of
CPUs this process may run on. They are our own (:class:`_Worker`): each task
is handed over through a lock, and an idle worker spins for about 100 us
before it sleeps, so back-to-back calls (every minibatch, every layer) do
not wait for a sleeping core to wake.
"""

import itertools
import os
import threading
from contextlib import contextmanager

import numpy as np
from threadpoolctl import ThreadpoolController

# Below this many flops per thread, a thread hand-off costs more than it saves
# in a NumPy product (as for the recurrent kernels, see functional.py).
_MIN_MATMUL_FLOPS_PER_THREAD = 15_000_000

_lock = threading.Lock()
_active_calls = 0
_blas_limits = []  # (library, threads to restore)
_libraries = None
_idle_workers = []  # _Worker threads waiting for a task
_workers_pid = None  # the process that started them (a fork loses them)


def num_threads():
    """Number of threads rnntools uses (``RNNTOOLS_NUM_THREADS`` or the CPUs)."""
    value = os.environ.get("RNNTOOLS_NUM_THREADS")
    if value is not None:
        try:
            threads = int(value)
        except ValueError:
            raise ValueError(
                f"RNNTOOLS_NUM_THREADS must be a positive integer, got {value!r}."
            ) from None
        if threads < 1:
            raise ValueError(
                f"RNNTOOLS_NUM_THREADS must be a positive integer, got {value!r}."
            )
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Worker:
    """A thread that runs one task at a time, handed over through two locks.

    A hand-off costs a lock release and a wake-up each way (11 us for a round
    trip between busy threads here), where
    :class:`concurrent.futures.ThreadPoolExecutor` took 61 us for two no-op
    tasks (its queue, futures and condition variables). Both sides first
    watch a flag (:func:`.kernels.spin.wait_for_flag`, GIL released) before
    they block: a sleeping vCPU wakes slowly. ``_flags[0]``: a task is
    posted; ``_flags[1]``: its outcome is ready, set by the worker once it
    has given up the GIL (:func:`.kernels.spin.set_flag_and_wait`, which
    says why and what it saved).
    """

    def __init__(self):
        from .kernels import spin

        self._spin = spin
        self._flags = np.zeros(2, dtype=np.int64)
        self._start = threading.Lock()
        self._start.acquire()
        self._done = threading.Lock()
        self._done.acquire()
        self._task = None
        self._outcome = None
        threading.Thread(target=self._serve, name="rnntools", daemon=True).start()

    def _serve(self):
        spin = self._spin
        spin.wait_for_flag(self._flags, 0, spin.SPINS)
        while True:
            self._start.acquire()
            self._flags[0] = 0
            function, item = self._task
            self._task = None
            try:
                self._outcome = (True, function(item))
            except BaseException as exc:  # re-raised in the caller's thread
                self._outcome = (False, exc)
            self._done.release()
            # The outcome flagged with the GIL already given up (see
            # set_flag_and_wait), then the next task watched for.
            spin.set_flag_and_wait(self._flags, 1, 0, spin.SPINS)

    def submit(self, function, item):
        self._task = (function, item)
        self._flags[0] = 1
        self._start.release()

    def result(self):
        """Wait for the task; its return value, or its exception raised here."""
        spin = self._spin
        spin.wait_for_flag(self._flags, 1, spin.SPINS)
        self._done.acquire()
        # The worker flags the outcome just after releasing the lock: the
        # flag is waited for (at once, but after a sleep on the lock) before
        # it is cleared, lest it be set late and taken for the next task's.
        spin.wait_for_flag(self._flags, 1, spin.SPINS)
        self._flags[1] = 0
        succeeded, value = self._outcome
        self._outcome = None
        if not succeeded:
            raise value
        return value


def _take_workers(count):
    """``count`` idle workers, started as needed (again in a forked child,
    where the parent's threads do not exist)."""
    global _idle_workers, _workers_pid
    with _lock:
        if _workers_pid != os.getpid():
            _idle_workers, _workers_pid = [], os.getpid()
        taken = _idle_workers[-count:] if count else []
        del _idle_workers[len(_idle_workers) - len(taken) :]
    return taken + [_Worker() for _ in range(count - len(taken))]


def _return_workers(workers):
    with _lock:
        if _workers_pid == os.getpid():
            _idle_workers.extend(workers)


def parallel_map(function, items):
    """``[function(item) for item in items]``, items on separate threads.

    The calling thread computes the first item itself rather than waiting
    idle: one thread hand-off fewer per call. Calls from several threads at
    once, and calls from inside ``function``, each get workers of their own.
    """
    if len(items) == 1:
        return [function(items[0])]
    workers = _take_workers(len(items) - 1)
    for worker, item in zip(workers, items[1:], strict=True):
        worker.submit(function, item)
    try:
        first = function(items[0])
    finally:
        rest = []
        error = None
        for worker in workers:
            try:
                rest.append(worker.result())
            except BaseException as exc:  # every worker is waited for first
                error = error or exc
        _return_workers(workers)
    if error is not None:
        raise error
    return [first, *rest]


def _blas_libraries():
    """The BLAS libraries of the process, found once.

    SciPy's OpenBLAS, which Numba's ``np.dot`` calls, is loaded first: Numba
    loads it only when a kernel is first compiled or read from the cache,
    inside the first :func:`kernel_threads`, too late to be seen, and a
    forgotten BLAS pool made a GRU forward+backward 1.9x slower.
    """
    global _libraries
    if _libraries is None:
        import scipy.linalg.cython_blas  # noqa: F401

        controller = ThreadpoolController().select(user_api="blas")
        _libraries = controller.lib_controllers
    return _libraries


@contextmanager
def kernel_threads():
    """Limit BLAS to one thread for the duration; reentrant and thread-safe.

    The libraries' own setters, not :meth:`ThreadpoolController.limit`, which
    queries every library's version and architecture on each call (8 us, twice
    per training step).
    """
    global _active_calls, _blas_limits
    with _lock:
        if _active_calls == 0:
            _blas_limits = []
            for library in _blas_libraries():
                threads = library.get_num_threads()
                if threads != 1:
                    library.set_num_threads(1)
                    _blas_limits.append((library, threads))
        _active_calls += 1
    try:
        yield
    finally:
        with _lock:
            _active_calls -= 1
            if _active_calls == 0:
                for library, threads in _blas_limits:
                    library.set_num_threads(threads)
                _blas_limits = []


def parallel_matmul(a, b):
    """``a @ b`` for 2-D arrays, with the rows of ``a`` split over rnntools'
    threads when the product is large enough to pay for them.

    Under :func:`kernel_threads` BLAS runs one thread, so a large product
    (a language model's output layer over a big vocabulary) would lose the
    cores that BLAS's own threads gave it; this gives them back, on threads
    that sleep instead of spinning when they are done.
    """
    rows, depth = a.shape
    cols = b.shape[1]
    affordable = 2 * rows * depth * cols // _MIN_MATMUL_FLOPS_PER_THREAD
    blocks = int(max(1, min(num_threads(), rows, affordable)))
    if blocks == 1:
        with kernel_threads():
            return a @ b
    out = np.empty((rows, cols), dtype=np.result_type(a, b))
    bounds = [k * rows // blocks for k in range(blocks + 1)]

    def product(block):
        np.matmul(a[block], b, out=out[block])

    with kernel_threads():
        parallel_map(product, [slice(lo, hi) for lo, hi in itertools.pairwise(bounds)])
    return out
