"""Hypothesis profiles, chosen with the HYPOTHESIS_PROFILE environment variable.

``dev`` (the default) is quick, ``ci`` runs on every push, ``thorough`` is for
a deliberate hunt. ``deadline=None`` everywhere: the first call of a Numba
kernel compiles it, which no per-example deadline should count.
"""

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=10, deadline=None)
settings.register_profile("ci", max_examples=25, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
