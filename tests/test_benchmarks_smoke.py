"""Every asv benchmark runs once on a tiny shape, so the suite cannot rot."""

import subprocess
import sys
from pathlib import Path

SMOKE = Path(__file__).resolve().parents[1] / "asv_benchmarks" / "smoke.py"


def test_every_benchmark_runs_once():
    result = subprocess.run(
        [sys.executable, str(SMOKE)], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
