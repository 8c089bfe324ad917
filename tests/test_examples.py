"""Every script in ``examples/`` runs to completion."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs(script, tmp_path):
    if "import matplotlib" in script.read_text() and not HAS_MATPLOTLIB:
        pytest.skip("matplotlib is not installed (the examples extra)")
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
