"""Every asv benchmark runs once on a tiny shape, so the suite cannot rot."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from numba import cuda

BENCHMARKS = Path(__file__).resolve().parents[1] / "asv_benchmarks"
SMOKE = BENCHMARKS / "smoke.py"
COMPARE_CUDA = BENCHMARKS / "compare_cuda.py"
PROFILE_CUDA = BENCHMARKS / "profile_cuda.py"
PROFILE_CPU = BENCHMARKS / "profile_cpu.py"


def test_every_benchmark_runs_once():
    result = subprocess.run(
        [sys.executable, str(SMOKE)], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_compare_cuda_tiny_exits_zero():
    """``compare_cuda.py --allow-no-gpu --tiny`` exits 0, GPU or none.

    Without a GPU it prints one line saying so; with one it times the tiny
    shape, so the script cannot rot where CI has a GPU either.
    """
    result = subprocess.run(
        [sys.executable, str(COMPARE_CUDA), "--allow-no-gpu", "--tiny"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if not cuda.is_available():
        assert "no usable GPU" in result.stdout


def test_profile_cuda_tiny_runs_on_the_simulator():
    """``profile_cuda.py --tiny`` profiles one tiny call under the CUDA
    simulator (set for the subprocess only), so its code runs in CI."""
    result = subprocess.run(
        [sys.executable, str(PROFILE_CUDA), "--tiny", "--cell", "gru"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "_gru_forward_sequence" in result.stdout
    assert "(outside the launches)" in result.stdout


def test_profile_cuda_strategies_tiny_runs_on_the_simulator():
    """``profile_cuda.py --strategies --tiny`` times each time-loop strategy
    with device-resident arrays (the simulator has no cuBLAS: that one says
    it is not run), and marks the drivers' choice."""
    result = subprocess.run(
        [sys.executable, str(PROFILE_CUDA), "--tiny", "--strategies", "--cell", "rnn"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sequence       fwd" in result.stdout
    assert "per step       fwd" in result.stdout
    assert "gemm per step  not run: Numba GEMM only" in result.stdout
    assert result.stdout.count("(the drivers' choice)") == 1


@pytest.mark.skipif(
    cuda.is_available(), reason="with a GPU it measures for minutes: run it by hand"
)
def test_gpu_check_runs_every_step_and_keeps_its_logs(tmp_path):
    """``gpu_check.sh`` runs each step (without a GPU they say so and skip)
    and leaves the 7 logs that a lent GPU machine brings back (at most 8)."""
    script = BENCHMARKS / "gpu_check.sh"
    result = subprocess.run(
        ["bash", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    names = {"env.txt", "strategies.log", "profile.log", "test_cuda.log"}
    names |= {f"compare_{cell}.log" for cell in ("lstm", "gru", "rnn")}
    assert {path.name for path in tmp_path.iterdir()} == names
    assert "passed" in (tmp_path / "test_cuda.log").read_text()


def test_profile_cpu_tiny_splits_every_mode():
    """``profile_cpu.py --tiny`` times a few tiny calls of each mode, with
    the blocks and kernels it wraps restored afterwards, and prints the
    split of each."""
    result = subprocess.run(
        [sys.executable, str(PROFILE_CPU), "--tiny", "--cell", "gru"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for mode in ("inference", "forward", "backward"):
        assert f"gru 2x3x4x5 {mode}," in result.stdout
    # One row per thread that ran a block: the tiny batch is one block.
    assert result.stdout.count("   caller ") == 3
    assert result.stdout.count("before the first block") == 3


def test_profile_cpu_restores_what_it_wraps():
    """After a profile, the functional API runs its own functions again."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import profile_cpu
    finally:
        sys.path.remove(str(BENCHMARKS))
    from rnntools import functional

    kernels = functional._backend("cpu").kernels
    blocks = ("_run_block", "_backward_block")

    def wrapped():
        return [getattr(functional, name) for name in blocks] + [
            getattr(kernels, name) for name in profile_cpu.KERNELS
        ]

    before = wrapped()
    profile_cpu.main(["--tiny", "--cell", "rnn"])
    after = wrapped()
    assert after == before


def _spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_settle_waits_for_spinning_threads():
    """``settle`` does not return while another thread of the process still
    runs (as torch's OpenMP workers do after a call), and returns at once
    when none does."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from benchmarks.common import settle
    finally:
        sys.path.remove(str(BENCHMARKS))
    spinner = threading.Thread(target=_spin, args=(0.15,))
    start = time.perf_counter()
    spinner.start()
    settle(timeout=2.0)
    waited = time.perf_counter() - start
    spinner.join()
    # The spinner runs 0.15 s; 0.1 s leaves room for a late thread start.
    assert waited >= 0.1
    start = time.perf_counter()
    settle(timeout=2.0)
    # Quiet from the first 5 ms step: far below the 2 s timeout, with room
    # for a loaded machine.
    assert time.perf_counter() - start < 0.5
