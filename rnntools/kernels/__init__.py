"""The kernels: :mod:`.cpu` (``@njit``), :mod:`.cuda` (``@cuda.jit``),
:mod:`.decoder` (decoding), :mod:`.row_invariant` (register-tiled products),
:mod:`.activations` and :mod:`.blas`.

This package module imports none of them (nor Numba): importing
:mod:`rnntools.functional` stays fast, and the kernels load at first use.
"""

import importlib
import types

#: ``cell`` codes of :func:`.cpu.stack_step`.
RNN_CELL, LSTM_CELL, GRU_CELL = 0, 1, 2


class _LazyModule(types.ModuleType):
    """A module imported at the first access to one of its attributes."""

    def __init__(self, name):
        super().__init__(name)
        self._loaded = None

    def __getattr__(self, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        module = self.__dict__["_loaded"]
        if module is None:
            module = self.__dict__["_loaded"] = importlib.import_module(self.__name__)
        return getattr(module, attribute)


def lazy_module(name):
    """``name`` (a module of this package), imported at its first use."""
    return _LazyModule(name)
