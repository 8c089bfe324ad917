"""Thread-pool control for the kernels."""

from contextlib import contextmanager


@contextmanager
def kernel_threads():
    """Run kernels with a controlled number of threads."""
    yield
