"""``rnntools._workspace.BufferPool``: best fit, by dtype, within capacity."""

import numpy as np

from rnntools._workspace import BufferPool


def _base(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def test_empty_hands_out_the_smallest_idle_buffer_that_fits():
    pool = BufferPool()
    buffers = [np.empty(size, np.float32) for size in (5000, 800, 3000, 1200, 3000)]
    pool.release(buffers)
    array = pool.empty((10, 100), np.float32)  # 1000 numbers: 1200 fits best
    assert array.shape == (10, 100) and array.flags.c_contiguous
    assert _base(array) is buffers[3]
    # Equal sizes go in the order they were released.
    assert _base(pool.empty((2900,), np.float32)) is buffers[2]
    assert _base(pool.empty((2900,), np.float32)) is buffers[4]
    assert _base(pool.empty((700,), np.float32)) is buffers[1]
    # At most twice the size plus 4096 numbers is handed out: 5000 is too
    # big for 400 (a fresh array), not for 2000.
    fresh = pool.empty((400,), np.float32)
    assert _base(fresh) is not buffers[0]
    assert _base(pool.empty((2000,), np.float32)) is buffers[0]
    assert _base(pool.empty((2000,), np.float32)) is not buffers[0]  # taken


def test_buffers_of_another_dtype_are_never_handed_out():
    pool = BufferPool()
    pool.release([np.empty(1000, np.float64)])
    array = pool.empty((1000,), np.float32)
    assert array.dtype == np.float32
    assert _base(pool.empty((1000,), np.float64)).dtype == np.float64


def test_release_keeps_each_base_once_and_within_capacity(monkeypatch):
    pool = BufferPool()
    buffer = np.empty(1000, np.float32)
    # Views of one buffer, given twice: it goes back once.
    pool.release([buffer[:500].reshape(10, 50), buffer[10:20], buffer])
    assert _base(pool.empty((900,), np.float32)) is buffer
    assert _base(pool.empty((900,), np.float32)) is not buffer
    monkeypatch.setenv("RNNTOOLS_POOL_MB", "0.01")  # 10485 bytes
    kept, dropped = np.empty(2000, np.float32), np.empty(2000, np.float32)
    pool.release([kept, dropped])  # the second would pass the capacity
    assert pool._idle_bytes == kept.nbytes
    assert _base(pool.empty((2000,), np.float32)) is kept
    assert _base(pool.empty((2000,), np.float32)) is not dropped
    pool.release([kept])
    pool.clear()
    assert pool._idle_bytes == 0
    assert _base(pool.empty((2000,), np.float32)) is not kept
