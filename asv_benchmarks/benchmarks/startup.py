"""Import and first-call (compile) time, each in a fresh interpreter.

Both include the interpreter's own start-up. ``time_first_call`` points
Numba's on-disk cache (``NUMBA_CACHE_DIR``) at a private temporary folder:
``"cold-cache"`` starts it empty, so the call compiles every kernel it needs;
``"warm-cache"`` fills it in ``setup``, so the call loads compiled kernels
(if rnntools caches none, both cost the same).
"""

import os
import shutil
import subprocess
import sys
import tempfile

from .common import STARTUP_CELLS, Benchmark

FIRST_CALL_SCRIPT = """
import numpy as np
import rnntools
from rnntools.functional import rnn_backward, rnn_forward

batch, steps, input_size, hidden_size = 4, 10, 8, 16
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, steps, input_size)).astype(np.float32)
params = rnntools.init_params("{cell}", input_size, hidden_size, random_state=0)
output, final_state, cache = rnn_forward(x, params, "{cell}")
rnn_backward(cache, np.ones_like(output))
"""


def run_python(code, env=None):
    """Run ``code`` in a fresh interpreter that imports what this one imports.

    asv takes ``PYTHONPATH`` off ``sys.path`` but leaves it in the
    environment, so the child gets this process's ``sys.path`` instead.
    """
    env = {**(env or os.environ), "PYTHONPATH": os.pathsep.join(filter(None, sys.path))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


class StartupSuite(Benchmark):
    """Wall time of a fresh interpreter that imports rnntools."""

    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0
    timeout = 600

    def time_import(self):
        run_python("import rnntools")


class FirstCallSuite(Benchmark):
    """Wall time of a fresh interpreter's first forward+backward call.

    The shape is tiny (4x10x8x16), so the time is start-up and compilation
    (or cache loading), not arithmetic.
    """

    param_names = ("cell", "numba_cache")
    params = (STARTUP_CELLS, ("cold-cache", "warm-cache"))
    number = 1
    repeat = (1, 3, 120.0)
    warmup_time = 0
    timeout = 900

    def setup(self, cell, numba_cache):
        self.cache_dir = tempfile.mkdtemp(prefix="rnntools-bench-numba-")
        self.env = {**os.environ, "NUMBA_CACHE_DIR": self.cache_dir}
        self.code = FIRST_CALL_SCRIPT.format(cell=cell)
        if numba_cache == "warm-cache":
            run_python(self.code, env=self.env)

    def teardown(self, cell, numba_cache):
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def time_first_call(self, cell, numba_cache):
        run_python(self.code, env=self.env)
