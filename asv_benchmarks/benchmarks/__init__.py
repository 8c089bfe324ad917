"""asv benchmarks of rnntools (layout of scikit-learn's ``asv_benchmarks``).

Run every benchmark once, from ``asv_benchmarks/``, without touching ``~``::

    export HOME=$(mktemp -d)
    asv machine --yes --machine ci-smoke
    asv run --python=same --quick --machine ci-smoke

``RNNTOOLS_BENCH_SMOKE=1`` shrinks the grids to one tiny shape;
``python asv_benchmarks/smoke.py`` runs them without asv. See ``README.md``.
"""
