"""Installation properties: import and run where Numba's cache cannot be written."""

import subprocess
import sys
import textwrap


def test_import_and_run_without_a_writable_cache():
    # Numba raises at decoration time when no cache locator is usable (a
    # read-only install with an unwritable home): simulate that by removing
    # every locator before rnntools is imported.
    code = textwrap.dedent(
        """
        import numba.core.caching as caching
        caching.CacheImpl._locator_classes = []
        import numpy as np
        import rnntools
        from rnntools.functional import rnn_backward, rnn_forward
        from rnntools.kernels import _jit
        assert _jit.CACHE is False
        params = rnntools.init_params("rnn", 2, 3, random_state=0)
        output, _, cache = rnn_forward(np.ones((2, 3, 2), np.float32), params, "rnn")
        rnn_backward(cache, np.ones_like(output))
        print("ok", output.shape)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "ok (2, 3, 3)" in result.stdout
