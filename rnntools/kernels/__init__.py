"""The kernels: :mod:`.cpu` (``@njit``), :mod:`.cuda` (``@cuda.jit``),
:mod:`.decoder` (decoding), :mod:`.row_invariant` (register-tiled products),
:mod:`.activations` and :mod:`.blas`.

This package module imports none of them (nor Numba): importing
:mod:`rnntools.functional` stays fast, and the kernels load at first use.
"""

import importlib
import types


class _LazyModule(types.ModuleType):
    """A module imported at the first access to one of its attributes."""

    def __init__(self, name):
        super().__init__(name)
        self._loaded = None

    def __getattr__(self, attribute):
        # Called only for attributes not yet copied here: each is copied on
        # first use, so later accesses cost a plain lookup (a step at batch 1
        # takes about 10 us).
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        module = self.__dict__["_loaded"]
        if module is None:
            module = self.__dict__["_loaded"] = importlib.import_module(self.__name__)
        value = getattr(module, attribute)
        self.__dict__[attribute] = value
        return value


def lazy_module(name):
    """``name`` (a module of this package), imported at its first use."""
    return _LazyModule(name)
