"""A bounded spin-wait for the thread hand-offs of :mod:`rnntools._threads`.

A thread blocked on a lock sleeps, and on a VM its idle vCPU halts: a task
handed to a sleeping worker started 40-50 us late here after a short pause,
200-400 us late after a few milliseconds. So a worker that has
just finished a task, and a caller waiting for a worker's result, first
watch a flag for a short while with the GIL released, and only then block.
An LSTM forward on two threads went from 504-510 to 468-475 us at
32x50x32x64 and from 496-500 to 451-455 us at 16x200x8x32 (three
interleaved runs each). The flag is only a hint: the locks still do the
synchronisation, so a missed flag costs a sleep, never a wrong result.
"""

from numba import njit, types
from numba.extending import intrinsic

from ._jit import CACHE

#: Spins of :func:`wait_for_flag` (one atomic load each) that a worker makes
#: for its next task, and a caller for a worker's result, before blocking:
#: about 100 us on this machine (a million spins took 240-280 us).
SPINS = 400_000


@intrinsic
def _load_acquire(typingctx, flags, index):
    """``flags[index]`` as an atomic load with acquire ordering: read from
    memory at every call (a plain load would be hoisted out of the loop)."""
    if not (
        isinstance(flags, types.Array)
        and flags.dtype == types.int64
        and flags.ndim == 1
        and flags.layout == "C"
    ):
        return None

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        index_value = context.cast(builder, args[1], sig.args[1], types.intp)
        pointer = builder.gep(array.data, [index_value])
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(flags, index), codegen


@intrinsic
def _store_release(typingctx, flags, index):
    """``flags[index] = 1`` as an atomic store with release ordering: every
    write before it is visible to a thread that then reads the flag."""
    if not (
        isinstance(flags, types.Array)
        and flags.dtype == types.int64
        and flags.ndim == 1
        and flags.layout == "C"
    ):
        return None

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        index_value = context.cast(builder, args[1], sig.args[1], types.intp)
        pointer = builder.gep(array.data, [index_value])
        one = context.get_constant(types.int64, 1)
        builder.store_atomic(one, pointer, "release", 8)
        return context.get_dummy_value()

    return types.void(flags, index), codegen


@njit(cache=CACHE, nogil=True, no_cfunc_wrapper=True)
def wait_for_flag(flags, index, spins):
    """Whether ``flags[index]`` became nonzero within ``spins`` looks.

    Parameters
    ----------
    flags : int64 ndarray of shape (n,)
        Set by another thread.
    index : int
    spins : int
    """
    for _ in range(spins):
        if _load_acquire(flags, index) != 0:
            return True
    return False


@njit(cache=CACHE, nogil=True, no_cfunc_wrapper=True)
def set_flag_and_wait(flags, done, index, spins):
    """Set ``flags[done]``, then :func:`wait_for_flag` ``(flags, index,
    spins)``, all with the GIL released.

    A worker announces a finished task this way: the caller, spinning on
    ``flags[done]``, then finds the GIL free. Set from Python, before the
    worker gave the GIL up (in its next wait), the caller saw the flag at
    once, asked for the GIL while the worker still held it, and slept on it:
    a no-op task on two threads took 58-66 us a round trip, 35-38 this way
    (2026-11-30, Xeon VM).
    """
    _store_release(flags, done)
    return wait_for_flag(flags, index, spins)
