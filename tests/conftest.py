"""Hypothesis profiles, chosen with the HYPOTHESIS_PROFILE environment variable.

``dev`` (the default) is quick, ``ci`` runs on every push, ``thorough`` is for
a deliberate hunt. ``deadline=None`` everywhere: the first call of a Numba
kernel compiles it, which no per-example deadline should count.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the simulator is
prepared first (:mod:`cudasim`: its shared arrays made safe, its threads
interleaved finely).
"""

import os

from hypothesis import settings

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    import cudasim

    cudasim.prepare()

settings.register_profile("dev", max_examples=10, deadline=None)
settings.register_profile("ci", max_examples=25, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
