"""Every script in ``examples/`` runs to completion."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


#: Modules of the ``examples`` extra: an example that imports one is skipped
#: where it is not installed.
OPTIONAL = ("matplotlib", "babel")


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs(script, tmp_path):
    source = script.read_text()
    for module in OPTIONAL:
        imported = f"import {module}" in source or f"from {module}" in source
        if imported and importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the examples extra)")
    result = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    if "savefig(" in script.read_text():
        assert list(tmp_path.glob("*.png")), "the example wrote no figure"


def test_there_are_examples():
    assert len(EXAMPLES) >= 6
