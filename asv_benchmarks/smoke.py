"""Run every asv benchmark once, on a tiny shape, without asv.

Usage (from the repository root, with rnntools importable)::

    python asv_benchmarks/smoke.py

It sets ``RNNTOOLS_BENCH_SMOKE=1`` before importing the ``benchmarks``
package, which swaps the shape grids for one tiny shape, then imports every
module of the package and, for each benchmark method (``time_*``,
``peakmem_*``, ``track_*``) and each parameter combination, calls ``setup``,
the method and ``teardown`` once, as asv would. A ``setup`` that raises
``NotImplementedError`` skips the combination (asv's convention, e.g. torch
not installed). ``track_*`` results must be finite numbers.

The exit status is 1 if any benchmark failed or none ran, so CI can call it
to keep the suite from rotting; the timings it prints mean nothing.
"""

import importlib
import inspect
import itertools
import math
import numbers
import os
import pkgutil
import sys
import time
import traceback

BENCHMARK_PREFIXES = ("time_", "timeraw_", "peakmem_", "mem_", "track_")


def parameter_grid(benchmark_class):
    """The parameter combinations asv would run, as tuples of arguments."""
    params = getattr(benchmark_class, "params", [])
    if not params:
        return [()]
    if isinstance(params[0], list | tuple):
        return list(itertools.product(*params))
    return [(value,) for value in params]


def iter_benchmarks(package):
    """Yield ``(module, class, method name)`` for every benchmark in ``package``."""
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        for _, benchmark_class in inspect.getmembers(module, inspect.isclass):
            if benchmark_class.__module__ != module.__name__:
                continue
            for name in sorted(dir(benchmark_class)):
                if name.startswith(BENCHMARK_PREFIXES):
                    yield module, benchmark_class, name


def run_once(benchmark_class, method_name, args):
    """Run one benchmark like asv does; return "ok", "skipped" or raise."""
    instance = benchmark_class()
    if hasattr(instance, "setup"):
        try:
            instance.setup(*args)
        except NotImplementedError:
            return "skipped"
    try:
        result = getattr(instance, method_name)(*args)
        if method_name.startswith("track_") and not (
            isinstance(result, numbers.Real) and math.isfinite(result)
        ):
            raise TypeError(f"track result {result!r} is not a finite number")
    finally:
        if hasattr(instance, "teardown"):
            instance.teardown(*args)
    return "ok"


def main():
    os.environ["RNNTOOLS_BENCH_SMOKE"] = "1"
    package = importlib.import_module("benchmarks")
    counts = {"ok": 0, "skipped": 0, "FAILED": 0}
    for module, benchmark_class, method_name in iter_benchmarks(package):
        for args in parameter_grid(benchmark_class):
            label = (
                f"{module.__name__.removeprefix('benchmarks.')}."
                f"{benchmark_class.__name__}.{method_name}{args!r}"
            )
            start = time.perf_counter()
            try:
                status = run_once(benchmark_class, method_name, args)
            except Exception:
                status = "FAILED"
                traceback.print_exc()
            counts[status] += 1
            elapsed = time.perf_counter() - start
            print(f"{status:8s}{elapsed:8.2f}s  {label}", flush=True)
    print(", ".join(f"{count} {status}" for status, count in counts.items()))
    return 1 if counts["FAILED"] or not counts["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
